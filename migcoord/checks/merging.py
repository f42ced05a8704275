"""`check --against REF`: this branch's edits to migrations REF already has (pure).

REF (main) may be deployed: an up file that changed on this branch although REF has
the migration would never run where REF's version was applied, and the database's
`modified` state would stop the next deploy. A changed down file is a warning: the
rollback that runs is no longer the one reviewed with the migration.

`repo/git.branch_edits` finds the files (with git); this module words the findings.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from migcoord.core.model import Config, Finding
from migcoord.core.resolution import BranchEdit


def edited_merged(edits: Iterable[BranchEdit], config: Config) -> Iterator[Finding]:
    """`edited-merged` for each up file, `edited-merged-down` for each down file."""
    for edit in edits:
        relative = (edit.path.relative_to(config.root).as_posix()
                    if edit.path.is_relative_to(config.root) else str(edit.path))
        change = "removed (or renamed)" if edit.removed else "changed"
        if edit.direction == "up":
            yield Finding.of(
                "edited-merged",
                f"{relative} was {change} on this branch, but {edit.ref} already has this "
                "migration: where it is applied, the change never runs (and `up` stops there "
                "on the `modified` checksum)",
                path=edit.path, service=edit.service, version=edit.version,
                hint=f"restore it (`git checkout {edit.ref} -- {relative}`) and make the change "
                "in a new migration (`migcoord create NAME --service "
                f"{edit.service}`)")
        else:
            yield Finding.of(
                "edited-merged-down",
                f"{relative} was {change} on this branch, but {edit.ref} already has this "
                "migration: a rollback would run a down file other than the one reviewed "
                "with it",
                path=edit.path, service=edit.service, version=edit.version,
                hint=f"if the old down file was wrong, keep the fix and allow this (`allow = "
                f'["edited-merged-down"]`); otherwise restore it: `git checkout {edit.ref} -- '
                f"{relative}`")
