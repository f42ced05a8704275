"""The alerting example as it is deployed: each service's image holds only its own folder.

Every command runs in its own `python -m migcoord` process from a working copy that has
migcoord.toml, migcoord.sum and one service's migrations folder, as a service's
container would at start-up.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from helpers import Result, copy_example, run, run_process
from test_engine_support import env, history_versions, table_exists

SERVICES = ("rule-service", "aggregator", "sender")
RULE_SERVICE = [1, 2, 3, 4, 5]


def checkout_of(root: Path, service: str) -> Path:
    """The example with only `service`'s folder (config and sum kept)."""
    copy_example(root)
    for other in SERVICES:
        if other != service:
            shutil.rmtree(root / other)
    assert [name for name in SERVICES if (root / name).exists()] == [service]
    return root


def states(document: dict[str, Any]) -> dict[int, str]:
    return {m["version"]: m["state"] for m in document["migrations"]}


def status_json(cwd: Path, dsn: str) -> dict[str, Any]:
    result = run_process(["status", "--format", "json"], cwd=cwd, environ=env(dsn))
    assert result.code == 0, result.stderr
    document: dict[str, Any] = result.json()
    assert document["dirty"] is False
    return document


def versions(result: Result, key: str) -> list[int]:
    return [step["version"] for step in result.json()[key]]


def test_aggregator_waits_for_rule_service_then_round_trips_from_separate_checkouts(
    tmp_path: Path, dsn: str
) -> None:
    """aggregator refuses until rule-service migrated; then up, down and up again all work."""
    rules = checkout_of(tmp_path / "rule-service-image", "rule-service")
    agg = checkout_of(tmp_path / "aggregator-image", "aggregator")

    first = status_json(agg, dsn)
    assert first["database_version"] is None
    assert states(first) == {6: "pending"}

    refused = run_process(["up", "--service", "aggregator"], cwd=agg, environ=env(dsn))
    assert refused.code == 1, refused
    assert "rule-service:000002" in refused.stderr
    assert "migcoord up --service rule-service" in refused.stderr
    assert "Traceback" not in refused.stderr
    with_deps = run_process(["up", "--service", "aggregator", "--with-deps"], cwd=agg,
                            environ=env(dsn))
    assert with_deps.code == 1, with_deps
    assert "its files are not in this checkout" in with_deps.stderr
    assert history_versions(dsn) == []
    assert not table_exists(dsn, "notifications")

    applied = run_process(["up", "--service", "rule-service", "--format", "json"], cwd=rules,
                          environ=env(dsn))
    assert applied.code == 0, applied.stderr
    assert versions(applied, "applied") == RULE_SERVICE
    seen_by_rules = status_json(rules, dsn)
    assert seen_by_rules["database_version"] == 5
    assert states(seen_by_rules) == dict.fromkeys(RULE_SERVICE, "applied")
    seen_by_agg = status_json(agg, dsn)
    assert seen_by_agg["database_version"] == 5
    assert states(seen_by_agg) == {**dict.fromkeys(RULE_SERVICE, "applied"), 6: "pending"}

    applied = run_process(["up", "--service", "aggregator", "--format", "json"], cwd=agg,
                          environ=env(dsn))
    assert applied.code == 0, applied.stderr
    assert versions(applied, "applied") == [6]
    assert table_exists(dsn, "notifications")
    for checkout in (agg, rules):
        document = status_json(checkout, dsn)
        assert document["database_version"] == 6
        assert states(document) == dict.fromkeys([*RULE_SERVICE, 6], "applied")

    rolled = run_process(["down", "--service", "aggregator", "--format", "json"], cwd=agg,
                         environ=env(dsn))
    assert rolled.code == 0, rolled.stderr
    assert versions(rolled, "rolled_back") == [6]
    assert not table_exists(dsn, "notifications")
    document = status_json(agg, dsn)
    assert document["database_version"] == 5
    assert states(document) == {**dict.fromkeys(RULE_SERVICE, "applied"), 6: "pending"}

    again = run_process(["up", "--service", "aggregator", "--format", "json"], cwd=agg,
                        environ=env(dsn))
    assert again.code == 0, again.stderr
    assert versions(again, "applied") == [6]
    assert table_exists(dsn, "notifications")
    document = status_json(agg, dsn)
    assert document["database_version"] == 6
    assert states(document) == dict.fromkeys([*RULE_SERVICE, 6], "applied")
    assert history_versions(dsn) == [*RULE_SERVICE, 6]


def test_aggregator_checkout_shows_rule_service_rows_as_applied_but_not_judged(
    tmp_path: Path, dsn: str
) -> None:
    """Rows of a service whose folder is absent are reported as recorded, never as missing."""
    rules = checkout_of(tmp_path / "rule-service-image", "rule-service")
    agg = checkout_of(tmp_path / "aggregator-image", "aggregator")
    assert run(["up", "--service", "rule-service"], cwd=rules, environ=env(dsn)).code == 0

    document = status_json(agg, dsn)
    by_version = {m["version"]: m for m in document["migrations"]}
    for version in RULE_SERVICE:
        assert by_version[version]["service"] == "rule-service"
        assert by_version[version]["state"] == "applied"
        assert by_version[version]["detail"] == "folder not here"
        assert by_version[version]["applied_at"] is not None
    assert by_version[6]["state"] == "pending"
    assert by_version[6]["detail"] is None

    text = run_process(["status"], cwd=agg, environ=env(dsn))
    assert text.code == 0, text.stderr
    assert "applied (folder not here)" in text.stdout
    assert "folders not here (not judged): rule-service, sender" in text.stdout

    checked = run_process(["check", "--db", "--format", "json"], cwd=agg, environ=env(dsn))
    assert checked.code == 0, checked.stdout
    assert not [f for f in checked.json()["findings"] if f["severity"] == "error"]


def test_rule_service_checkout_cannot_roll_back_what_aggregator_depends_on(
    tmp_path: Path, dsn: str
) -> None:
    """The dependency is read from the database, so it holds without aggregator's files."""
    rules = checkout_of(tmp_path / "rule-service-image", "rule-service")
    agg = checkout_of(tmp_path / "aggregator-image", "aggregator")
    assert run(["up", "--service", "rule-service"], cwd=rules, environ=env(dsn)).code == 0
    assert run(["up", "--service", "aggregator"], cwd=agg, environ=env(dsn)).code == 0

    refused = run_process(["down", "--service", "rule-service", "--to", "1"], cwd=rules,
                          environ=env(dsn))
    assert refused.code == 1, refused
    assert "aggregator's 000006" in refused.stderr
    assert "--cascade" in refused.stderr
    assert history_versions(dsn) == [*RULE_SERVICE, 6]

    cascade = run_process(["down", "--service", "rule-service", "--to", "1", "--cascade"],
                          cwd=rules, environ=env(dsn))
    assert cascade.code == 1, cascade
    assert "000006" in cascade.stderr
    assert "down file is not in this checkout" in cascade.stderr
    assert history_versions(dsn) == [*RULE_SERVICE, 6]

    one = run_process(["down", "--service", "rule-service", "--format", "json"], cwd=rules,
                      environ=env(dsn))
    assert one.code == 0, one.stderr
    assert versions(one, "rolled_back") == [5]


@pytest.mark.parametrize("service", ["rule-service", "aggregator"])
def test_a_single_service_checkout_passes_the_offline_check(tmp_path: Path, service: str) -> None:
    """`check` in a service image is clean: the absent folders are not errors."""
    checkout = checkout_of(tmp_path / "image", service)
    result = run(["check", "--format", "json"], cwd=checkout)
    assert result.code == 0, result.stdout
    assert result.json()["ok"] is True
