"""The finding registry (migcoord/core/findings.py) against the code and the reference.

Every code a rule emits is declared, every declared code is emitted and documented in
docs/findings.md with its severity, summary and a BAD and a FIXED example, and a
`Finding` of an undeclared code cannot be built.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

import pytest

from helpers import REPO
from migcoord import Finding
from migcoord.core.findings import BY_CODE, CODES, FindingCode, registered

PACKAGE = REPO / "migcoord"
REFERENCE = (REPO / "docs" / "findings.md").read_text(encoding="utf-8")


def reference_sections() -> dict[str, str]:
    """docs/findings.md's `## heading` -> the text under it (up to the next `## `)."""
    parts = re.split(r"^## (.+)$", REFERENCE, flags=re.MULTILINE)
    return {title.strip(): body for title, body in zip(parts[1::2], parts[2::2], strict=True)}


def test_the_reference_table_lists_every_code_with_its_severity_and_summary() -> None:
    """The table at the top of docs/findings.md is the registry, row for row."""
    rows = re.findall(r"^\| \[`([a-z-]+)`\]\(#([a-z-]+)\) \| (error|warning) \| [^|]+ \| (.+) \|$",
                      REFERENCE, re.MULTILINE)
    documented = [(code, anchor, severity, summary.replace("\\|", "|"))
                  for code, anchor, severity, summary in rows]
    assert documented == [(c.code, c.code, c.severity, c.summary) for c in CODES]


@pytest.mark.parametrize("code", [c.code for c in CODES])
def test_every_code_has_a_section_with_a_bad_and_a_fixed_example(code: str) -> None:
    """`## code` starts with its severity and shows what is reported and how it is fixed."""
    section = reference_sections().get(code)
    assert section is not None, f"docs/findings.md has no `## {code}` section"
    assert section.lstrip().startswith(f"**{registered(code).severity}**")
    if registered(code).family == "retired":
        assert "No longer reported" in section
        return
    examples = "\n".join(re.findall(r"^```[a-z]*\n(.*?)^```$", section, re.MULTILINE | re.DOTALL))
    assert re.search(r"\bBAD\b", examples), f"## {code} has no BAD example"
    assert re.search(r"\bFIXED\b", examples), f"## {code} has no FIXED example"


# -- the codes the source emits -----------------------------------------------------------------


def _sources() -> dict[Path, ast.Module]:
    # The registry itself declares every code; it emits none.
    return {path: ast.parse(path.read_text(encoding="utf-8"))
            for path in sorted(PACKAGE.rglob("*.py")) if path != PACKAGE / "core" / "findings.py"}


def _code_positions(trees: dict[Path, ast.Module]) -> dict[str, set[int]]:
    """Callable name -> the positional index of its `code` parameter (or attrs field)."""
    positions: dict[str, set[int]] = defaultdict(set)
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef):
                names = [a.arg for a in (*node.args.posonlyargs, *node.args.args)]
                if names and names[0] in ("self", "cls"):
                    names = names[1:]
            elif isinstance(node, ast.ClassDef):
                names = [s.target.id for s in node.body
                         if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)]
            else:
                continue
            if "code" in names:
                positions[node.name].add(names.index("code"))
    return positions


def _string_constants(trees: dict[Path, ast.Module]) -> dict[str, set[str]]:
    """Module-level `NAME = "text"` of every module: NAME -> its values."""
    found: dict[str, set[str]] = defaultdict(set)
    for tree in trees.values():
        for statement in tree.body:
            if (isinstance(statement, ast.Assign) and isinstance(statement.value, ast.Constant)
                    and isinstance(statement.value.value, str)):
                for target in statement.targets:
                    if isinstance(target, ast.Name):
                        found[target.id].add(statement.value.value)
    return found


def emitted_codes() -> dict[str, set[str]]:
    """Every code passed as `code=...`, or in the `code` position of a function or attrs
    class that takes one, as a literal or a module constant -> where (path:line)."""
    trees = _sources()
    positions = _code_positions(trees)
    constants = _string_constants(trees)
    found: dict[str, set[str]] = defaultdict(set)
    for path, tree in trees.items():
        for call in (node for node in ast.walk(tree) if isinstance(node, ast.Call)):
            callee = call.func
            name = callee.attr if isinstance(callee, ast.Attribute) else getattr(callee, "id", "")
            arguments = [k.value for k in call.keywords if k.arg == "code"]
            arguments += [call.args[i] for i in positions.get(name, ()) if i < len(call.args)]
            for argument in arguments:
                if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                    values = {argument.value}
                elif isinstance(argument, ast.Name):
                    values = constants.get(argument.id, set())
                else:
                    continue
                for value in values:
                    found[value].add(f"{path.relative_to(REPO)}:{call.lineno}")
    return found


def test_every_code_emitted_in_the_source_is_declared_and_every_declared_one_emitted() -> None:
    """A rule cannot report a code the registry (and so `allow`) does not know, and the
    registry lists no code that nothing reports (but the retired ones, which nothing may)."""
    emitted = emitted_codes()
    undeclared = {code: sorted(where) for code, where in emitted.items() if code not in BY_CODE}
    assert undeclared == {}
    retired = {c.code for c in CODES if c.family == "retired"}
    assert sorted(BY_CODE.keys() - emitted.keys() - retired) == []
    assert sorted(retired & emitted.keys()) == []


REPORTED = [c for c in CODES if c.family != "retired"]


@pytest.mark.parametrize("entry", REPORTED, ids=[c.code for c in REPORTED])
def test_each_code_is_named_in_the_module_its_family_points_to(entry: FindingCode) -> None:
    """The family says where to read the rule: migcoord/checks/<family>.py (docs:
    core/docsgen.py)."""
    module = (PACKAGE / "core" / "docsgen.py" if entry.family == "docs"
              else PACKAGE / "checks" / f"{entry.family}.py")
    assert entry.code in module.read_text(encoding="utf-8")


# -- Finding and the registry -------------------------------------------------------------------


def test_finding_of_takes_the_severity_from_the_registry() -> None:
    """`Finding.of` needs only the code: errors and warnings as declared."""
    assert Finding.of("gap", "version 000003 is missing").severity == "error"
    assert Finding.of("not-idempotent", "CREATE TABLE t").severity == "warning"
    assert Finding.of("gap", "m", line=3, hint="h") == Finding(
        code="gap", severity="error", message="m", line=3, hint="h")


def test_a_finding_of_an_undeclared_code_cannot_be_built() -> None:
    """A typo in a rule's code fails the first test that runs the rule."""
    with pytest.raises(ValueError, match="'no-such-code' is not a finding code"):
        Finding.of("no-such-code", "message")
    with pytest.raises(ValueError, match="'gapp' is not a finding code"):
        Finding(code="gapp", severity="error", message="message")


def test_a_finding_cannot_contradict_its_declared_severity() -> None:
    """`down-mismatch` is a warning everywhere, or `allow` and `--strict` would disagree."""
    with pytest.raises(ValueError, match="down-mismatch is declared as warning, not error"):
        Finding(code="down-mismatch", severity="error", message="message")


def test_only_warnings_can_be_allowed() -> None:
    """`allow` accepts exactly the codes declared as warnings."""
    allowed = {c.code for c in CODES if c.can_be_allowed}
    assert allowed == {c.code for c in CODES if c.severity == "warning"}
    assert {"not-idempotent", "sql-skipped", "docs-stale"} <= allowed
    assert "gap" not in allowed
