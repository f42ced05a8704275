"""Hints that tell the user to write TOML give TOML that loads: pasted into migcoord.toml
as they are, the finding goes away (quoted, mixed-case and schema-qualified names, a
service whose name needs quoting as a key)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from helpers import make_tree, pair, run
from migcoord.core.scaffold import toml_literal

CONFIG = """\
[services."billing.v2"]
migrations = "billing/migrations"
owns = ["accounts"]
"""

UP = '''\
CREATE TABLE IF NOT EXISTS accounts (id int);
CREATE TABLE IF NOT EXISTS "MixedCase" (id int);
CREATE SCHEMA IF NOT EXISTS other;
CREATE TABLE IF NOT EXISTS other."Thing" (id int);
CREATE TABLE IF NOT EXISTS "it's" (id int);
CREATE TABLE IF NOT EXISTS "say ""hi""" (id int);
CREATE TABLE IF NOT EXISTS "back\\slash" (id int);
CREATE TABLE IF NOT EXISTS digests (id int);
'''
DOWN = '''\
DROP TABLE IF EXISTS digests, "back\\slash", "say ""hi""", "it's", other."Thing", "MixedCase";
DROP SCHEMA IF EXISTS other;
DROP TABLE IF EXISTS accounts;
'''


def unowned_hints(root: Path) -> list[str]:
    result = run(["check", "--format", "json"], cwd=root)
    assert "Traceback" not in result.stderr
    return [f["hint"] for f in result.json()["findings"] if f["code"] == "unowned-table"]


def test_unowned_table_hints_paste_into_migcoord_toml(tmp_path: Path) -> None:
    root = make_tree(tmp_path, pair("billing", "000001", "tables", UP, DOWN), config=CONFIG)
    hints = unowned_hints(root)
    assert len(hints) == 6, hints
    key = '[services."billing.v2"]'
    assert f"add '\"MixedCase\"' to `owns` of {key}" in hints
    assert f"add 'other.\"Thing\"' to `owns` of {key}" in hints
    assert 'add "digests" to `owns` of [services."billing.v2"]' in hints

    values = []
    for hint in hints:
        match = re.fullmatch(r'add (.+) to `owns` of \[services\."billing\.v2"\]', hint)
        assert match is not None, hint
        values.append(match.group(1))
    config = root / "migcoord.toml"
    config.write_text(config.read_text().replace(
        'owns = ["accounts"]', 'owns = ["accounts", ' + ", ".join(values) + "]"))

    result = run(["check", "--strict"], cwd=root)
    assert result.code == 0, result.stdout + result.stderr
    assert unowned_hints(root) == []


@pytest.mark.parametrize(("text", "toml"), [
    ("rules", '"rules"'), ('"MixedCase"', "'\"MixedCase\"'"),
    ("\"it's\"", '"\\"it\'s\\""'), ("tab\there", '"tab\\u0009here"'),
])
def test_toml_literal_picks_the_plainest_spelling(text: str, toml: str) -> None:
    import tomllib

    assert toml_literal(text) == toml
    assert tomllib.loads(f"x = {toml}")["x"] == text
