"""Files that `up`, `down`, `status` and `verify` must never fake or skip, on a real server.

Every file-level error that `check` reports stops the run before anything is sent, with
check's own code and message (checks/runnable.py); nothing named like a migration is
skipped without a word; an up and a down of one version are one migration whatever
their names, as in golang-migrate.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from helpers import make_tree, pair, run, run_process
from migcoord import Coordinator, InvalidMigrationFiles, MigrationFailed
from test_engine_support import AB_CONFIG, env, history, schema_snapshot, table_exists

LATIN1 = "INSERT INTO t VALUES ('St\xf6rung');\n".encode("latin-1")


def tree(root: Path, *files: dict[str, str | bytes]) -> Path:
    merged: dict[str, str | bytes] = {}
    for one in files:
        merged.update(one)
    return make_tree(root, merged, config=AB_CONFIG)


def first_table(up: str = "CREATE TABLE t (v text);\n") -> dict[str, str | bytes]:
    return pair("a", "000001", "t", up, "DROP TABLE t;\n")


def check_errors(root: Path) -> list[tuple[str, str | None, int | None, str]]:
    """(code, path, line, message) of every error `check --no-sql` reports about the
    migration files (not migcoord.sum, which the tests leave behind the files)."""
    result = run(["check", "--format", "json", "--no-sql"], cwd=root)
    return [(f["code"], f["path"], f["line"], f["message"]) for f in result.json()["findings"]
            if f["severity"] == "error" and f["code"] != "sum-mismatch"]


def refusal(root: Path, args: list[str], dsn: str) -> dict[str, Any]:
    """Run `args` with --format json; assert it was refused (exit 1) and return the error."""
    result = run([*args, "--format", "json"], cwd=root, environ=env(dsn))
    assert result.code == 1, result
    assert "refused before anything was sent" in result.stderr
    assert "Traceback" not in result.stderr
    document = result.json()
    assert document["ok"] is False
    error: dict[str, Any] = document["error"]
    assert error["type"] == "InvalidMigrationFiles"
    return error


def same_as_check(error: dict[str, Any], root: Path) -> None:
    """The refusal lists exactly the findings `check` reports for those files (same code,
    message and line; paths as check shows them, relative to the repository)."""
    refused = [(f["code"], str(Path(f["path"]).relative_to(root)), f["line"], f["message"])
               for f in error["findings"]]
    assert refused
    assert set(refused) <= set(check_errors(root))


# -- 1: every file-level error of check stops up and down -------------------------------------


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_non_utf8_up_file_is_refused_before_anything_is_sent(
    tmp_path: Path, dsn: str, dry_run: bool
) -> None:
    """It used to be recorded as applied, exit 0, its SQL never run. Now nothing runs at
    all, not even the good migration before it, and the refusal is check's finding."""
    root = tree(tmp_path, first_table(), pair("a", "000002", "fill", "SELECT 1;\n"))
    (root / "a/migrations/000002_fill.up.sql").write_bytes(LATIN1)

    error = refusal(root, ["up", "--service", "a", *(["--dry-run"] if dry_run else [])], dsn)

    same_as_check(error, root)
    assert [f["code"] for f in error["findings"]] == ["encoding"]
    assert error["findings"][0]["line"] == 1
    assert (error["version"], error["service"], error["direction"]) == (2, "a", "up")
    assert history(dsn) == []
    assert not table_exists(dsn, "public.t")


def test_the_text_refusal_reads_like_check(tmp_path: Path, dsn: str) -> None:
    """`path:line: error: code: message` and check's hint, on stderr."""
    root = tree(tmp_path, first_table())
    (root / "a/migrations/000001_t.up.sql").write_bytes(b"CREATE TABLE t (v text);\n\xff\n")
    result = run(["up", "--service", "a"], cwd=root, environ=env(dsn))
    assert result.code == 1
    assert ("a/migrations/000001_t.up.sql:2: error: encoding: 000001_t.up.sql is not UTF-8 "
            "text: byte 0xff at line 2 (offset 25) is not UTF-8") in result.stderr
    assert "hint: save the file as UTF-8" in result.stderr
    assert history(dsn) == []


def test_a_non_utf8_down_file_keeps_the_row_and_the_schema(tmp_path: Path, dsn: str) -> None:
    """It used to delete the history row and leave the table: now `down` refuses."""
    root = tree(tmp_path, first_table())
    assert run(["up", "--service", "a"], cwd=root, environ=env(dsn)).code == 0
    (root / "a/migrations/000001_t.down.sql").write_bytes(b"DROP TABLE t; -- \xe9\n")

    error = refusal(root, ["down", "--service", "a"], dsn)

    same_as_check(error, root)
    assert error["direction"] == "down"
    assert [r["version"] for r in history(dsn)] == [1]
    assert table_exists(dsn, "public.t")


@pytest.mark.parametrize("where", ["up", "down"])
def test_a_nul_byte_is_an_encoding_error_that_stops_the_run(
    tmp_path: Path, dsn: str, where: str
) -> None:
    """PostgreSQL does not accept NUL in SQL text: check says where, up and down refuse."""
    root = tree(tmp_path, first_table())
    if where == "down":
        assert run(["up", "--service", "a"], cwd=root, environ=env(dsn)).code == 0
    (root / f"a/migrations/000001_t.{where}.sql").write_bytes(
        b"SELECT 1;\nSELECT '\x00';\n")
    [(code, _, line, message)] = check_errors(root)
    assert (code, line) == ("encoding", 2)
    assert "NUL byte at line 2" in message

    refusal(root, [where, "--service", "a"], dsn)

    assert [r["version"] for r in history(dsn)] == ([1] if where == "down" else [])


def test_an_unknown_directive_stops_up(tmp_path: Path, dsn: str) -> None:
    """A misspelt `-- migcoord:` key is an error in check, so up refuses it too."""
    root = tree(tmp_path, first_table("-- migcoord:no-transactoin\nCREATE TABLE t (v text);\n"))
    error = refusal(root, ["up", "--service", "a"], dsn)
    assert [f["code"] for f in error["findings"]] == ["unknown-directive"]
    same_as_check(error, root)
    assert history(dsn) == []


def test_the_library_raises_the_findings_check_reports(tmp_path: Path, dsn: str) -> None:
    """One validation path: InvalidMigrationFiles.findings are Coordinator.check()'s."""
    root = tree(tmp_path, first_table())
    (root / "a/migrations/000001_t.up.sql").write_bytes(LATIN1)
    coordinator = Coordinator.load(root / "migcoord.toml", environ={})

    with pytest.raises(InvalidMigrationFiles) as refused:
        coordinator.up("a", dsn=dsn)

    checked = [f for f in coordinator.check(sql=False)
               if f.is_error and f.code != "sum-mismatch"]
    assert list(refused.value.findings) == checked
    assert refused.value.exit_code == 1


# -- 2: one version, two migrations ---------------------------------------------------------


def test_two_pending_migrations_with_one_version_are_refused_naming_both(
    tmp_path: Path, dsn: str
) -> None:
    """`up` used to apply one and silently skip the other."""
    root = tree(tmp_path, pair("a", "000001", "alpha", "CREATE TABLE alpha (id int);\n"),
                pair("a", "000001", "beta", "CREATE TABLE beta (id int);\n"))

    error = refusal(root, ["up", "--service", "a"], dsn)

    assert {f["code"] for f in error["findings"]} == {"duplicate-version"}
    assert {Path(f["path"]).name for f in error["findings"]} == {
        "000001_alpha.up.sql", "000001_beta.up.sql"}
    assert "a/000001_alpha, a/000001_beta" in error["findings"][0]["message"]
    assert history(dsn) == []
    assert schema_snapshot(dsn) == []
    # The hint's command parts them (renumber picks one of the two by its name), and
    # then up applies both.
    command = error["findings"][0]["hint"].split("`")[1]
    assert command == "migcoord renumber 000001_beta --service a"
    assert run(command.split()[1:], cwd=root).code == 0
    assert run(["up", "--service", "a"], cwd=root, environ=env(dsn)).code == 0
    assert [row["name"] for row in history(dsn)] == ["alpha", "beta"]


def test_a_second_migration_of_an_applied_version_is_refused_and_listed(
    tmp_path: Path, dsn: str
) -> None:
    """000001_alpha is applied; 000001_beta arrives later (a merge): `up` refuses it
    instead of treating the version as done, and `status` shows both (exit 1)."""
    root = tree(tmp_path, pair("a", "000001", "alpha", "CREATE TABLE alpha (id int);\n"))
    assert run(["up", "--service", "a"], cwd=root, environ=env(dsn)).code == 0
    (root / "a/migrations/000001_beta.up.sql").write_text("CREATE TABLE beta (id int);\n")
    (root / "a/migrations/000001_beta.down.sql").write_text("DROP TABLE beta;\n")

    error = refusal(root, ["up", "--service", "a"], dsn)
    assert {f["code"] for f in error["findings"]} == {"duplicate-version"}
    assert not table_exists(dsn, "public.beta")

    status = run(["status", "--format", "json"], cwd=root, environ=env(dsn))
    assert status.code == 1
    shown = [(m["version"], m["name"], m["state"]) for m in status.json()["migrations"]]
    assert shown == [(1, "alpha", "applied"), (1, "beta", "pending")]
    assert {p["code"] for p in status.json()["problems"]} == {"duplicate-version"}


def test_up_all_refuses_a_version_taken_by_two_services(tmp_path: Path, dsn: str) -> None:
    root = tree(tmp_path, pair("a", "000001", "x"), pair("b", "000001", "y"))
    error = refusal(root, ["up", "--all"], dsn)
    assert {(f["service"], f["code"]) for f in error["findings"]} == {
        ("a", "duplicate-version"), ("b", "duplicate-version")}
    assert history(dsn) == []


# -- 3: nothing named like a migration is skipped ----------------------------------------------


def _make_blocker(path: Path, kind: str) -> None:
    if kind == "folder":
        path.mkdir()
    elif kind == "dangling-symlink":
        path.symlink_to(path.parent / "gone.sql")
    else:
        os.mkfifo(path)


@pytest.mark.parametrize("kind", ["folder", "dangling-symlink", "fifo"])
def test_an_unreadable_entry_named_like_a_migration_is_an_error_everywhere(
    tmp_path: Path, dsn: str, kind: str
) -> None:
    """`up` used to apply the others and skip it, `status` did not list it. (A pipe is
    never opened: reading one would hang.)"""
    root = tree(tmp_path, first_table())
    blocker = root / "a/migrations/000002_more.up.sql"
    _make_blocker(blocker, kind)

    [(code, path, _, message)] = [e for e in check_errors(root) if e[0] != "missing-down"]
    assert (code, path) == ("unreadable-file", "a/migrations/000002_more.up.sql")
    assert message.startswith("000002_more.up.sql: it is ")

    error = refusal(root, ["up", "--service", "a"], dsn)
    assert [(f["code"], f["path"]) for f in error["findings"]] == [
        ("unreadable-file", str(blocker))]
    assert history(dsn) == []

    status = run(["status", "--format", "json"], cwd=root, environ=env(dsn))
    assert status.code == 1
    assert [(m["version"], m["state"]) for m in status.json()["migrations"]] == [
        (1, "pending"), (2, "pending")]
    assert [p["code"] for p in status.json()["problems"]] == ["unreadable-file"]
    text = run(["status"], cwd=root, environ=env(dsn))
    assert "000002_more.up.sql: error: unreadable-file:" in text.stdout


def test_an_applied_migration_whose_file_became_unreadable_stops_up_and_down(
    tmp_path: Path, dsn: str
) -> None:
    """Not pending, yet never skipped in silence: up, down and status name it."""
    root = tree(tmp_path, first_table(), pair("a", "000002", "more"))
    assert run(["up", "--service", "a"], cwd=root, environ=env(dsn)).code == 0
    up_file = root / "a/migrations/000001_t.up.sql"
    up_file.unlink()
    up_file.symlink_to(root / "a/migrations/nowhere.sql")
    (root / "a/migrations/000003_next.up.sql").write_text("CREATE TABLE n (id int);\n")
    (root / "a/migrations/000003_next.down.sql").write_text("DROP TABLE n;\n")

    error = refusal(root, ["up", "--service", "a"], dsn)
    assert [(f["code"], f["version"]) for f in error["findings"]] == [("unreadable-file", 1)]
    assert not table_exists(dsn, "public.n")
    refusal(root, ["down", "--service", "a"], dsn)
    assert [r["version"] for r in history(dsn)] == [1, 2]

    status = run(["status", "--format", "json"], cwd=root, environ=env(dsn))
    assert status.code == 1
    first = status.json()["migrations"][0]
    assert (first["state"], first["detail"]) == ("applied", "its file cannot be read")


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A root-owned temporary folder another user may enter (pytest's tmp_path is 0700)."""
    folder = Path(tempfile.mkdtemp(prefix="migcoord-files-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder)


AS_ANOTHER_USER = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                                     reason="needs root and setpriv to run as another user")


def _readable_by_all(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)


def test_a_migrations_path_that_is_a_file_stops_up(tmp_path: Path, dsn: str) -> None:
    """Not "nothing to apply": the configured folder is there, and is not a folder."""
    root = tree(tmp_path, first_table())
    folder = root / "a/migrations"
    shutil.rmtree(folder)
    folder.write_text("not a folder\n")
    result = run(["up", "--service", "a"], cwd=root, environ=env(dsn))
    assert result.code == 1, result
    assert f"{folder}: the configured migrations path is a file" in result.stderr
    assert history(dsn) == []


@AS_ANOTHER_USER
def test_a_migrations_folder_that_cannot_be_listed_stops_up(shared_tmp: Path, dsn: str) -> None:
    root = tree(shared_tmp / "repo", first_table())
    _readable_by_all(root)
    folder = root / "a/migrations"
    folder.chmod(0o700)
    result = run_process(["up", "--service", "a"], cwd=root, environ=env(dsn), user=_nobody())
    assert result.code == 1, result
    assert (f"error: unreadable-file: {folder}: the migrations folder cannot be read: "
            "Permission denied") in result.stderr
    assert history(dsn) == []


@AS_ANOTHER_USER
def test_a_file_without_read_permission_stops_up_naming_it(shared_tmp: Path, dsn: str) -> None:
    root = tree(shared_tmp / "repo", first_table(), pair("a", "000002", "more"))
    _readable_by_all(root)
    secret = root / "a/migrations/000002_more.up.sql"
    secret.chmod(0o600)
    result = run_process(["up", "--service", "a"], cwd=root, environ=env(dsn), user=_nobody())
    assert result.code == 1, result
    assert ("000002_more.up.sql: error: unreadable-file: 000002_more.up.sql: it cannot be "
            "read: Permission denied") in result.stderr
    assert history(dsn) == []


def _nobody() -> str:
    import pwd

    return str(pwd.getpwnam("nobody").pw_uid)


# -- 14: a symlink out of the repository is never followed ----------------------------------


def test_a_symlink_out_of_the_repository_is_refused_and_never_printed(
    tmp_path: Path, dsn: str
) -> None:
    """`up --dry-run` used to print the target (/etc/passwd) and `up` sent it."""
    secret = tmp_path / "outside" / "secret.sql"
    secret.parent.mkdir()
    secret.write_text("CREATE TABLE leaked (password text); -- hunter2\n")
    root = tree(tmp_path / "repo", first_table())
    (root / "a/migrations/000002_leak.up.sql").symlink_to(secret)
    (root / "a/migrations/000002_leak.down.sql").write_text("SELECT 1;\n")

    for args in (["up", "--service", "a", "--dry-run"], ["up", "--service", "a"]):
        result = run([*args], cwd=root, environ=env(dsn))
        assert result.code == 1, result
        assert "hunter2" not in result.stdout + result.stderr
        assert f"it is a symbolic link to {secret}, outside the repository" in result.stderr
    assert not table_exists(dsn, "public.leaked")
    assert history(dsn) == []
    assert "unreadable-file" in [e[0] for e in check_errors(root)]


def test_a_symlink_inside_the_repository_is_read(tmp_path: Path, dsn: str) -> None:
    """Sharing a file by a link within the repository is fine."""
    root = tree(tmp_path, first_table())
    shared = root / "shared" / "create_u.sql"
    shared.parent.mkdir()
    shared.write_text("CREATE TABLE u (id int);\n")
    (root / "a/migrations/000002_u.up.sql").symlink_to(shared)
    (root / "a/migrations/000002_u.down.sql").write_text("DROP TABLE u;\n")
    assert run(["sum"], cwd=root).code == 0
    result = run(["up", "--service", "a"], cwd=root, environ=env(dsn))
    assert result.code == 0, result
    assert table_exists(dsn, "public.u")


# -- 7: halves named differently are one migration ----------------------------------------------


def test_an_up_and_a_down_named_differently_are_one_migration_everywhere(
    tmp_path: Path, dsn: str, pg_server: Any
) -> None:
    """golang-migrate pairs by version: check warns, up records the up's name, down runs
    the down file, verify round-trips it, sum lists it once."""
    root = tree(tmp_path, first_table(), {
        "a/migrations/000002_add_x.up.sql": "ALTER TABLE t ADD COLUMN x int;\n",
        "a/migrations/000002_add_column_x.down.sql": "ALTER TABLE t DROP COLUMN x;\n"})
    found = run(["check", "--format", "json", "--no-sql"], cwd=root).json()["findings"]
    assert [(f["code"], f["severity"]) for f in found] == [("name-mismatch", "warning")]
    sum_lines = (root / "migcoord.sum").read_text().splitlines()[1:]
    assert [line.split()[:3] for line in sum_lines] == [["000001", "a", "t"],
                                                        ["000002", "a", "add_x"]]

    assert run(["up", "--service", "a"], cwd=root, environ=env(dsn)).code == 0
    assert [(r["version"], r["name"]) for r in history(dsn)] == [(1, "t"), (2, "add_x")]
    assert run(["down", "--service", "a"], cwd=root, environ=env(dsn)).code == 0
    assert [r["version"] for r in history(dsn)] == [1]
    assert ("public", "t", "r", "x", "integer", "false") not in schema_snapshot(dsn)

    verified = run(["verify", "--dsn", pg_server.admin_dsn, "--format", "json"], cwd=root)
    assert verified.code == 0, verified


# -- 14: names and numbers ----------------------------------------------------------------------


def test_a_version_above_bigint_is_a_check_error_and_up_refuses(tmp_path: Path, dsn: str) -> None:
    """Not a server failure half-way through a deploy."""
    huge = "9223372036854775808"
    root = tree(tmp_path, first_table(), pair("a", huge, "big"))
    errors = [e for e in check_errors(root) if e[0] != "gap"]
    assert [(code, Path(path or "").name) for code, path, _, _ in errors] == [
        ("bad-filename", f"{huge}_big.down.sql"), ("bad-filename", f"{huge}_big.up.sql")]
    assert "above 9223372036854775807" in errors[0][3]
    error = refusal(root, ["up", "--service", "a"], dsn)
    assert [f["code"] for f in error["findings"]] == ["bad-filename"]
    assert history(dsn) == []


def test_a_name_with_a_space_round_trips_through_sum_check_and_up(
    tmp_path: Path, dsn: str
) -> None:
    root = tree(tmp_path, pair("a", "000001", "add  x", "CREATE TABLE t (id int);\n"))
    result = run(["check", "--format", "json", "--no-sql"], cwd=root)
    assert result.code == 0, result.stdout
    assert result.json()["findings"] == []
    assert "\n000001 a add  x\n" in (root / "migcoord.sum").read_text()
    assert run(["up", "--service", "a"], cwd=root, environ=env(dsn)).code == 0
    assert [r["name"] for r in history(dsn)] == ["add  x"]


@pytest.mark.parametrize("timeout", [float("nan"), float("inf"), -1.0, 0.0, 1e300])
def test_the_library_refuses_a_lock_timeout_that_is_not_a_usable_wait(
    tmp_path: Path, dsn: str, timeout: float
) -> None:
    """The rule of the config file and of --lock-timeout, for up, down and create alike."""
    from migcoord import UsageError

    root = tree(tmp_path, first_table())
    coordinator = Coordinator.load(root / "migcoord.toml", environ={})
    with pytest.raises(UsageError, match="lock_timeout: expected a number of seconds above 0"):
        coordinator.up("a", dsn=dsn, lock_timeout=timeout)
    with pytest.raises(UsageError, match="lock_timeout: expected a number of seconds above 0"):
        coordinator.create("a", "next", lock_timeout=timeout)
    assert history(dsn) == []
    assert not (root / "a/migrations/000002_next.up.sql").exists()


@AS_ANOTHER_USER
def test_a_config_in_a_folder_that_cannot_be_entered_is_a_clear_error(shared_tmp: Path) -> None:
    """Exit 2 naming the path, not a PermissionError traceback."""
    root = tree(shared_tmp / "repo", first_table())
    _readable_by_all(root)
    inner = root / "a" / "migrations"
    root.chmod(0o711)  # enterable, not listable: fine
    (root / "migcoord.toml").chmod(0o600)  # not readable by others
    result = run_process(["check", "--no-sql"], cwd=inner, user=_nobody())
    assert result.code == 2, result
    assert "Traceback" not in result.stderr
    assert "Permission denied" in result.stderr
    private = shared_tmp / "private"
    private.mkdir(mode=0o700)
    result = run_process(["check", "--config", str(private / "migcoord.toml")], cwd=inner,
                         user=_nobody())
    assert result.code == 2, result
    assert "Traceback" not in result.stderr


# -- the other commands that take a file's word for it ------------------------------------------


def test_adopt_refuses_a_version_two_services_used(tmp_path: Path, dsn: str) -> None:
    """adopt used to record one of them, then overwrite it with the other, in silence."""
    root = tree(tmp_path, pair("a", "000001", "x"), pair("b", "000001", "y"))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE schema_migrations (version bigint PRIMARY KEY, "
                     "dirty boolean NOT NULL)")
        conn.execute("INSERT INTO schema_migrations VALUES (1, false)")
    error = refusal(root, ["adopt", "--from-golang-migrate"], dsn)
    assert {f["code"] for f in error["findings"]} == {"duplicate-version"}
    assert history(dsn) == []


def test_mark_applied_refuses_a_file_it_cannot_read(tmp_path: Path, dsn: str) -> None:
    """It would record an empty checksum for a file it never read."""
    root = tree(tmp_path, first_table())
    up_file = root / "a/migrations/000001_t.up.sql"
    up_file.unlink()
    up_file.mkdir()
    result = run(["mark", "1", "--applied"], cwd=root, environ=env(dsn))
    assert result.code == 1, result
    assert f"{up_file}: it is a folder, not a file; mark records the checksum" in result.stderr
    assert history(dsn) == []


def test_sum_refuses_a_name_that_is_not_utf8_and_check_names_it(tmp_path: Path) -> None:
    root = tree(tmp_path, first_table())
    folder = os.fsencode(root / "a/migrations")
    for direction in (b"up", b"down"):
        with open(folder + b"/000002_caf\xe9." + direction + b".sql", "wb") as handle:
            handle.write(b"SELECT 1;\n")
    result = run(["sum"], cwd=root)
    assert result.code == 1, result
    assert "its name is not valid UTF-8, so migcoord.sum cannot list it" in result.stderr
    assert [code for code, *_ in check_errors(root)] == ["bad-filename", "bad-filename"]


@pytest.mark.parametrize("damage", ["not-utf8", "a-folder"])
def test_a_damaged_sum_file_is_reported_not_a_traceback(tmp_path: Path, damage: str) -> None:
    root = tree(tmp_path, first_table())
    sum_file = root / "migcoord.sum"
    if damage == "not-utf8":
        sum_file.write_bytes(sum_file.read_bytes() + b"\xff\xfe\n")
        result = run(["check", "--no-sql", "--format", "json"], cwd=root)
        assert result.code == 1
        assert [f["code"] for f in result.json()["findings"]] == ["sum-mismatch"]
    else:
        sum_file.unlink()
        sum_file.mkdir()
        result = run(["check", "--no-sql"], cwd=root)
        assert result.code == 1
        assert f"{sum_file} cannot be read: Is a directory" in result.stderr
    assert "Traceback" not in result.stderr


def test_verify_refuses_what_check_reports_before_making_a_database(
    tmp_path: Path, pg_server: Any
) -> None:
    """A non-UTF-8 down file: the same finding as check, and no throwaway database."""
    root = tree(tmp_path, first_table())
    (root / "a/migrations/000001_t.down.sql").write_bytes(b"DROP TABLE t; -- \xe9\n")
    with psycopg.connect(pg_server.admin_dsn, autocommit=True) as conn:
        before = conn.execute("SELECT count(*) FROM pg_database").fetchone()
    result = run(["verify", "--dsn", pg_server.admin_dsn], cwd=root)
    assert result.code == 1, result
    assert ("a/migrations/000001_t.down.sql:1: error: encoding: 000001_t.down.sql is not "
            "UTF-8 text") in result.stderr
    with psycopg.connect(pg_server.admin_dsn, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM pg_database").fetchone() == before


def test_a_crlf_file_is_sent_as_written_like_golang_migrate_sends_it(tmp_path: Path,
                                                                      dsn: str) -> None:
    """A file with Windows line ends is sent with them: a line break inside a string
    literal is data, and it is stored as the file has it. Its directives still read, its
    checksum is the LF one, and an error points at the right line."""
    up = ("-- migcoord:no-transaction\r\n"
          "CREATE TABLE t (v text);\r\n"
          "INSERT INTO t VALUES ('one\r\ntwo');\r\n")
    root = tree(tmp_path, {"a/migrations/000001_t.up.sql": up.encode(),
                           "a/migrations/000001_t.down.sql": b"DROP TABLE t;\r\n"})
    coord = Coordinator.load(root / "migcoord.toml", environ={})
    coord.up("a", dsn=dsn)

    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT v FROM t").fetchone()
    assert row == ("one\r\ntwo",)
    applied = history(dsn)[0]
    assert applied["statement_count"] == 2  # the directive was read despite the `\r`
    assert applied["checksum"] == hashlib.sha256(up.replace("\r\n", "\n").encode()).hexdigest()

    (root / "a/migrations/000002_u.up.sql").write_bytes(b"SELECT 1;\r\n\r\nSELECT 1/0;\r\n")
    (root / "a/migrations/000002_u.down.sql").write_bytes(b"SELECT 1;\r\n")
    with pytest.raises(MigrationFailed) as failed:
        Coordinator.load(root / "migcoord.toml", environ={}).up("a", dsn=dsn)
    assert failed.value.line == 3
