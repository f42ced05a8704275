"""migcoord.sum, the allocation ledger: its format, the earlier one, a conflicted file."""

from __future__ import annotations

from pathlib import Path

from helpers import EXAMPLE, codes, copy_example, run
from migcoord.core import sumfile

#: examples/alerting's migcoord.sum as the earlier format wrote it (a sha256 per file).
OLD_FORMAT = (Path(__file__).parent / "scenarios" / "migcoord-v1.sum").read_text()


def test_the_first_line_says_what_to_do_on_a_git_conflict() -> None:
    """The header hashes the lines and tells whoever opens the file in a merge to run
    `migcoord resolve`; each line is version, service and name only."""
    first, *lines = (EXAMPLE / "migcoord.sum").read_text().splitlines()
    assert first.startswith("migcoord.sum v2 sha256:")
    assert "git reports a conflict" in first and "migcoord resolve" in first
    assert lines[0] == "000001 rule-service create_clients_table"
    assert lines[-1] == "000006 aggregator create_notifications_table"


def test_the_earlier_format_is_still_read_and_check_is_clean(tmp_path: Path) -> None:
    """A repository whose sum is still in the v1 format checks clean (its per-file sums
    are not judged any more), and the next write rewrites it in the new format."""
    root = copy_example(tmp_path / "alerting")
    (root / "migcoord.sum").write_text(OLD_FORMAT)
    parsed = sumfile.parse(OLD_FORMAT)
    assert parsed.problems == () and parsed.old_format
    assert parsed.claimed_hash == parsed.body_hash
    assert parsed.lines[0].render() == "000001 rule-service create_clients_table"
    result = run(["check", "--strict", "--format", "json"], cwd=root)
    assert result.code == 0, result.stdout
    assert run(["create", "add_index", "--service", "aggregator"], cwd=root).code == 0
    assert (root / "migcoord.sum").read_text() == sumfile.render_lines(
        [*parsed.lines, sumfile.SumLine("000007", "aggregator", "add_index")])


def test_a_conflicted_sum_is_read_line_by_line_with_both_sides() -> None:
    """Git's markers are problems, yet the lines of both sides are read (resolve needs
    them), and the header may sit inside the conflict."""
    text = ("<<<<<<< HEAD\n"
            "migcoord.sum v2 sha256:" + "a" * 64 + " - x\n"
            "000001 a one\n000002 a two\n"
            "=======\n"
            "migcoord.sum v2 sha256:" + "b" * 64 + " - x\n"
            "000001 a one\n000002 b other side\n"
            ">>>>>>> main\n")
    parsed = sumfile.parse(text)
    assert parsed.conflicted
    assert parsed.problems == ((1, "git left a merge conflict in it (markers on lines 1, 5, "
                                   "9): two branches added migrations"),)
    assert sorted({line.render() for line in parsed.lines}) == [
        "000001 a one", "000002 a two", "000002 b other side"]


def test_a_crlf_checkout_reads_as_written_and_a_name_may_end_with_a_carriage_return() -> None:
    """autocrlf ends every line with \\r\\n: read as the same lines. In a file with \\n
    line ends a trailing \\r belongs to the name."""
    text = sumfile.render_lines([sumfile.SumLine("000001", "a", "x y")])
    crlf = sumfile.parse(text.replace("\n", "\r\n"))
    assert crlf.problems == () and crlf.lines == sumfile.parse(text).lines
    assert crlf.claimed_hash == crlf.body_hash
    odd = sumfile.render_lines([sumfile.SumLine("000001", "a", "x\r")])
    assert sumfile.parse(odd).lines[0].name == "x\r"


def test_a_conflicted_sum_in_check_says_to_run_resolve(tmp_path: Path) -> None:
    """check reports each marker as sum-mismatch with the hint `migcoord resolve`."""
    root = copy_example(tmp_path / "alerting")
    sum_path = root / "migcoord.sum"
    sum_path.write_text(sum_path.read_text() + "<<<<<<< HEAD\n=======\n>>>>>>> other\n")
    result = run(["check", "--format", "json", "--no-sql"], cwd=root)
    assert result.code == 1
    assert set(codes(result)) == {"sum-mismatch"}
    assert all("migcoord resolve" in f["hint"] for f in result.json()["findings"])
