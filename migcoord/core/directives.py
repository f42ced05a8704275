"""Read the leading `-- migcoord:` comment lines of an up file.

Directives are `--` comment lines before the first statement:

    -- migcoord:depends rule-service:000002, 000003
    -- migcoord:no-transaction
    -- migcoord:allow not-idempotent
    -- migcoord:verify-data

An unknown key is an error (`unknown-directive`), never a comment: a typo such as
`no-transation` must not silently run CREATE INDEX CONCURRENTLY inside a transaction.
A `-- migcoord:` line after the first statement is reported too: it would be ignored.
"""

from __future__ import annotations

import re

from migcoord.core.model import DependencyRef, Directives, Finding

KNOWN_KEYS = ("depends", "no-transaction", "allow", "verify-data")
_DIRECTIVE = re.compile(r"^\s*--\s*migcoord\s*:\s*([A-Za-z0-9_\-]*)\s*(.*?)\s*$")
_DEPENDENCY = re.compile(r"^(?:([A-Za-z0-9][A-Za-z0-9_.\-]*)\s*:\s*)?([0-9]+)$")
_CODE = re.compile(r"^[a-z][a-z0-9\-]*$")


def parse(text: str) -> tuple[Directives, list[Finding]]:
    """Directives of an up file and the problems with them (line numbers are 1-based).

    Findings carry code, severity, message, line and hint; the caller adds path, service
    and version.
    """
    depends: list[DependencyRef] = []
    allow: set[str] = set()
    no_transaction = False
    verify_data = False
    findings: list[Finding] = []
    body_line: int | None = None
    in_block_comment = False

    for number, line in enumerate(text.split("\n"), start=1):
        stripped = line.strip()
        if body_line is None:
            if in_block_comment:
                if "*/" in stripped:
                    in_block_comment = False
                continue
            if not stripped:
                continue
            if stripped.startswith("/*"):
                in_block_comment = "*/" not in stripped[2:]
                continue
            if not stripped.startswith("--"):
                body_line = number
                continue
        match = _DIRECTIVE.match(line)
        if match is None:
            continue
        key, value = match.group(1), match.group(2)
        if body_line is not None:
            findings.append(
                Finding.of(
                    "unknown-directive",
                    f"`-- migcoord:{key}` comes after the first statement (line "
                    f"{body_line}) and would be ignored",
                    line=number,
                    hint="move it to the top of the file, before any SQL",
                )
            )
            continue
        if key == "depends":
            refs, problems = _parse_depends(value, number)
            depends.extend(refs)
            findings.extend(problems)
        elif key == "no-transaction":
            if value:
                findings.append(_unexpected_value(key, value, number))
            no_transaction = True
        elif key == "verify-data":
            if value:
                findings.append(_unexpected_value(key, value, number))
            verify_data = True
        elif key == "allow":
            codes = [c for c in re.split(r"[\s,]+", value) if c]
            if not codes:
                findings.append(
                    _bad_directive(number, "`-- migcoord:allow` needs at least one finding code",
                                   "e.g. `-- migcoord:allow not-idempotent`")
                )
            for code in codes:
                if not _CODE.match(code):
                    findings.append(
                        _bad_directive(number, f"`{code}` is not a finding code",
                                       "finding codes look like not-idempotent; see docs/findings.md")
                    )
                allow.add(code)
        else:
            suggestion = _closest(key)
            findings.append(
                Finding.of(
                    "unknown-directive",
                    f"unknown directive `-- migcoord:{key}`",
                    line=number,
                    hint=(f"did you mean `-- migcoord:{suggestion}`? " if suggestion else "")
                    + "known directives: " + ", ".join(KNOWN_KEYS),
                )
            )

    directives = Directives(
        depends=tuple(depends),
        no_transaction=no_transaction,
        allow=frozenset(allow),
        verify_data=verify_data,
        body_line=body_line or 1,
    )
    return directives, findings


def misplaced_in_down(directives: Directives) -> tuple[Finding, ...]:
    """Directives that mean nothing in a down file (the up file declares them)."""
    if not directives.depends and not directives.verify_data:
        return ()
    line = min((ref.line for ref in directives.depends), default=1)
    return (Finding.of("unknown-directive",
                       "`depends` and `verify-data` belong in the up file; in a down "
                       "file they would be ignored", line=line,
                       hint="move the line to the up file"),)


def _parse_depends(value: str, line: int) -> tuple[list[DependencyRef], list[Finding]]:
    refs: list[DependencyRef] = []
    problems: list[Finding] = []
    items = [item.strip() for item in value.split(",")]
    if not value.strip():
        return refs, [
            _bad_directive(line, "`-- migcoord:depends` names no migration",
                           "e.g. `-- migcoord:depends rule-service:000002, 000003`")
        ]
    for item in items:
        match = _DEPENDENCY.match(item)
        if match is None:
            problems.append(
                _bad_directive(
                    line,
                    f"cannot read dependency {item!r}",
                    "write `service:version` or a bare version, separated by commas, e.g. "
                    "`-- migcoord:depends rule-service:000002, 000003`",
                )
            )
            continue
        refs.append(
            DependencyRef(version=int(match.group(2)), service=match.group(1), line=line, text=item)
        )
    return refs, problems


def _unexpected_value(key: str, value: str, line: int) -> Finding:
    return _bad_directive(line, f"`-- migcoord:{key}` takes no value, got {value!r}",
                          f"write the line as `-- migcoord:{key}`")


def _bad_directive(line: int, message: str, hint: str) -> Finding:
    return Finding.of("unknown-directive", message, line=line, hint=hint)


def _closest(key: str) -> str | None:
    import difflib

    matches = difflib.get_close_matches(key, KNOWN_KEYS, n=1, cutoff=0.6)
    return matches[0] if matches else None
