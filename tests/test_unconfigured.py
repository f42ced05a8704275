"""A folder of golang-migrate files that no service configures: `check` warns about one
near the configured folders (`unconfigured-folder`), `init` run again says what to add
to migcoord.toml, and `init` lists the folders it passed over and why. Every hinted
step is carried out, as a user would."""

from __future__ import annotations

import os
import re
from pathlib import Path

from test_init import ORIGINAL, write_tree

from helpers import run


def initialised(tmp_path: Path) -> Path:
    """ORIGINAL after `init`, with the one depends line its check asks for: clean."""
    root = write_tree(tmp_path / "repo", ORIGINAL)
    assert run(["init"], cwd=root).code == 0
    up = root / "aggregator/migrations/000003_create_notifications_table.up.sql"
    up.write_text("-- migcoord:depends rule-service:000002\n" + up.read_text())
    assert run(["check", "--strict"], cwd=root).code == 0
    return root


def add_folder(root: Path, folder: str, version: str, name: str, *, up: bool = True) -> None:
    path = root / folder
    path.mkdir(parents=True, exist_ok=True)
    if up:
        (path / f"{version}_{name}.up.sql").write_text(
            f"CREATE TABLE IF NOT EXISTS {name} (id bigint);\n")
    (path / f"{version}_{name}.down.sql").write_text(f"DROP TABLE IF EXISTS {name};\n")


def findings(root: Path, code: str) -> list[dict[str, object]]:
    result = run(["check", "--format", "json"], cwd=root)
    assert "Traceback" not in result.stderr
    return [f for f in result.json()["findings"] if f["code"] == code]


def test_check_warns_about_a_folder_added_after_init_and_its_hint_works(tmp_path: Path) -> None:
    """newsvc/migrations appears after init: check warns (a warning: exit 0), naming the
    table to add; added, plus `migcoord sum`, the folder is a service and check is clean
    of it, and a number it shares with another service is now reported."""
    root = initialised(tmp_path)
    add_folder(root, "newsvc/migrations", "000004", "news")
    [found] = findings(root, "unconfigured-folder")
    assert found["severity"] == "warning"
    assert found["path"] == "newsvc/migrations"
    assert "000004" in str(found["message"])
    assert run(["check"], cwd=root).code == 0
    table = re.findall(r"`(\[services\.[^`]+\])` and `([^`]+)`", str(found["hint"]))
    assert table == [("[services.newsvc]", 'migrations = "newsvc/migrations"')]
    with (root / "migcoord.toml").open("a") as config:
        config.write("\n" + "\n".join(table[0]) + "\n")
    assert "`migcoord sum`" in str(found["hint"])
    summed = run(["sum"], cwd=root)
    # sender's 000004 and newsvc's 000004 now meet: sum refuses, check names both.
    assert summed.code == 1 and "`migcoord resolve`" in summed.stderr
    assert findings(root, "unconfigured-folder") == []
    assert {f["service"] for f in findings(root, "duplicate-version")} == {"sender", "newsvc"}


def test_the_search_stays_near_the_configured_folders(tmp_path: Path) -> None:
    """Hidden folders, node_modules, vendor, testdata and symbolic links are not searched;
    a folder nested inside a configured one is golang-migrate's business, not a service."""
    root = initialised(tmp_path)
    add_folder(root, ".cache/migrations", "000009", "hidden")
    add_folder(root, "node_modules/pkg", "000009", "npm")
    add_folder(root, "tools/testdata", "000009", "fixture")
    add_folder(root, "rule-service/migrations/old", "000009", "nested")
    os.symlink(root / "aggregator/migrations", root / "linked")
    assert findings(root, "unconfigured-folder") == []
    add_folder(root, "tools/sql", "000009", "seen")
    assert [f["path"] for f in findings(root, "unconfigured-folder")] == ["tools/sql"]


def test_a_folder_of_down_files_only_is_reported_and_can_be_allowed(tmp_path: Path) -> None:
    """onlydown/migrations holds one down file: reported; `allow` in the config silences it."""
    root = initialised(tmp_path)
    add_folder(root, "onlydown/migrations", "000003", "x", up=False)
    [found] = findings(root, "unconfigured-folder")
    assert "(0 up, 1 down; versions 000003)" in str(found["message"])
    config = root / "migcoord.toml"
    # `allow` is a top-level key: it goes before the first table.
    config.write_text('allow = ["unconfigured-folder"]\n' + config.read_text())
    assert findings(root, "unconfigured-folder") == []


def test_init_run_again_says_what_to_add_and_the_addition_works(tmp_path: Path) -> None:
    """The second init writes nothing to migcoord.toml but prints the table for the new
    folder; pasted as printed, with `migcoord sum`, `check --strict` passes."""
    root = initialised(tmp_path)
    add_folder(root, "newsvc/migrations", "000005", "news")
    config_before = (root / "migcoord.toml").read_text()
    again = run(["init"], cwd=root)
    assert again.code == 0, again.stderr
    assert (root / "migcoord.toml").read_text() == config_before
    assert "not configured: newsvc/migrations (1 migration)" in again.stdout
    table = re.findall(r"^    (.+)$", again.stdout, re.MULTILINE)
    assert table == ["[services.newsvc]", 'migrations = "newsvc/migrations"']
    assert "then run `migcoord sum`" in again.stdout
    (root / "migcoord.toml").write_text(config_before + "\n" + "\n".join(table) + "\n")
    assert run(["sum"], cwd=root).code == 0
    strict = run(["check", "--strict"], cwd=root)
    assert strict.code == 0, strict.stdout + strict.stderr
    document = run(["init", "--format", "json"], cwd=root).json()
    assert document["unconfigured"] == []


def test_init_lists_the_folders_it_skipped_and_why(tmp_path: Path) -> None:
    """A folder of down files only and a symbolic link to a folder of migrations are
    listed as skipped, in text and JSON; neither becomes a service."""
    root = write_tree(tmp_path / "repo", ORIGINAL)
    add_folder(root, "onlydown/migrations", "000003", "x", up=False)
    (root / "linked").mkdir()
    os.symlink(root / "aggregator/migrations", root / "linked/migrations")
    result = run(["init"], cwd=root)
    assert result.code == 0, result.stderr
    assert re.search(r"^skipped: onlydown/migrations \(only down files \(1\), no up file",
                     result.stdout, re.MULTILINE)
    assert re.search(r"^skipped: linked/migrations \(a symbolic link to aggregator/migrations",
                     result.stdout, re.MULTILINE)
    config = (root / "migcoord.toml").read_text()
    assert "onlydown" not in config and "linked" not in config
    again = run(["init", "--format", "json"], cwd=root).json()
    assert {s["path"] for s in again["skipped"]} == {"onlydown/migrations", "linked/migrations"}
