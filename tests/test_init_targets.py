"""Where `init` and `makefile --write` put files: a folder given as `DIR/`, paths shown as
given, and nothing written at all when one target is in the way."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import REPO, run

PACKAGED = (REPO / "migcoord" / "Makefile.inc").read_text()


def test_makefile_write_to_a_new_folder_with_a_trailing_slash(tmp_path: Path) -> None:
    """`--write DIR/` creates DIR and writes DIR/Makefile.inc (not a file named DIR);
    the path is printed as given, from any working directory."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = tmp_path / "repo" / "tools"
    result = run(["makefile", "--write", f"{target}/"], cwd=elsewhere)
    assert result.code == 0, result.stderr
    assert result.stdout == f"wrote {target}/Makefile.inc\n"
    assert (target / "Makefile.inc").read_text() == PACKAGED

    relative = run(["makefile", "--write", "../rel/"], cwd=elsewhere)
    assert relative.stdout == "wrote ../rel/Makefile.inc\n"
    assert (tmp_path / "rel" / "Makefile.inc").read_text() == PACKAGED
    again = run(["makefile", "--write", "../rel", "--format", "json"], cwd=elsewhere)
    assert again.json() == {"path": "../rel/Makefile.inc", "action": "kept"}


def test_makefile_write_into_a_file_given_as_a_folder_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "notes").write_text("mine\n")
    result = run(["makefile", "--write", "notes/"], cwd=tmp_path)
    assert result.code == 1
    assert "notes/Makefile.inc" in result.stderr and "Traceback" not in result.stderr
    assert (tmp_path / "notes").read_text() == "mine\n"


def golang_migrate_repo(root: Path) -> Path:
    folder = root / "svc" / "migrations"
    folder.mkdir(parents=True)
    (folder / "000001_t.up.sql").write_text("CREATE TABLE IF NOT EXISTS t (id int);\n")
    (folder / "000001_t.down.sql").write_text("DROP TABLE IF EXISTS t;\n")
    return root


@pytest.mark.parametrize("dry_run", [False, True])
def test_init_writes_nothing_when_a_target_is_a_folder(tmp_path: Path, dry_run: bool) -> None:
    """svc/Makefile and .gitignore are folders: init names both and writes nothing (no
    migcoord.toml or Makefile.inc left behind); moved away, init runs."""
    root = golang_migrate_repo(tmp_path)
    (root / "svc" / "Makefile").mkdir()
    (root / ".gitignore").mkdir()
    before = sorted(p.relative_to(root) for p in root.rglob("*"))

    result = run(["init", *(["--dry-run"] if dry_run else [])], cwd=root)
    assert result.code == 1, result.stdout
    assert "init wrote nothing: .gitignore is a folder; svc/Makefile is a folder" in result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before

    (root / "svc" / "Makefile").rmdir()
    (root / ".gitignore").rmdir()
    assert run(["init"], cwd=root).code == 0
    assert (root / "svc" / "Makefile").is_file() and (root / "migcoord.sum").is_file()


def test_init_again_with_a_blocked_target_changes_nothing(tmp_path: Path) -> None:
    """A second init (config there) with migcoord.sum turned into a folder: refused
    before the .gitignore line is appended."""
    root = golang_migrate_repo(tmp_path)
    assert run(["init"], cwd=root).code == 0
    (root / ".gitignore").write_text("bin/\n")
    (root / "migcoord.sum").unlink()
    (root / "migcoord.sum").mkdir()
    result = run(["init"], cwd=root)
    assert result.code == 1
    assert "migcoord.sum is a folder" in result.stderr
    assert (root / ".gitignore").read_text() == "bin/\n"


def test_init_quiet_prints_only_what_needs_a_hand(tmp_path: Path) -> None:
    """-q: the files are written, and the only output is a Makefile init did not change."""
    root = golang_migrate_repo(tmp_path / "plain")
    result = run(["init", "-q"], cwd=root)
    assert (result.code, result.stdout, result.stderr) == (0, "", "")
    assert (root / "migcoord.toml").is_file()

    own = golang_migrate_repo(tmp_path / "own")
    (own / "svc" / "Makefile").write_text("migrate-up:\n\tmigrate up\n")
    result = run(["init", "-q"], cwd=own)
    assert result.code == 0
    [line] = result.stdout.splitlines()
    assert line.split()[:2] == ["change", "svc/Makefile"]


def test_dev_status_quiet_says_it_by_its_exit_code(tmp_path: Path) -> None:
    root = golang_migrate_repo(tmp_path)
    assert run(["init", "-q"], cwd=root).code == 0
    loud = run(["dev", "status"], cwd=root)
    assert loud.code == 3 and loud.stdout.startswith("not running")
    quiet = run(["dev", "status", "-q"], cwd=root)
    assert (quiet.code, quiet.stdout, quiet.stderr) == (3, "", "")
