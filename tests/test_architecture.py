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

#: Each layer (a folder of migcoord/, or a top-level module) -> the layers it may import
#: at run time. A new module is covered by the folder it is put in; the layers read
#: from the bottom up: errors, core, sql, checks / repo / db, local, verify, the facade,
#: the CLI. `migcoord` itself (the package's __init__) re-exports the public API.
LAYERS: dict[str, frozenset[str]] = {
    "errors": frozenset(),
    "core": frozenset({"core", "errors"}),
    "results": frozenset({"core", "errors"}),
    "sql": frozenset({"sql", "core", "errors"}),
    "checks": frozenset({"checks", "sql", "core", "errors"}),
    # repo reads each file's directive header with sql's reader (PostgreSQL's scanner,
    # which knows where comments end), then lets core interpret the lines.
    "repo": frozenset({"repo", "sql", "core", "errors"}),
    "db": frozenset({"db", "sql", "core", "errors"}),
    "local": frozenset({"local", "db", "repo", "core", "errors"}),
    # verify refuses what `check` reports in the files it would run (checks/runnable.py).
    "verify": frozenset({"verify", "local", "db", "repo", "checks", "sql", "core", "errors"}),
    # The facade, and the modules it hands each command to: `_engine` (up, down, status)
    # and `_repair` (mark, adopt, renumber's records) on the database, `_upkeep` for the
    # files beside the migrations, `_checking` and `_analyses` for check and the SQL.
    "coordinator": frozenset({"coordinator", "_engine", "_repair", "_upkeep", "_checking",
                              "_analyses", "verify", "local", "db", "repo", "checks", "sql",
                              "core", "results", "errors"}),
    "_upkeep": frozenset({"_upkeep", "_repair", "repo", "sql", "core", "results", "errors"}),
    "_checking": frozenset({"_checking", "_analyses", "repo", "checks", "sql", "core",
                            "errors"}),
    "_analyses": frozenset({"_analyses", "repo", "checks", "sql", "core", "errors"}),
    "_engine": frozenset({"_engine", "local", "db", "repo", "checks", "sql", "core", "results",
                          "errors"}),
    "_repair": frozenset({"_repair", "_engine", "local", "db", "repo", "checks", "sql", "core",
                          "results", "errors"}),
    "cli": frozenset({"cli", "coordinator", "verify", "local", "db", "repo", "checks", "sql",
                      "core", "results", "errors", "migcoord"}),
    "__main__": frozenset({"cli"}),
    "migcoord": frozenset({"coordinator", "core", "results", "errors", "verify"}),
}

#: Layers that decide without touching the world: values in, values out.
PURE = ("core", "sql", "checks", "results", "errors")

#: The one module of a pure layer allowed to start worker processes.
WORKER_POOL = "migcoord.checks.parallel"

#: A library -> the only modules (or packages) allowed to import it at run time.
HOMES = {
    "psycopg": ("db",),
    "filelock": ("repo.workspace",),
    "tomllib": ("repo.config",),
    "pglast": ("sql",),
    "subprocess": ("repo.git", "local"),
}

#: What no pure module may import: the standard library's side doors.
SIDE_DOORS = ("subprocess", "socket", "shutil", "tempfile", "tomllib", "filelock", "psycopg",
              "concurrent", "multiprocessing", "signal", "threading")
FORBIDDEN_CALLS = ("open", "read_text", "read_bytes", "write_text", "write_bytes", "getenv")


def layer_of(module: str) -> str:
    """`migcoord.core.model` -> `core`; `migcoord.coordinator` -> `coordinator`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


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
        # `from migcoord import sql` imports migcoord.sql, not the package's facade.
        if base != "migcoord":
            self.found.add(base)
        self.found.update(f"{base}.{alias.name}" for alias in node.names)


def runtime_imports(path: Path) -> set[str]:
    visitor = _Imports(module_name(path), path.name == "__init__.py")
    visitor.visit(ast.parse(path.read_text(encoding="utf-8")))
    return visitor.found


def is_within(module: str, homes: tuple[str, ...]) -> bool:
    return any(module == f"migcoord.{home}" or module.startswith(f"migcoord.{home}.")
               for home in homes)


def is_pure(module: str) -> bool:
    return layer_of(module) in PURE and module != WORKER_POOL


@pytest.mark.parametrize("library", sorted(HOMES))
def test_each_side_effecting_library_lives_in_one_place(library: str) -> None:
    """psycopg only under db/, filelock only in repo/workspace, tomllib only in
    repo/config, pglast only under sql/, processes only at the edges."""
    offenders = [module_name(path) for path in modules()
                 if any(name == library or name.startswith(f"{library}.")
                        for name in runtime_imports(path))
                 and not is_within(module_name(path), HOMES[library])]
    assert offenders == []


def test_every_module_belongs_to_a_known_layer() -> None:
    """A new folder or top-level module needs a line in LAYERS: the test cannot guess it."""
    unknown = sorted({layer_of(module_name(path)) for path in modules()} - set(LAYERS))
    assert unknown == []


def test_each_layer_imports_only_the_layers_below_it() -> None:
    """core imports only core and errors; db knows nothing of local servers; only the
    CLI imports the CLI; nothing imports the facade but the CLI and the package."""
    offenders = {}
    for path in modules():
        module = module_name(path)
        allowed = LAYERS[layer_of(module)]
        bad = sorted(name for name in runtime_imports(path)
                     if (name == "migcoord" or name.startswith("migcoord."))
                     and name != module and layer_of(name) not in allowed)
        if bad:
            offenders[module] = bad
    assert offenders == {}


def test_pure_layers_use_no_side_doors() -> None:
    """core, sql and checks never reach a process, a socket or a temporary file
    (checks.parallel, the one worker pool, excepted)."""
    offenders = {}
    for path in modules():
        module = module_name(path)
        if not is_pure(module):
            continue
        bad = sorted(name for name in runtime_imports(path) if name.split(".")[0] in SIDE_DOORS)
        if bad:
            offenders[module] = bad
    assert offenders == {}


def test_the_core_reads_no_files_and_no_environment() -> None:
    """No open(), read_text(), os.environ or getenv in a pure module: values come in."""
    offenders = []
    for path in modules():
        module = module_name(path)
        if not is_pure(module):
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
             "'migcoord.checks', 'tomllib') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True, cwd=REPO)
    assert done.stdout.strip() == "[]"


class _ModuleImports(ast.NodeVisitor):
    """The migcoord modules a module imports, at run time or for types only (a cycle of
    type imports still ties two modules into one): `from pkg import mod` is an import of
    pkg.mod, `from pkg import name` one of pkg."""

    def __init__(self, module: str, is_package: bool, known: set[str]) -> None:
        self.anchor = module.split(".") if is_package else module.split(".")[:-1]
        self.known = known
        self.found: set[str] = set()

    def visit_Import(self, node: ast.Import) -> None:
        self.found.update(alias.name for alias in node.names if alias.name in self.known)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:
            anchor = self.anchor[: len(self.anchor) - (node.level - 1)]
            base = ".".join([*anchor, base] if base else anchor)
        for alias in node.names:
            name = f"{base}.{alias.name}"
            if name in self.known:
                self.found.add(name)
            elif base in self.known:
                self.found.add(base)


def _module_graph() -> dict[str, set[str]]:
    known = {module_name(path) for path in modules()}
    graph: dict[str, set[str]] = {}
    for path in modules():
        module = module_name(path)
        visitor = _ModuleImports(module, path.name == "__init__.py", known)
        visitor.visit(ast.parse(path.read_text(encoding="utf-8")))
        graph[module] = visitor.found - {module}
    return graph


def test_no_import_cycle() -> None:
    """No module reaches itself through imports, run-time, deferred or type-only."""
    graph = _module_graph()
    cycles = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target):], target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []
