"""File classification, by property: names as golang-migrate reads them, up/down pairing,
and migcoord.sum lines, on generated names rather than a handful of examples."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from migcoord.core import sumfile
from migcoord.core.model import SqlFile
from migcoord.core.naming import MAX_VERSION, name_problem, parse_filename
from migcoord.repo.discovery import pair_files

#: golang-migrate's regex as Go applies it: `$` only at the very end (Python's would also
#: match before a final newline) and `.` any character but a newline.
GO_FILENAME = re.compile(r"\A([0-9]+)_([^\n]*)\.(up|down)\.sql\Z")

_NAME_CHARS = st.characters(codec="utf-8", exclude_categories=("Cs",))
#: Text that is often almost a migration name: digits, `_`, dots, `up`/`down`, `sql`.
_PIECES = st.sampled_from(["0", "1", "7", "000042", "_", ".", "up", "down", "sql", ".up",
                           ".down", ".sql", "-", " ", "\n", "UP", "\u0661", "x", "é"])
_NEAR_NAMES = st.lists(st.one_of(_PIECES, st.text(_NAME_CHARS, max_size=3)),
                       max_size=8).map("".join)


@given(st.one_of(_NEAR_NAMES, st.text(max_size=40)))
def test_a_name_is_a_migration_exactly_when_golang_migrate_reads_it(filename: str) -> None:
    """parse_filename accepts what Go's regex matches, with the same parts."""
    parsed = parse_filename(filename)
    match = GO_FILENAME.match(filename)
    assert (parsed is None) == (match is None)
    if parsed is not None and match is not None:
        assert (parsed.version_text, parsed.name, parsed.direction) == match.groups()
        assert parsed.version == int(match.group(1))


@given(version=st.integers(min_value=0, max_value=10**25),
       name=st.text(_NAME_CHARS, max_size=20).filter(lambda n: "\n" not in n))
def test_name_problem_flags_exactly_what_cannot_be_recorded(version: int, name: str) -> None:
    """Empty names and versions above bigint are named; everything else is fine."""
    parsed = parse_filename(f"{version}_{name}.up.sql")
    assert parsed is not None
    problem = name_problem(parsed)
    assert (problem is not None) == (version > MAX_VERSION or name == "")


def _file(version: int, name: str, direction: str, width: int = 6) -> SqlFile:
    text = str(version).zfill(width)
    return SqlFile(path=Path(f"/r/a/{text}_{name}.{direction}.sql"), service="a",
                   version=version, version_text=text, name=name,
                   direction="up" if direction == "up" else "down", text="SELECT 1;\n",
                   checksum="0" * 64)


_FILES = st.lists(
    st.tuples(st.integers(min_value=1, max_value=6), st.sampled_from(["a", "b", "c", "add x"]),
              st.sampled_from(["up", "down"])),
    max_size=14, unique=True)


@given(_FILES)
def test_pairing_by_version_keeps_every_file_exactly_once(spec: list[tuple[int, str, str]]) -> None:
    """Every file lands in exactly one migration, in the slot of its direction, with the
    version of that migration; same-named halves pair; a version with one up and one
    down is one migration whatever the names, named after its up."""
    files = [_file(*entry) for entry in spec]
    migrations = pair_files("a", files)

    placed = [f for m in migrations for f in (m.up, m.down) if f is not None]
    assert Counter(f.path for f in placed) == Counter(f.path for f in files)
    for migration in migrations:
        assert migration.up is None or migration.up.direction == "up"
        assert migration.down is None or migration.down.direction == "down"
        halves = [f for f in (migration.up, migration.down) if f is not None]
        assert {f.version for f in halves} == {migration.version}
        assert migration.name == (migration.up or migration.down or halves[0]).name
    for version in {f.version for f in files}:
        ups = [f for f in files if f.version == version and f.direction == "up"]
        downs = [f for f in files if f.version == version and f.direction == "down"]
        mine = [m for m in migrations if m.version == version]
        if len(ups) <= 1 and len(downs) <= 1:
            assert len(mine) == 1
        for up in ups:
            twin = next((d for d in downs if d.name == up.name), None)
            if twin is not None:
                assert any(m.up == up and m.down == twin for m in mine)


_SUM_NAMES = st.text(_NAME_CHARS, min_size=1, max_size=20).filter(lambda n: "\n" not in n)


@given(st.lists(st.tuples(st.integers(min_value=0, max_value=MAX_VERSION), _SUM_NAMES),
                max_size=6, unique_by=lambda entry: entry[0]))
def test_sum_lines_read_back_as_written(entries: list[tuple[int, str]]) -> None:
    """Any name golang-migrate reads (spaces, tabs, U+2028, \\x85 ...) survives
    migcoord.sum: render then parse gives the same lines and no problem."""
    migrations = pair_files("svc", [_file(v, n, d) for v, n in entries for d in ("up", "down")])
    parsed = sumfile.parse(sumfile.render(migrations))
    assert parsed.problems == ()
    assert parsed.lines == sumfile.lines_for(migrations)
    assert parsed.claimed_hash == parsed.body_hash
    assert sumfile.compare(parsed, migrations) == []
