"""The `gap` hint closes the gap: it moves the highest migration(s) down into it when
that keeps every order, else the whole tail down by the gap's size, and never names a
renumber that only moves the gap up. Each hinted command is run as printed."""

from __future__ import annotations

import re
from pathlib import Path

from helpers import make_tree, pair, run

AB = """\
[services.a]
migrations = "a/migrations"

[services.b]
migrations = "b/migrations"
"""


def tree(root: Path, *pairs: dict[str, str]) -> Path:
    files: dict[str, str | bytes] = {}
    for one in pairs:
        files.update(one)
    return make_tree(root, files, config=AB)


def gap_hints(root: Path) -> list[str]:
    findings = run(["check", "--format", "json"], cwd=root).json()["findings"]
    return [str(f["hint"]) for f in findings if f["code"] == "gap"]


def close(root: Path) -> list[str]:
    """Run the renumber commands of the one gap's hint, in order; then no error is left."""
    [hint] = gap_hints(root)
    commands = re.findall(r"`(migcoord renumber [^`]+)`", hint)
    for command in commands:
        done = run(command.split()[1:], cwd=root)
        assert done.code == 0, (command, done.stderr)
    after = run(["check", "--format", "json"], cwd=root).json()["findings"]
    assert [f for f in after if f["severity"] == "error"] == []
    return commands


def names(root: Path, service: str) -> list[str]:
    return sorted(p.name.removesuffix(".up.sql")
                  for p in (root / service / "migrations").glob("*.up.sql"))


def test_a_gap_of_one_is_closed_by_moving_the_highest_migration_into_it(tmp_path: Path) -> None:
    """a: 1, 2, 4; b: 5. b's 5 passes no migration of b and depends on nothing, so it
    moves to 3 with one command, and nothing after it moves."""
    root = tree(tmp_path, pair("a", "000001", "one"), pair("a", "000002", "two"),
                pair("a", "000004", "four"), pair("b", "000005", "five"))
    assert close(root) == ["migcoord renumber 000005 --service b --to 000003"]
    assert names(root, "b") == ["000003_five"]
    assert names(root, "a") == ["000001_one", "000002_two", "000004_four"]


def test_one_services_tail_shifts_down_lowest_first(tmp_path: Path) -> None:
    """a: 1, 2, 4, 5: moving 5 to 3 would run it before 4, so each moves down by one,
    4 first; the old hint (4 to 3) only moved the gap to 4."""
    root = tree(tmp_path, pair("a", "000001", "one"), pair("a", "000002", "two"),
                pair("a", "000004", "four"), pair("a", "000005", "five"))
    assert close(root) == ["migcoord renumber 000004 --service a --to 000003",
                           "migcoord renumber 000005 --service a --to 000004"]
    assert names(root, "a") == ["000001_one", "000002_two", "000003_four", "000004_five"]


def test_the_highest_migration_does_not_jump_over_what_it_depends_on(tmp_path: Path) -> None:
    """b's 5 depends on a's 4: it cannot move to 3, so the tail shifts down."""
    root = tree(tmp_path, pair("a", "000001", "one"), pair("a", "000002", "two"),
                pair("a", "000004", "four"),
                pair("b", "000005", "five", up="-- migcoord:depends a:000004\nSELECT 1;\n"))
    assert close(root) == ["migcoord renumber 000004 --service a --to 000003",
                           "migcoord renumber 000005 --service b --to 000004"]
    assert (root / "b/migrations/000004_five.up.sql").read_text().startswith(
        "-- migcoord:depends a:000003")


def test_a_gap_of_two_moves_the_two_highest_in_their_order(tmp_path: Path) -> None:
    """a: 1, 2, 5; b: 6, 7. b's two move to 3 and 4, keeping their order."""
    root = tree(tmp_path, pair("a", "000001", "one"), pair("a", "000002", "two"),
                pair("a", "000005", "five"), pair("b", "000006", "six"),
                pair("b", "000007", "seven"))
    assert close(root) == ["migcoord renumber 000006 --service b --to 000003",
                           "migcoord renumber 000007 --service b --to 000004"]
    assert names(root, "b") == ["000003_six", "000004_seven"]


def test_a_long_tail_is_described_after_the_first_commands(tmp_path: Path) -> None:
    """a: 1, 3..9 all one service: the hint names the first four moves and says the
    rest go the same way."""
    pairs = [pair("a", "000001", "one")] + [pair("a", f"{v:06d}", f"m{v}") for v in range(3, 10)]
    root = tree(tmp_path, *pairs)
    [hint] = gap_hints(root)
    assert "then each of the 3 later migrations down by 1 the same way, lowest first" in hint
    assert len(re.findall(r"`migcoord renumber", hint)) == 4


def test_no_move_is_named_when_a_migration_after_the_gap_is_in_an_absent_folder(
    tmp_path: Path,
) -> None:
    """b's folder is not in this checkout (the sum lists its 5): the hint names no
    renumber, since one here could not see b's migration."""
    root = tree(tmp_path, pair("a", "000001", "one"), pair("a", "000002", "two"),
                pair("a", "000004", "four"), pair("b", "000005", "five"))
    for path in (root / "b/migrations").iterdir():
        path.unlink()
    (root / "b/migrations").rmdir()
    (root / "b").rmdir()
    [hint] = gap_hints(root)
    assert "migcoord renumber" not in hint
    assert hint.endswith("in a checkout with every service's folder")
