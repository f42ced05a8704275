"""The SQL analysis of a migration as plain values (tuples, strings, numbers, None), and
back: the form the analysis cache under `.migcoord/` stores (repo/analysiscache.py, with
`marshal`, which holds only such values and runs no code when it reads them).

`from_plain` trusts nothing: a value of the wrong shape raises `ValueError`, and the
caller then parses the migration again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from migcoord.checks.analysis import Cache, CacheKey, Effect, FileSql, MigrationSql
from migcoord.core.model import Finding
from migcoord.sql.columns import ColumnNote
from migcoord.sql.effects import QualifiedName
from migcoord.sql.rewrites import TypeSpec

Plain = tuple[Any, ...]


def to_plain(summary: MigrationSql) -> Plain:
    """`summary` as nested tuples of str, int, bool and None."""
    return (_file(summary.up), _file(summary.down),
            tuple(_finding(f) for f in summary.mismatch))


def from_plain(plain: Any) -> MigrationSql:
    """The analysis `to_plain` gave; ValueError when `plain` is not of its shape."""
    try:
        up, down, mismatch = plain
        return MigrationSql(up=_file_back(up), down=_file_back(down),
                            mismatch=tuple(_finding_back(f) for f in mismatch))
    except (TypeError, ValueError, AttributeError, IndexError) as err:
        raise ValueError(f"not an analysis: {err}") from None


def cache_from_plain(entries: dict[Any, Any]) -> Cache:
    """The entries of a stored cache that have the right shape, decoded; the others are
    left out (and parsed again)."""
    cache: Cache = {}
    for key, plain in entries.items():
        typed = _key(key)
        if typed is None:
            continue
        try:
            cache[typed] = from_plain(plain)
        except ValueError:
            continue
    return cache


def _key(key: Any) -> CacheKey | None:
    if not isinstance(key, tuple) or len(key) != 5:
        return None
    up, down, schema, no_transaction, down_no_transaction = key
    if not (isinstance(up, str) and isinstance(down, str) and isinstance(schema, str)
            and isinstance(no_transaction, bool) and isinstance(down_no_transaction, bool)):
        return None
    return (up, down, schema, no_transaction, down_no_transaction)


def _file(file_sql: FileSql | None) -> Plain | None:
    if file_sql is None:
        return None
    return (tuple(_finding(f) for f in file_sql.findings),
            tuple(tuple(e) for e in file_sql.effects), file_sql.opaque, file_sql.parsed,
            file_sql.tables_only, file_sql.subjects,
            tuple(_note(n) for n in file_sql.column_notes))


def _file_back(plain: Any) -> FileSql | None:
    if plain is None:
        return None
    findings, effects, opaque, parsed, tables_only, subjects, notes = plain
    # marshal gives back tuples as tuples: only the named ones are rebuilt.
    return FileSql(findings=tuple(map(_finding_back, findings)),
                   effects=tuple(map(_effect_back, effects)),
                   opaque=opaque is True, parsed=parsed is True, tables_only=tables_only is True,
                   subjects=_tuple(subjects),
                   column_notes=tuple(map(_note_back, notes)))


def _effect_back(plain: Any) -> Effect:
    action, table, line, new_name = plain
    if not (isinstance(action, str) and isinstance(table, tuple) and isinstance(line, int)
            and (new_name is None or isinstance(new_name, tuple))):
        raise ValueError(f"not an effect: {plain!r}")
    return Effect(action, table, line, new_name)


def _tuple(value: Any) -> tuple[Any, ...]:
    if not isinstance(value, tuple):
        raise ValueError(f"not a tuple: {value!r}")
    return value


def _finding(finding: Finding) -> Plain:
    return (finding.code, finding.message, None if finding.path is None else str(finding.path),
            finding.line, finding.column, finding.service, finding.version, finding.hint)


def _finding_back(plain: Any) -> Finding:
    code, message, path, line, column, service, version, hint = plain
    # Finding.of takes the severity from today's registry, and refuses an unknown code.
    return Finding.of(code, message, path=None if path is None else Path(path), line=line,
                      column=column, service=service, version=version, hint=hint)


def _note(note: ColumnNote) -> Plain:
    spec = note.type
    return (note.kind, (note.table.schema, note.table.name), note.column, note.line, note.at,
            None if spec is None else (spec.name, spec.modifiers, spec.array, spec.schema),
            note.new_name, note.plain_using, note.fresh, note.emptied)


def _note_back(plain: Any) -> ColumnNote:
    kind, (schema, name), column, line, at, spec, new_name, plain_using, fresh, emptied = plain
    return ColumnNote(kind=kind, table=QualifiedName(schema, name), column=column, line=line,
                      at=at, type=None if spec is None else TypeSpec(
                          name=spec[0], modifiers=tuple(spec[1]), array=spec[2],
                          schema=spec[3]),
                      new_name=new_name, plain_using=plain_using, fresh=fresh,
                      emptied=emptied)
