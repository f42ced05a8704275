"""core/resolution.plan_resolve: which migrations move after a merge collision (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from migcoord.core.model import (
    Catalog,
    Config,
    Direction,
    Migration,
    Reservation,
    ServiceConfig,
    ServiceFolder,
    SqlFile,
)
from migcoord.core.resolution import TheirFile, plan_resolve
from migcoord.errors import RefusedError

ROOT = Path("/repo")
SERVICES = ("a", "b")


def config(reserved: dict[str, Reservation] | None = None) -> Config:
    return Config(root=ROOT, services=tuple(
        ServiceConfig(name=s, migrations=ROOT / s, reserved=(reserved or {}).get(s))
        for s in SERVICES))


def m(version: int, service: str, name: str | None = None) -> Migration:
    name = name or f"m{version}{service}"
    text = f"{version:06d}"

    def file(direction: Direction) -> SqlFile:
        return SqlFile(path=ROOT / service / f"{text}_{name}.{direction}.sql", service=service,
                       version=version, version_text=text, name=name, direction=direction,
                       text="SELECT 1;\n", checksum="x")

    return Migration(version=version, service=service, name=name, version_text=text,
                     up=file("up"), down=file("down"))


def catalog(*migrations: Migration) -> Catalog:
    return Catalog.of(ServiceFolder(config=ServiceConfig(name=s, migrations=ROOT / s),
                                    present=True,
                                    migrations=tuple(x for x in migrations if x.service == s))
                      for s in SERVICES)


def theirs(*migrations: Migration) -> list[TheirFile]:
    return [TheirFile(x.service, x.version, f.path.name) for x in migrations
            for f in (x.up, x.down) if f is not None]


def moves(here: Catalog, other: list[TheirFile], cfg: Config | None = None,
          ) -> list[tuple[str, int, int]]:
    plan = plan_resolve(here, cfg or config(), other)
    return [(r.migration.service, r.migration.version, r.new_version)
            for r in plan.renumber.renumberings]


BASE = (m(1, "a"), m(2, "b"))


def test_nothing_collides_nothing_moves() -> None:
    """A tree without a shared number is left as it is (why resolve is idempotent)."""
    assert moves(catalog(*BASE, m(3, "a")), theirs(*BASE)) == []


def test_this_branchs_colliding_and_later_migrations_move_after_the_union_in_order() -> None:
    """The other side's 3 and 4 stay; this branch's 3 and 5 become 5 and 6."""
    other = (m(3, "b"), m(4, "b"))
    here = catalog(*BASE, *other, m(3, "a"), m(5, "a"))
    assert moves(here, theirs(*BASE, *other)) == [("a", 3, 5), ("a", 5, 6)]


def test_a_migration_only_on_the_other_side_still_takes_its_number() -> None:
    """With --onto the other side's files are not in the working tree: 3 is still taken."""
    assert moves(catalog(*BASE, m(3, "a")), theirs(*BASE, m(3, "b"))) == [("a", 3, 4)]


def test_a_migration_the_other_side_has_never_moves() -> None:
    """Even when it is older than this branch's: only this branch's migrations move."""
    shared = m(3, "b")
    plan = plan_resolve(catalog(*BASE, shared, m(3, "a", "x")), config(), theirs(*BASE, shared))
    assert {r.migration.service for r in plan.renumber.renumberings} == {"a"}
    assert plan.kept == ("b 000003_m3b",)


def test_two_of_this_branchs_migrations_with_one_number_are_spread() -> None:
    """After a rebase replays a second commit: both this branch's, one keeps its number."""
    assert moves(catalog(*BASE, m(3, "a", "x"), m(3, "b", "y")), theirs(*BASE)) == [
        ("b", 3, 4)]


def test_a_reserved_range_of_another_service_is_stepped_over() -> None:
    """The new numbers skip ranges reserved for other services, as create does."""
    cfg = config({"b": Reservation(4, 6)})
    assert moves(catalog(*BASE, m(3, "a")), theirs(*BASE, m(3, "b")), cfg) == [("a", 3, 7)]


def test_two_of_the_other_sides_migrations_with_one_number_are_refused() -> None:
    """Not this branch's to fix: refused before anything is decided."""
    other = (m(3, "a"), m(3, "b"))
    with pytest.raises(RefusedError, match="both on the other side"):
        plan_resolve(catalog(*BASE, *other, m(4, "a")), config(), theirs(*BASE, *other))
