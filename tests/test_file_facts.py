"""`.migcoord/file-facts`: `up` and `status` know unchanged files by their stat, on a real
server and real files.

A boot with nothing changed opens no migration file; an edited applied file is still
`modified`, also when the edit keeps its size and mtime (as `cp -p` leaves it); a file
changed after it was known is refused, never run unchecked; a file changed just before
it was read is not recorded; and what is read through the facts equals what is read
from the files.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import make_tree, run
from migcoord import Coordinator
from migcoord.errors import RefusedError
from migcoord.repo import discovery, filefacts
from test_engine_support import env, history_versions

CONFIG = '[services.app]\nmigrations = "app/migrations"\n'

#: Paths opened by this process while `_watching` is on (an audit hook cannot be removed,
#: so one hook serves every test).
_opened: list[str] = []
_watching = [False]


def _audit(event: str, args: tuple[object, ...]) -> None:
    if _watching[0] and event == "open" and isinstance(args[0], str):
        _opened.append(args[0])


sys.addaudithook(_audit)


@pytest.fixture
def opened() -> Iterator[list[str]]:
    _opened.clear()
    _watching[0] = True
    try:
        yield _opened
    finally:
        _watching[0] = False


@pytest.fixture
def settled_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files count as settled as soon as they are written (the real window is 3 s; tests
    that edit a file wait a clock tick first, see `edit`)."""
    monkeypatch.setattr(filefacts, "RACY_SECONDS", 0)


def edit(path: Path, text: str) -> None:
    """Rewrite a file in a later clock tick than it was read in (file times are coarse)."""
    time.sleep(0.05)
    path.write_text(text)


def tree(root: Path, **extra: str | bytes) -> Path:
    files: dict[str, str | bytes] = {
        "app/migrations/0001_a.up.sql": "CREATE TABLE a (id int);\n",
        "app/migrations/0001_a.down.sql": "DROP TABLE a;\n",
        "app/migrations/0002_b.up.sql": "-- a comment\n\nCREATE TABLE b (id int);\n",
        "app/migrations/0002_b.down.sql": "DROP TABLE b;\n",
    }
    files.update({f"app/migrations/{name}": text for name, text in extra.items()})
    return make_tree(root, files, config=CONFIG)


def stored(root: Path) -> dict[str, filefacts.Fact]:
    coordinator = Coordinator.load(root / "migcoord.toml")
    return filefacts.FileFacts.load(coordinator.config.state_dir, root.resolve()).known


@pytest.mark.usefixtures("settled_at_once")
def test_a_boot_with_nothing_changed_opens_no_migration_file(
        tmp_path: Path, dsn: str, opened: list[str]) -> None:
    root = tree(tmp_path)
    assert run(["up", "--all"], cwd=root, environ=env(dsn)).code == 0
    assert sorted(stored(root)) == ["app/migrations/0001_a.up.sql",
                                    "app/migrations/0002_b.up.sql"]
    opened.clear()
    coordinator = Coordinator.load(root / "migcoord.toml", environ=env(dsn))
    assert not coordinator.up(all_services=True).applied
    status = coordinator.status()
    assert [m.state for m in status.migrations] == ["applied", "applied"]
    assert not [p for p in opened if p.endswith(".sql")], opened


@pytest.mark.usefixtures("settled_at_once")
def test_an_edit_that_keeps_size_and_mtime_is_still_modified(tmp_path: Path, dsn: str) -> None:
    root = tree(tmp_path)
    assert run(["up", "--all"], cwd=root, environ=env(dsn)).code == 0
    path = root / "app/migrations/0001_a.up.sql"
    before = path.stat()
    edit(path, "CREATE TABLE z (id int);\n")  # the same length
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # as `cp -p` leaves it
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (
        before.st_size, before.st_mtime_ns, before.st_ino)
    refused = run(["up", "--all"], cwd=root, environ=env(dsn))
    assert refused.code == 1
    assert "was changed after it was applied here" in refused.stderr
    status = run(["status", "--format", "json"], cwd=root, environ=env(dsn)).json()
    assert [m["state"] for m in status["migrations"]] == ["modified", "applied"]


@pytest.mark.usefixtures("settled_at_once")
def test_a_pending_file_changed_after_it_was_known_is_refused_not_run(
        tmp_path: Path, dsn: str) -> None:
    root = tree(tmp_path)
    assert run(["up", "--all"], cwd=root, environ=env(dsn)).code == 0
    make_tree(root, {"app/migrations/0003_c.up.sql": "CREATE TABLE c (id int);\n",
                     "app/migrations/0003_c.down.sql": "DROP TABLE c;\n"}, config=CONFIG)
    assert run(["status"], cwd=root, environ=env(dsn)).code == 0  # 0003 is recorded
    assert "app/migrations/0003_c.up.sql" in stored(root)
    coordinator = Coordinator.load(root / "migcoord.toml", environ=env(dsn))
    catalog = coordinator.catalog(up_only=True)
    [pending] = [m for m in catalog.migrations if m.version == 3]
    assert pending.up is not None and pending.up.later is not None
    edit(root / "app/migrations/0003_c.up.sql", "CREATE TABLE c (id int, x int);\n")
    with pytest.raises(RefusedError, match=r"0003_c.up.sql changed since migcoord looked "
                       "at it; nothing was run from it") as refused:
        _ = pending.up.text
    assert refused.value.hint == "run the command again: it reads the file as it is now"
    # A fact did not hold: none is trusted again (on a file system whose stat missed the
    # change, running again would otherwise be refused the same way).
    assert not (root / ".migcoord" / filefacts.FILE_NAME).exists()
    assert pending == pending and pending.up == pending.up  # comparing reads, never raises
    assert history_versions(dsn) == [1, 2]
    # Run again, as the hint says: the file as it is now is applied.
    assert run(["up", "--all"], cwd=root, environ=env(dsn)).code == 0
    assert history_versions(dsn) == [1, 2, 3]


def test_a_file_changed_just_before_it_was_read_is_not_recorded(
        tmp_path: Path, dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(filefacts, "RACY_SECONDS", 1)
    root = tree(tmp_path)
    assert run(["up", "--all"], cwd=root, environ=env(dsn)).code == 0
    assert stored(root) == {}  # every file was written within the last second
    time.sleep(1.1)
    assert run(["up", "--all"], cwd=root, environ=env(dsn)).code == 0
    assert len(stored(root)) == 2


@pytest.mark.usefixtures("settled_at_once")
def test_a_file_with_directives_is_always_read(tmp_path: Path, dsn: str) -> None:
    root = tree(tmp_path, **{
        "0003_c.up.sql": "-- migcoord:no-transaction\nCREATE INDEX CONCURRENTLY c ON a (id);\n",
        "0003_c.down.sql": "DROP INDEX CONCURRENTLY c;\n"})
    assert run(["up", "--all"], cwd=root, environ=env(dsn)).code == 0
    assert "app/migrations/0003_c.up.sql" not in stored(root)
    catalog = Coordinator.load(root / "migcoord.toml").catalog(up_only=True)
    [third] = [m for m in catalog.migrations if m.version == 3]
    assert third.up is not None and third.up.later is None
    assert third.directives.no_transaction


@pytest.mark.usefixtures("settled_at_once")
def test_what_is_read_through_the_facts_equals_what_is_read_from_the_files(
        tmp_path: Path) -> None:
    root = tree(tmp_path, **{
        "0003_bom.up.sql": b"\xef\xbb\xbfCREATE TABLE bom (id int);\r\n",
        "0004_crlf.up.sql": b"-- head\r\n\r\nSELECT 1;\r\nSELECT 2;\r\n",
        "0005_latin.up.sql": b"SELECT 'caf\xe9';\n",
        "0006_nul.up.sql": b"SELECT 1;\x00\n",
        "0007_empty.up.sql": b"",
        "0008_comment_only.up.sql": "-- nothing here\n",
        "0009_block.up.sql": "/* a /* nested */ comment */\n\nSELECT 1;\n",
        "0010_later.up.sql": "SELECT 1;\n-- migcoord:depends app:0001\n",
    })
    config = Coordinator.load(root / "migcoord.toml").config

    def read(facts: filefacts.FileFacts | None) -> list[object]:
        catalog = discovery.read_catalog(config, up_only=True, facts=facts)
        return [(m, m.up.text if m.up else None, m.directives, m.directive_findings)
                for m in catalog.migrations]

    learning = filefacts.FileFacts.load(config.state_dir, config.root)
    plain = read(learning)
    learning.save(complete=True)
    knowing = filefacts.FileFacts.load(config.state_dir, config.root)
    assert len(knowing.known) == 9  # all but 0010, whose text mentions migcoord
    known = read(knowing)
    assert known == plain
    laters = [m.up.later for m in discovery.read_catalog(
        config, up_only=True, facts=knowing).migrations if m.up is not None]
    # Left for later: every decodable text without a directive; not the latin-1 and the
    # NUL files (their verdict is known) nor 0010 (its directives need its text).
    assert sum(later is not None for later in laters) == 7


@pytest.mark.usefixtures("settled_at_once")
def test_a_damaged_facts_file_or_a_state_folder_that_is_a_file_changes_nothing(
        tmp_path: Path, dsn: str, other_dsn: str) -> None:
    root = tree(tmp_path)
    assert run(["up", "--all"], cwd=root, environ=env(dsn)).code == 0
    facts = root / ".migcoord" / filefacts.FILE_NAME
    facts.write_bytes(facts.read_bytes()[:-10] + b"0123456789")
    assert stored(root) == {}
    edit(root / "app/migrations/0002_b.up.sql", "CREATE TABLE b2 (id int);\n")
    refused = run(["up", "--all"], cwd=root, environ=env(dsn))
    assert refused.code == 1 and "was changed after it was applied" in refused.stderr

    other = tree(tmp_path / "other")
    shutil.rmtree(other / ".migcoord", ignore_errors=True)
    (other / ".migcoord").write_text("not a folder\n")
    done = run(["up", "--all"], cwd=other, environ=env(other_dsn))
    assert done.code == 0, done
    assert history_versions(other_dsn) == [1, 2]
    assert (other / ".migcoord").read_text() == "not a folder\n"


@pytest.mark.usefixtures("settled_at_once")
def test_facts_of_files_renamed_or_deleted_are_not_kept(tmp_path: Path, dsn: str) -> None:
    root = tree(tmp_path)
    assert run(["status"], cwd=root, environ=env(dsn)).code == 0
    assert len(stored(root)) == 2
    (root / "app/migrations/0002_b.up.sql").rename(root / "app/migrations/0002_c.up.sql")
    (root / "app/migrations/0002_b.down.sql").rename(root / "app/migrations/0002_c.down.sql")
    assert run(["status"], cwd=root, environ=env(dsn)).code == 0
    assert sorted(stored(root)) == ["app/migrations/0001_a.up.sql",
                                    "app/migrations/0002_c.up.sql"]


def test_only_files_on_a_local_file_system_are_known_by_their_stat(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Read-only images (squashfs: the ctime is the image's), network and FUSE file
    systems are not trusted: every file there is read, and none recorded."""
    facts = filefacts.FileFacts.load(tmp_path / ".migcoord", tmp_path)
    kinds = filefacts._file_systems()
    here = kinds.get(os.stat(tmp_path).st_dev)
    assert here is not None, "the test folder's file system is in /proc/self/mountinfo"
    assert facts.trusts(os.stat(tmp_path).st_dev) == (here in filefacts.LOCAL_FILE_SYSTEMS)
    assert kinds.get(os.stat("/proc/self").st_dev) == "proc"
    assert not facts.trusts(os.stat("/proc/self").st_dev)

    monkeypatch.setattr(filefacts, "RACY_SECONDS", 0)
    root = tree(tmp_path / "repo")
    config = Coordinator.load(root / "migcoord.toml").config

    def read() -> list[object]:
        facts = filefacts.FileFacts.load(config.state_dir, config.root)
        catalog = discovery.read_catalog(config, up_only=True, facts=facts)
        facts.save(complete=True)
        return [m.up.later is not None for m in catalog.migrations if m.up]

    assert read() == [False, False]
    assert read() == [True, True]  # known by their stat, on this (local) file system
    monkeypatch.setattr(filefacts, "LOCAL_FILE_SYSTEMS", frozenset())  # as on squashfs
    assert read() == [False, False]
    assert stored(root) == {}


def test_trust_follows_each_files_own_device(tmp_path: Path) -> None:
    """A file of a local folder may be a symlink or a bind mount leading to a file system
    whose stat proves nothing (a squashfs image): its own device decides, not its
    folder's. /proc stands for such a file system here."""
    facts = filefacts.FileFacts.load(tmp_path / ".migcoord", tmp_path)
    local = filefacts.stat_of(os.stat(tmp_path))
    elsewhere = filefacts.stat_of(os.stat("/proc/self/comm"))
    assert facts.trusts(local[4]) and not facts.trusts(elsewhere[4])
    facts.learn("a.up.sql", (local, "sum-a", None, None, 1))
    facts.learn("b.up.sql", (elsewhere, "sum-b", None, None, 1))
    facts.save(complete=True)
    known = filefacts.FileFacts.load(tmp_path / ".migcoord", tmp_path)
    assert list(known.known) == ["a.up.sql"]
    known.known["b.up.sql"] = (elsewhere, "sum-b", None, None, 1)  # as an older run left it
    assert known.get("b.up.sql", elsewhere) is None
    assert known.get("a.up.sql", local) == (local, "sum-a", None, None, 1)


@pytest.mark.usefixtures("settled_at_once")
def test_a_run_does_not_write_back_facts_another_run_dropped_meanwhile(tmp_path: Path) -> None:
    root = tree(tmp_path)
    config = Coordinator.load(root / "migcoord.toml").config
    first = filefacts.FileFacts.load(config.state_dir, config.root)
    discovery.read_catalog(config, up_only=True, facts=first)
    first.save(complete=True)
    slow = filefacts.FileFacts.load(config.state_dir, config.root)  # loads both facts
    assert len(slow.known) == 2
    filefacts.FileFacts.load(config.state_dir, config.root).discard()  # another run's refusal
    make_tree(root, {"app/migrations/0003_c.up.sql": "SELECT 3;\n"}, config=CONFIG)
    discovery.read_catalog(config, up_only=True, facts=slow)  # learns 0003 too
    slow.save(complete=True)
    assert stored(root) == {}


@pytest.mark.usefixtures("settled_at_once")
def test_a_long_lived_coordinator_keeps_only_files_it_read_in_full(tmp_path: Path) -> None:
    """Its in-memory file cache keeps no text left for later: after a refusal (a file
    whose text was not what its stat said), the next call reads the file again."""
    root = tree(tmp_path)
    config = Coordinator.load(root / "migcoord.toml").config
    first = filefacts.FileFacts.load(config.state_dir, config.root)
    discovery.read_catalog(config, up_only=True, facts=first)
    first.save(complete=True)
    cache: discovery.FileCache = {}
    known = filefacts.FileFacts.load(config.state_dir, config.root)
    catalog = discovery.read_catalog(config, up_only=True, cache=cache, facts=known)
    assert all(m.up is not None and m.up.later is not None for m in catalog.migrations)
    assert cache == {}
    plain = discovery.read_catalog(config, up_only=True, cache=cache)
    assert sorted(Path(p).name for p in cache) == ["0001_a.up.sql", "0002_b.up.sql"]
    assert all(m.up is not None and m.up.later is None for m in plain.migrations)
