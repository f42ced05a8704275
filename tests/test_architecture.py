"""The architecture, checked by reading the imports: a pure core, thin edges.

The core takes values and returns values (no files, no database, no environment, no
processes); each third-party library with side effects lives in one place.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from helpers import REPO

PACKAGE = REPO / "migcoord"

#: Modules that decide without touching the world.
CORE = ("model", "errors", "naming", "directives", "checks", "reconcile", "planning",
        "numbering", "sumfile", "sqlscan", "results", "snapshot", "docsgen", "sqlchecks", "sql")

#: A library -> the only modules (or packages) allowed to import it at run time.
HOMES = {
    "psycopg": ("db",),
    "filelock": ("workspace",),
    "tomllib": ("config",),
    "pglast": ("sql",),
}

#: What no core module may import: the edges, and the standard library's side doors.
EDGES = ("migcoord.config", "migcoord.discovery", "migcoord.workspace", "migcoord.gitref",
         "migcoord.db", "migcoord.cli", "migcoord.coordinator", "migcoord.embedded",
         "migcoord.devserver", "migcoord.verify")
SIDE_DOORS = ("subprocess", "socket", "shutil", "tempfile", "tomllib", "filelock", "psycopg")
FORBIDDEN_CALLS = ("open", "read_text", "read_bytes", "write_text", "write_bytes", "getenv")


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


class _Imports(ast.NodeVisitor):
    """Modules imported at run time (imports under `if TYPE_CHECKING:` are types only)."""

    def __init__(self, module: str, is_package: bool) -> None:
        self.module = module
        self.is_package = is_package
        self.found: set[str] = set()

    def visit_If(self, node: ast.If) -> None:
        if isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        self.found.update(alias.name for alias in node.names)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:
            anchor = self.module.split(".")
            anchor = anchor if self.is_package else anchor[:-1]
            anchor = anchor[: len(anchor) - (node.level - 1)]
            base = ".".join([*anchor, base] if base else anchor)
        self.found.add(base)
        self.found.update(f"{base}.{alias.name}" for alias in node.names)


def runtime_imports(path: Path) -> set[str]:
    visitor = _Imports(module_name(path), path.name == "__init__.py")
    visitor.visit(ast.parse(path.read_text(encoding="utf-8")))
    return visitor.found


def is_within(module: str, homes: tuple[str, ...]) -> bool:
    return any(module == f"migcoord.{home}" or module.startswith(f"migcoord.{home}.")
               for home in homes)


def is_core(module: str) -> bool:
    return is_within(module, CORE)


@pytest.mark.parametrize("library", sorted(HOMES))
def test_each_side_effecting_library_lives_in_one_place(library: str) -> None:
    """psycopg only under db/, filelock only in workspace, tomllib only in config, pglast in sql/."""
    offenders = [module_name(path) for path in modules()
                 if any(name == library or name.startswith(f"{library}.")
                        for name in runtime_imports(path))
                 and not is_within(module_name(path), HOMES[library])]
    assert offenders == []


def test_the_core_imports_neither_edges_nor_side_doors() -> None:
    """model, planning, checks, ... never reach the filesystem, the database or a process."""
    offenders = {}
    for path in modules():
        module = module_name(path)
        if not is_core(module):
            continue
        bad = sorted(name for name in runtime_imports(path)
                     if name.startswith(EDGES) or name.split(".")[0] in SIDE_DOORS)
        if bad:
            offenders[module] = bad
    assert offenders == {}


def test_the_core_reads_no_files_and_no_environment() -> None:
    """No open(), read_text(), os.environ or getenv in a core module: values come in."""
    offenders = []
    for path in modules():
        module = module_name(path)
        if not is_core(module):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                called = node.func
                name = called.attr if isinstance(called, ast.Attribute) else getattr(called, "id", "")
                if name in FORBIDDEN_CALLS:
                    offenders.append(f"{module}:{node.lineno} {name}()")
            if isinstance(node, ast.Attribute) and node.attr == "environ":
                offenders.append(f"{module}:{node.lineno} .environ")
    assert offenders == []


def test_importing_migcoord_loads_no_parser_and_no_database_driver_extras() -> None:
    """`import migcoord` (service start-up) stays light: no pglast, no filelock, no verify."""
    import subprocess
    import sys

    probe = ("import sys, migcoord; "
             "print(sorted(m for m in ('pglast', 'filelock', 'migcoord.verify', "
             "'migcoord.sqlchecks', 'tomllib') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True, cwd=REPO)
    assert done.stdout.strip() == "[]"
