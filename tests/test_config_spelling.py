"""Config errors quote values as TOML writes them (`true`, not Python's `True`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import run

SERVICE = '[services.a]\nmigrations = "a"\n'


@pytest.mark.parametrize(("toml", "expected"), [
    ("lock_timeout = true\n", "[lock_timeout] expected a number, got true"),
    ("[ddl]\nlock_timeout = true\n", "[ddl.lock_timeout] expected a duration"),
    ("[ddl]\nretries = false\n", "from 0 to 100, got false"),
    ('[services.b]\nmigrations = "b"\nowns = true\n', "[services.b.owns] expected a list, got true"),
    ('[services.b]\nmigrations = "b"\nddl = { retries = true }\n', "from 0 to 100, got true"),
])
def test_a_boolean_in_the_wrong_place_is_quoted_as_toml(tmp_path: Path, toml: str,
                                                        expected: str) -> None:
    (tmp_path / "migcoord.toml").write_text(toml + SERVICE)
    result = run(["check"], cwd=tmp_path)
    assert result.code == 2
    assert expected in result.stderr, result.stderr
    assert "True" not in result.stderr and "False" not in result.stderr


def test_the_api_spells_it_the_same_way() -> None:
    from migcoord.repo.config import seconds_problem

    assert seconds_problem(True) == "expected a number of seconds, got true"
