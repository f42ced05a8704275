"""A setting the DSN sends that the server refuses while connecting (`options=-c ...`)
is a wrong DSN, exit 2 with its SQLSTATE, never "worth retrying"; no password shown."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import psycopg.conninfo
import pytest

from helpers import make_tree, pair, run
from test_engine_support import AB_CONFIG, env

SECRET = "p/a@s:s%w"


def url_with_options(dsn: str, options: str) -> str:
    """`dsn` as a URL with a percent-encoded password and `?options=...`."""
    params = psycopg.conninfo.conninfo_to_dict(dsn)
    return (f"postgresql://{params['user']}:{quote(SECRET, safe='')}@{params['host']}:"
            f"{params['port']}/{params['dbname']}?options={quote(options)}")


@pytest.mark.parametrize(("options", "sqlstate"), [
    ("-c statement_timeout=bad", "22023"),
    ("-c no_such_setting=1", "42704"),
    ("-c shared_buffers=1MB", "55P02"),
])
def test_a_setting_the_server_refuses_is_exit_2(tmp_path: Path, dsn: str, options: str,
                                               sqlstate: str) -> None:
    root = make_tree(tmp_path, pair("a", "000001", "m"), config=AB_CONFIG)
    result = run(["up", "--service", "a", "--format", "json"], cwd=root,
                 environ=env(url_with_options(dsn, options)))
    assert result.code == 2, result
    error = result.json()["error"]
    assert (error["type"], error["sqlstate"], error["exit_code"]) == (
        "ConnectSettingsRefused", sqlstate, 2)
    assert "options=-c NAME=VALUE" in error["hint"] and "retrying will not help" in error["hint"]
    assert SECRET not in result.stdout + result.stderr
    assert quote(SECRET, safe="") not in result.stdout + result.stderr

    # The same DSN without the setting works.
    good = url_with_options(dsn, "-c statement_timeout=5s")
    assert run(["up", "--service", "a"], cwd=root, environ=env(good)).code == 0
