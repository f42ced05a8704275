"""Interpret the leading `-- migcoord:` comment lines of a migration file.

Directives are `--` comment lines before the first statement (`migcoord.sql.reader`
finds those lines with PostgreSQL's scanner; this module only reads what they say):

    -- migcoord:depends rule-service:000002, 000003
    -- migcoord:no-transaction
    -- migcoord:allow not-idempotent
    -- migcoord:verify-data
    -- migcoord:lock-timeout 30s
    -- migcoord:statement-timeout 10min
    -- migcoord:retries 0

An unknown key is an error (`unknown-directive`), never a comment: a typo such as
`no-transation` must not silently run CREATE INDEX CONCURRENTLY inside a transaction.
A `-- migcoord:` line after the first statement is reported too: it would be ignored.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from migcoord.core import ddl
from migcoord.core.findings import ALLOW_HINT, allow_problem
from migcoord.core.model import DependencyRef, Directives, Finding

KNOWN_KEYS = ("depends", "no-transaction", "allow", "verify-data", "lock-timeout",
              "statement-timeout", "retries")
#: The directives that set one value of the file's DDL settings (migcoord.core.ddl).
_DDL_KEYS = {"lock-timeout": "lock_timeout", "statement-timeout": "statement_timeout",
             "retries": "retries"}
_DIRECTIVE = re.compile(r"^--\s*migcoord\s*:\s*([A-Za-z0-9_\-]*)\s*(.*?)\s*$")
_DEPENDENCY = re.compile(r"^(?:([A-Za-z0-9][A-Za-z0-9_.\-]*)\s*:\s*)?([0-9]+)$")
_CODE = re.compile(r"^[a-z][a-z0-9\-]*$")


def parse(header: Sequence[tuple[int, str]], *, body_line: int | None = None,
          later: Sequence[tuple[int, str]] = ()) -> tuple[Directives, list[Finding]]:
    """Directives of a file and the problems with them (line numbers are 1-based).

    `header` holds the file's `--` comments before its first token as `(line, text)`,
    the text starting at `--`; `body_line` is the line of that token (None when the file
    has none); `later` holds comment lines after it, which are reported if they are
    directives. `migcoord.sql.reader.line_comments` reads all three from a file's text.
    Findings carry code, severity, message, line and hint; the caller adds path, service
    and version.
    """
    depends: list[DependencyRef] = []
    allow: set[str] = set()
    flags: set[str] = set()
    ddl_values: dict[str, str] = {}
    findings: list[Finding] = []
    for number, comment in header:
        match = _DIRECTIVE.match(comment)
        if match is None:
            continue
        key, value = match.group(1), match.group(2)
        if key == "depends":
            refs, problems = _parse_depends(value, number)
            depends.extend(refs)
            findings.extend(problems)
        elif key == "allow":
            codes, problems = _parse_allow(value, number)
            allow.update(codes)
            findings.extend(problems)
        elif key in _DDL_KEYS:
            problem = _ddl_problem(key, value, number, seen=_DDL_KEYS[key] in ddl_values)
            if problem is not None:
                findings.append(problem)
            else:
                ddl_values[_DDL_KEYS[key]] = value
        elif key in ("no-transaction", "verify-data"):
            flags.add(key)
            if value:
                findings.append(_unexpected_value(key, value, number))
        else:
            findings.append(_unknown(key, number))
    if later:
        findings.extend(_misplaced(later, body_line))
    directives = Directives(
        depends=tuple(depends),
        no_transaction="no-transaction" in flags,
        allow=frozenset(allow),
        verify_data="verify-data" in flags,
        ddl=ddl.settings_from(ddl_values, lambda key, why: None),
        body_line=body_line or 1,
    )
    return directives, findings


def find(header: Sequence[tuple[int, str]], key: str) -> tuple[int, str] | None:
    """The first `-- migcoord:KEY ...` line of `header` (as `parse` takes it): its line
    number and its text without trailing blanks; None when the file has none, so that
    advice to set a directive can say to change the line that is there (a second one is
    an error)."""
    for number, comment in header:
        match = _DIRECTIVE.match(comment)
        if match is not None and match.group(1) == key:
            return number, comment.rstrip()
    return None


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


def _parse_allow(value: str, line: int) -> tuple[list[str], list[Finding]]:
    codes = [c for c in re.split(r"[\s,]+", value) if c]
    if not codes:
        return codes, [_bad_directive(line, "`-- migcoord:allow` needs at least one finding code",
                                      "e.g. `-- migcoord:allow not-idempotent`")]
    problems = []
    for code in codes:
        if not _CODE.match(code):
            problems.append(_bad_directive(line, f"`{code}` is not a finding code",
                                           "finding codes look like not-idempotent; see "
                                           "docs/findings.md"))
        elif (problem := allow_problem(code)) is not None:
            problems.append(_bad_directive(line, f"`-- migcoord:allow {code}`: {problem}",
                                           ALLOW_HINT))
    return codes, problems


def _ddl_problem(key: str, value: str, line: int, *, seen: bool) -> Finding | None:
    """Why `-- migcoord:KEY VALUE` (lock-timeout, statement-timeout, retries) cannot be
    used, or None."""
    example = {"lock-timeout": "30s", "statement-timeout": "10min", "retries": "0"}[key]
    if seen:
        return _bad_directive(line, f"`-- migcoord:{key}` is given twice",
                              "keep one line, with the value you mean")
    if not value:
        return _bad_directive(line, f"`-- migcoord:{key}` needs a value",
                              f"e.g. `-- migcoord:{key} {example}`")
    _, why = ddl.parse_retries(value) if key == "retries" else ddl.parse_duration(value)
    if why is None:
        return None
    return _bad_directive(line, f"`-- migcoord:{key} {value}`: {why}",
                          f"e.g. `-- migcoord:{key} {example}`")


def _unknown(key: str, line: int) -> Finding:
    suggestion = _closest(key)
    return Finding.of(
        "unknown-directive",
        f"unknown directive `-- migcoord:{key}`",
        line=line,
        hint=(f"did you mean `-- migcoord:{suggestion}`? " if suggestion else "")
        + "known directives: " + ", ".join(KNOWN_KEYS),
    )


def _misplaced(later: Sequence[tuple[int, str]], body_line: int | None) -> list[Finding]:
    """Directive lines after the first statement, which nothing would read."""
    return [
        Finding.of(
            "unknown-directive",
            f"`-- migcoord:{match.group(1)}` comes after the first statement (line "
            f"{body_line}) and would be ignored",
            line=number,
            hint="move it to the top of the file, before any SQL",
        )
        for number, comment in later
        if (match := _DIRECTIVE.match(comment)) is not None
    ]


def _unexpected_value(key: str, value: str, line: int) -> Finding:
    return _bad_directive(line, f"`-- migcoord:{key}` takes no value, got {value!r}",
                          f"write the line as `-- migcoord:{key}`")


def _bad_directive(line: int, message: str, hint: str) -> Finding:
    return Finding.of("unknown-directive", message, line=line, hint=hint)


def _closest(key: str) -> str | None:
    import difflib

    matches = difflib.get_close_matches(key, KNOWN_KEYS, n=1, cutoff=0.6)
    return matches[0] if matches else None
