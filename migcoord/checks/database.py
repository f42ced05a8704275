"""`check --db`: the files against what migcoord_history records.

`missing-file`, `modified`, `dirty` and `out-of-order`, read from the reconciled states
(migcoord/core/reconcile.py) of one database; the coordinator reads the history rows.
"""

from __future__ import annotations

from collections.abc import Iterable

from migcoord.core.model import Config, Finding, HistoryRow, Status, format_version
from migcoord.core.reconcile import Reconciled, moved_repair_hint


def database_findings(states: Iterable[Reconciled], rows: Iterable[HistoryRow],
                      config: Config) -> list[Finding]:
    """`check --db`: missing-file, modified, dirty and out-of-order, from reconciled states."""
    highest: dict[str, int] = {}
    for row in rows:
        highest[row.service] = max(highest.get(row.service, 0), row.version)
    findings: list[Finding] = []
    states = list(states)
    repair = moved_repair_hint(states, config.version_width)
    for state in states:
        shown = f"{format_version(state.version, config.version_width)} {state.service} {state.name}"
        path = state.migration.path if state.migration is not None else None
        if not state.judged:
            continue
        if state.state == Status.MISSING and state.moved_to is not None:
            findings.append(Finding.of(
                "missing-file",
                f"{shown} is applied in the database under its old number: its file is now "
                f"{state.moved_to.label} (same name and content; a merge renumbered it)",
                hint=repair,
                path=state.moved_to.path, service=state.service, version=state.version))
        elif state.state == Status.MISSING and state.down_only is not None:
            up_name = f"{state.down_only.label}.up.sql"
            findings.append(Finding.of(
                "missing-file",
                f"{shown} is applied in the database but its up file ({up_name}) is gone; "
                "its down file is still here",
                hint=f"restore {up_name} from git history; if the migration is abandoned, undo "
                "it by hand (its down file says how), `migcoord mark "
                f"{format_version(state.version, config.version_width)} --pending`, and "
                "delete the down file",
                path=state.down_only.path, service=state.service, version=state.version))
        elif state.state == Status.MISSING:
            findings.append(Finding.of(
                "missing-file",
                f"{shown} is applied in the database but its file is gone (deleted or renamed)",
                hint="restore the file from git history; renaming applied migrations is not "
                "allowed", path=path, service=state.service, version=state.version))
        elif state.state == Status.MODIFIED:
            findings.append(Finding.of(
                "modified", f"{shown} was edited after it was applied to this database",
                hint="revert the edit and write a new migration instead; if the database "
                "already matches, `migcoord mark VERSION --applied --reason ...`",
                path=path, service=state.service, version=state.version))
        elif state.state == Status.DIRTY:
            findings.append(Finding.of(
                "dirty", f"{shown} is dirty ({state.detail})",
                hint="repair by hand, then `migcoord mark VERSION --applied` or `--pending`",
                path=path, service=state.service, version=state.version))
        elif state.state == Status.PENDING and state.version < highest.get(state.service, 0):
            findings.append(Finding.of(
                "out-of-order",
                f"{shown} is pending but {state.service} already applied "
                f"{format_version(highest[state.service], config.version_width)}",
                hint=f"check that it does not conflict with what is applied, then `migcoord "
                f"up --service {state.service} --allow-out-of-order`",
                path=path, service=state.service, version=state.version))
    return findings

