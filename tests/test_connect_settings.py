"""A DSN whose own SSL, GSS or option settings cannot work with the server is exit 2
with what to change, never "worth retrying": the same settings fail the same way every
time. A server that is away stays exit 3. No password is printed either way."""

from __future__ import annotations

from pathlib import Path

import psycopg.conninfo
import pytest

from helpers import make_tree, pair, run
from test_engine_support import AB_CONFIG, env

SECRET = "s3cr/t@p:w"


def with_options(dsn: str, options: str) -> str:
    params = psycopg.conninfo.conninfo_to_dict(dsn)
    params["password"] = SECRET
    return psycopg.conninfo.make_conninfo("", **params) + " " + options


@pytest.mark.parametrize(("options", "advice"), [
    ("sslmode=require", "enable SSL on the server"),
    ("sslmode=verify-full sslrootcert=/nonexistent/root.crt", "enable SSL on the server"),
    ("requiressl=1", "enable SSL on the server"),
    ("sslmode=bogus", "check the spelling of its value"),
    ("channel_binding=require", "drop channel_binding"),
    ("gssencmode=require", "run kinit"),
])
def test_settings_the_server_cannot_meet_are_exit_2(tmp_path: Path, dsn: str, options: str,
                                                   advice: str) -> None:
    root = make_tree(tmp_path, pair("a", "000001", "m"), config=AB_CONFIG)
    for command in (["status"], ["up", "--service", "a", "--format", "json"]):
        result = run(command, cwd=root, environ=env(with_options(dsn, options)))
        assert result.code == 2, result
        assert advice in result.stderr
        assert "retrying will not help" in result.stderr
        assert SECRET not in result.stdout + result.stderr
        assert "Traceback" not in result.stderr
    assert result.json()["error"]["exit_code"] == 2


def test_a_server_that_is_away_is_still_worth_retrying(tmp_path: Path) -> None:
    root = make_tree(tmp_path, pair("a", "000001", "m"), config=AB_CONFIG)
    result = run(["status"], cwd=root, environ=env(
        f"host=127.0.0.1 port=1 dbname=x user=u password={SECRET} sslmode=prefer"))
    assert result.code == 3, result
    assert SECRET not in result.stderr
