"""What `create` writes into a new migration: comments that teach, and nothing they declare."""

from __future__ import annotations

from pathlib import Path

from migcoord.core import templates
from migcoord.core.model import Catalog, Migration, ServiceConfig
from migcoord.repo.discovery import parse_directives

AGGREGATOR = ServiceConfig(name="aggregator", migrations=Path("/repo/aggregator/migrations"),
                           owns=("aggregates", "aggregate_rules"))


def catalog(*migrations: tuple[int, str]) -> Catalog:
    """A catalog of (version, service) migrations, in version order."""
    return Catalog(folders=(), migrations=tuple(
        Migration(version=v, service=s, name=f"m{v}", version_text=f"{v:06d}", up=None, down=None)
        for v, s in migrations))


def test_up_file_names_the_owned_tables_and_the_newest_migration_of_another_service() -> None:
    """The depends example points at the newest other-service migration, not its own."""
    text = templates.up_file(AGGREGATOR, catalog((1, "rule-service"), (4, "rule-service"),
                                                 (6, "aggregator")), version=7, width=6)
    assert text.startswith("-- aggregator: migration 000007\n")
    assert "-- Tables owned by aggregator: aggregates, aggregate_rules\n" in text
    assert "--   -- migcoord:depends rule-service:000004\n" in text


def test_up_file_without_other_services_or_declared_tables_says_so() -> None:
    """No other service has migrations: a placeholder at the configured width."""
    bare = ServiceConfig(name="aggregator", migrations=AGGREGATOR.migrations)
    text = templates.up_file(bare, catalog((6, "aggregator")), version=7, width=4)
    assert "-- Tables owned by aggregator: (not declared in migcoord.toml)\n" in text
    assert "--   -- migcoord:depends other-service:0001\n" in text


def test_the_new_up_file_declares_nothing_until_the_example_is_uncommented() -> None:
    """The example is a comment; uncommented as it is, it is a valid depends line."""
    text = templates.up_file(AGGREGATOR, catalog((2, "rule-service")), version=7, width=6)
    declared, findings = parse_directives(text)
    assert (declared.depends, declared.no_transaction, declared.allow, findings) == (
        (), False, frozenset(), ())
    uncommented, findings = parse_directives(
        text.replace("--   -- migcoord:depends", "-- migcoord:depends"))
    assert findings == ()
    assert [(ref.service, ref.version) for ref in uncommented.depends] == [("rule-service", 2)]


def test_down_file_names_the_version_it_undoes() -> None:
    assert templates.down_file(AGGREGATOR, version=7, width=6).startswith(
        "-- aggregator: undo migration 000007\n")
