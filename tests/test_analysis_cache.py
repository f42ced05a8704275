"""The SQL analysis cache under `.migcoord/`: a second `check` parses only what changed,
and its findings are always those of a fresh parse (no server needed)."""

from __future__ import annotations

import shutil
from pathlib import Path

from helpers import make_tree, pair, run, write_sum_file
from migcoord import Coordinator
from migcoord.checks import plain
from migcoord.repo import analysiscache

CONFIG = """
[services.rule-service]
migrations = "rule-service/migrations"
"""
#: Two statements, one of which cannot run in a transaction: a hazard unless the file
#: says `-- migcoord:no-transaction`.
CONCURRENT = ("CREATE TABLE rules (id int);\n"
              "CREATE INDEX CONCURRENTLY rules_id ON rules (id);\n")


def repository(tmp_path: Path, config: str = CONFIG) -> Path:
    files = {"migcoord.toml": config,
             **pair("rule-service", "000001", "create_clients",
                    up="CREATE TABLE clients (id bigint PRIMARY KEY);\n",
                    down="DROP TABLE clients;\n"),
             **pair("rule-service", "000002", "create_rules", up=CONCURRENT,
                    down="DROP TABLE rules;\n")}
    root = make_tree(tmp_path / "repo", files)
    write_sum_file(root)
    return root


def parsed(root: Path) -> int:
    """How many migrations a new Coordinator's analysis parses (the others were stored)."""
    coordinator = Coordinator.load(root / "migcoord.toml")
    return coordinator._analyze(coordinator.catalog()).parsed


def codes(root: Path) -> list[tuple[str, int | None, int | None]]:
    findings = Coordinator.load(root / "migcoord.toml").check()
    return [(f.code, f.version, f.line) for f in findings]


def up_file(root: Path, version: str) -> Path:
    (path,) = (root / "rule-service/migrations").glob(f"{version}_*.up.sql")
    return path


def test_a_second_run_parses_only_what_changed(tmp_path: Path) -> None:
    root = repository(tmp_path)
    assert parsed(root) == 2
    assert (root / ".migcoord/analysis-cache").is_file()
    assert (root / ".migcoord/.gitignore").is_file()  # never committed by accident
    assert parsed(root) == 0
    up_file(root, "000001").write_text("CREATE TABLE clients (id bigint);\n")
    assert parsed(root) == 1
    assert parsed(root) == 0


def test_findings_from_the_cache_are_those_of_a_fresh_parse(tmp_path: Path) -> None:
    root = repository(tmp_path)
    fresh = codes(root)
    assert ("concurrently-in-transaction", 2, 2) in fresh
    assert codes(root) == fresh  # from the cache
    # The directive changes the analysis, not the checksums: it is part of the key.
    up_file(root, "000002").write_text("-- migcoord:no-transaction\n" + CONCURRENT)
    after = codes(root)
    assert not [c for c in after if c[0] == "concurrently-in-transaction"]
    up_file(root, "000002").write_text(CONCURRENT)
    assert codes(root) == fresh


def test_the_default_schema_is_part_of_the_key(tmp_path: Path) -> None:
    root = repository(tmp_path)
    assert parsed(root) == 2
    config = root / "migcoord.toml"
    config.write_text('default_schema = "app"\n' + config.read_text())
    assert parsed(root) == 2


def test_crlf_text_with_the_same_checksum_is_parsed_again(tmp_path: Path) -> None:
    """The checksum ignores line endings, the text sent to the parser does not."""
    root = repository(tmp_path)
    fresh = codes(root)
    path = up_file(root, "000002")
    path.write_bytes(b"\xef\xbb\xbf" + CONCURRENT.replace("\n", "\r\n").encode())
    assert parsed(root) == 1
    assert codes(root) == fresh
    assert parsed(root) == 0


def test_a_damaged_or_foreign_cache_is_ignored(tmp_path: Path) -> None:
    root = repository(tmp_path)
    fresh = codes(root)
    cache = root / ".migcoord/analysis-cache"
    whole = cache.read_bytes()
    for damaged in (b"", b"garbage\n\x00\x01", whole[: len(whole) // 2],
                    whole[:-1] + bytes([whole[-1] ^ 1])):
        cache.write_bytes(damaged)
        assert codes(root) == fresh
        assert cache.read_bytes() == whole  # written again, whole
    # Written by another migcoord (or Python, or parser): its stamp differs.
    coordinator = Coordinator.load(root / "migcoord.toml")
    stored = analysiscache.load(coordinator.config, analysiscache.fingerprint())
    analysiscache.save(coordinator.config, stored, "another version")
    assert parsed(root) == 2
    # An entry of the wrong shape is parsed again, the others are used.
    key = next(iter(stored))
    analysiscache.save(coordinator.config, {**stored, key: ("not", "an analysis")},
                       analysiscache.fingerprint())
    assert parsed(root) == 1
    assert codes(root) == fresh


def test_plain_values_round_trip(tmp_path: Path) -> None:
    root = repository(tmp_path)
    coordinator = Coordinator.load(root / "migcoord.toml")
    analyses = coordinator._analyze(coordinator.catalog())
    for summary in analyses.by_migration.values():
        assert plain.from_plain(plain.to_plain(summary)) == summary


def test_no_writable_state_folder_means_no_cache_and_no_error(tmp_path: Path) -> None:
    root = repository(tmp_path)
    shutil.rmtree(root / ".migcoord", ignore_errors=True)
    (root / ".migcoord").write_text("a file where the folder would be\n")
    result = run(["check"], cwd=root)
    assert result.code == 1, result.stderr  # the hazard is an error
    assert "Traceback" not in result.stderr and "analysis-cache" not in result.stderr
    assert parsed(root) == 2 and parsed(root) == 2
    assert (root / ".migcoord").read_text() == "a file where the folder would be\n"


def test_without_a_config_file_nothing_is_stored(tmp_path: Path) -> None:
    root = repository(tmp_path)
    coordinator = Coordinator.for_service("rule-service",
                                          migrations=root / "rule-service/migrations")
    coordinator.check()
    assert not list(tmp_path.rglob("analysis-cache"))


def test_the_cli_says_the_same_twice(tmp_path: Path) -> None:
    root = repository(tmp_path)
    first = run(["check", "--format", "json"], cwd=root)
    second = run(["check", "--format", "json"], cwd=root)
    assert first.stdout == second.stdout and first.code == second.code
    assert "concurrently-in-transaction" in first.stdout
