"""Folders of golang-migrate files that no service configures.

`check` warns about one (`unconfigured-folder`): its migrations are invisible to `check`,
`up` and `create`, so a number taken there collides unseen. The search is bounded, so a
large repository costs little: only near the configured folders, in each configured
folder's parent and grandparent (within the config's folder), two levels down, leaving
out hidden folders, the ones init never searches (`node_modules`, `vendor`, `testdata`,
...) and symbolic links. `init` run again compares its own full search with the config.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from migcoord.core.model import Config
from migcoord.core.naming import parse_filename
from migcoord.core.scaffold import FoundFolder
from migcoord.repo.scaffold import SKIPPED_FOLDERS, resolved


def near_configured(config: Config) -> tuple[FoundFolder, ...]:
    """The folders near the configured ones (see the module docstring) that hold files
    named as golang-migrate names migrations (up or down) and that no service configures,
    by path relative to the config's folder."""
    root = config.root.resolve()
    configured = {resolved(s.migrations) for s in config.services}
    scopes: set[Path] = set()
    for folder in configured:
        for scope in (folder.parent, folder.parent.parent):
            if scope == root or root in scope.parents:
                scopes.add(scope)
    seen: set[Path] = set()
    found = []
    for scope in sorted(scopes):
        for child in _subfolders(scope):
            for candidate in (child, *_subfolders(child)):
                if candidate in seen or candidate in configured \
                        or any(c in candidate.parents for c in configured):
                    continue
                seen.add(candidate)
                names = _migration_names(candidate)
                if names:
                    found.append(FoundFolder(
                        path=PurePosixPath(candidate.relative_to(root).as_posix()),
                        filenames=names))
    return tuple(sorted(found, key=lambda f: f.path))


def _subfolders(folder: Path) -> list[Path]:
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    return sorted(Path(entry.path) for entry in entries
                  if not entry.name.startswith(".") and entry.name not in SKIPPED_FOLDERS
                  and entry.is_dir(follow_symlinks=False))


def _migration_names(folder: Path) -> tuple[str, ...]:
    try:
        names = os.listdir(folder)
    except OSError:
        return ()
    return tuple(sorted(name for name in names if parse_filename(name) is not None))
