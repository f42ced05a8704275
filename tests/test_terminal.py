"""On a terminal, `up`, `down` and `verify` show a status line redrawn in place, and
errors, warnings and verdicts are coloured; piped, with -q, --format json, NO_COLOR or
TERM=dumb, none of that. Run through a real pseudo-terminal, against the real server."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

from conftest import PgServer
from ptyrun import run_on_terminal

from helpers import make_tree, pair, run_process
from migcoord.cli.progress import LiveStatus, elapsed, status_text
from migcoord.core.progress import StepStarted
from test_engine_support import AB_CONFIG

ESC = "\x1b["
APPLIED_LINE = re.compile(r"migcoord: applied 00000\d a t\d \(\d+ ms\)")
ROLLED_BACK_LINE = re.compile(r"migcoord: rolled back 00000\d a t\d \(\d+ ms\)")


def four(tmp_path: Path) -> Path:
    files: dict[str, str] = {}
    for n in range(1, 5):
        files |= pair("a", f"00000{n}", f"t{n}", f"CREATE TABLE t{n} (id int);\n",
                      f"DROP TABLE t{n};\n")
    return make_tree(tmp_path / "repo", files, config=AB_CONFIG)


# -- progress -------------------------------------------------------------------------------


def test_up_on_a_terminal_redraws_a_status_line_and_leaves_only_the_log_lines(
        tmp_path: Path, dsn: str) -> None:
    """n/N and the migration on stderr, each drawn after a `\\r`; at the end the screen
    holds the per-migration lines and nothing of the status line."""
    root = four(tmp_path)
    run = run_on_terminal(["up", "--all", "--dsn", dsn], cwd=root)

    assert run.code == 0, run.raw
    for n in range(1, 5):
        assert re.search(rf"\rup {n}/4 00000{n} a t{n}  \d+\.\ds  \(total ", run.written), \
            run.written
    assert len(run.screen) == 4 and all(APPLIED_LINE.fullmatch(line) for line in run.screen), \
        run.screen
    assert run.written.endswith("\n")  # the status line was wiped, not left half-drawn
    assert run.stdout.startswith("applied 4 migrations in ")


def test_down_on_a_terminal_shows_its_steps(tmp_path: Path, dsn: str) -> None:
    root = four(tmp_path)
    assert run_process(["up", "--all", "--dsn", dsn], cwd=root).code == 0
    run = run_on_terminal(["down", "--service", "a", "--steps", "2", "--dsn", dsn], cwd=root)

    assert run.code == 0, run.raw
    assert "\rdown 1/2 000004 a t4  " in run.written
    assert "\rdown 2/2 000003 a t3  " in run.written
    assert len(run.screen) == 2 and all(ROLLED_BACK_LINE.fullmatch(line) for line in run.screen)


def test_no_status_line_when_stderr_is_not_a_terminal(tmp_path: Path, dsn: str) -> None:
    """Piped, stderr gets exactly the per-migration lines: no carriage return, no n/N."""
    root = four(tmp_path)
    result = run_process(["up", "--all", "--dsn", dsn], cwd=root, environ={"TERM": "xterm"})

    assert result.code == 0, result.stderr
    assert "\r" not in result.stderr and "1/4" not in result.stderr and ESC not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 4 and all(APPLIED_LINE.fullmatch(line) for line in lines)


def test_no_status_line_with_quiet_json_or_a_dumb_terminal(tmp_path: Path, dsn: str,
                                                           other_dsn: str) -> None:
    root = four(tmp_path)
    quiet = run_on_terminal(["up", "--service", "a", "--to", "2", "-q", "--dsn", dsn], cwd=root)
    assert quiet.code == 0 and quiet.written == "", quiet.raw

    as_json = run_on_terminal(["up", "--service", "a", "--format", "json", "--dsn", dsn],
                              cwd=root)
    assert as_json.code == 0, as_json.raw
    assert "\r" not in as_json.written and "/2 " not in as_json.written
    assert [s["version"] for s in json.loads(as_json.stdout)["applied"]] == [3, 4]

    dumb = run_on_terminal(["up", "--all", "--dsn", other_dsn], cwd=root,
                           environ={"TERM": "dumb"})
    assert dumb.code == 0, dumb.raw
    assert "\r" not in dumb.written and ESC not in dumb.written
    assert len(dumb.screen) == 4 and all(APPLIED_LINE.fullmatch(line) for line in dumb.screen)


def test_a_failure_wipes_the_status_line_before_the_error(tmp_path: Path, dsn: str) -> None:
    root = make_tree(tmp_path / "repo", {
        **pair("a", "000001", "t1", "CREATE TABLE t1 (id int);\n"),
        **pair("a", "000002", "t2", "SELECT 1;\nSELECT * FROM no_such_table;\n")},
        config=AB_CONFIG)
    run = run_on_terminal(["up", "--all", "--dsn", dsn], cwd=root, environ={"NO_COLOR": "1"})

    assert run.code == 1
    assert "\rup 2/2 000002 a t2  " in run.written
    assert APPLIED_LINE.fullmatch(run.screen[0])
    assert run.screen[1].startswith("migcoord: error: ")
    assert "000002_t2.up.sql:2:15: ERROR:" in run.screen[1]
    assert not any(line.startswith("up ") for line in run.screen)


def test_ctrl_c_wipes_the_status_line_before_saying_what_it_left(tmp_path: Path,
                                                                dsn: str) -> None:
    root = make_tree(tmp_path / "repo", {
        **pair("a", "000001", "t1", "CREATE TABLE t1 (id int);\n"),
        **pair("a", "000002", "slow", "SELECT pg_sleep(600);\n")}, config=AB_CONFIG)
    run = run_on_terminal(["up", "--all", "--dsn", dsn], cwd=root,
                          interrupt_at="\rup 2/2 000002 a slow  ")

    assert run.code == 130, run.raw
    assert APPLIED_LINE.fullmatch(run.screen[0])
    assert run.screen[1].startswith("migcoord: interrupted; each migration is applied ")
    assert len(run.screen) == 2, run.screen


def test_verify_on_a_terminal_shows_each_round_trip_and_colours_its_verdicts(
        tmp_path: Path, pg_server: PgServer) -> None:
    root = make_tree(tmp_path / "repo", {
        **pair("a", "000001", "t1", "CREATE TABLE t1 (id int);\n", "DROP TABLE t1;\n"),
        **pair("a", "000002", "t2", "CREATE TABLE t2 (id int);\n", "SELECT 1;\n")},
        config=AB_CONFIG)
    run = run_on_terminal(["verify", "--dsn", pg_server.admin_dsn], cwd=root)

    assert run.code == 1, run.raw
    assert "\rverify 1/2 000001 a t1  " in run.written
    assert "\rverify 2/2 000002 a t2  " in run.written
    assert "\rverify whole sequence down and up again  " in run.written
    first, *verdicts = run.screen
    assert first.startswith("migcoord: verifying 2 migrations in the throwaway database ")
    assert verdicts[0].startswith(f"migcoord: 000001 a t1: {ESC}32mok{ESC}0m  [up ")
    assert verdicts[1].startswith(f"migcoord: 000002 a t2: {ESC}31mFAILED{ESC}0m (")
    assert len(verdicts) == 3 and verdicts[2].startswith(
        "migcoord: whole sequence down and up again: ")
    # stdout was a pipe: the report is plain.
    assert "verify failed: 2 migrations round-tripped, 1 failed" in run.stdout
    assert ESC not in run.stdout


# -- colour ---------------------------------------------------------------------------------


def broken(tmp_path: Path) -> Path:
    """A tree whose check reports an error (missing-down) and a warning (empty-migration)."""
    up_only = {"a/migrations/000001_t1.up.sql": "CREATE TABLE IF NOT EXISTS t1 (id int);\n"}
    return make_tree(tmp_path / "repo", {**up_only, **pair("a", "000002", "empty", "", "")},
                     config=AB_CONFIG)


def test_check_on_a_terminal_colours_errors_red_and_warnings_yellow(tmp_path: Path) -> None:
    run = run_on_terminal(["check"], cwd=broken(tmp_path), stdout_too=True)

    assert run.code == 1, run.raw
    assert f": {ESC}31merror{ESC}0m: missing-down: " in run.written
    assert f": {ESC}33mwarning{ESC}0m: empty-migration: " in run.written
    assert f"{ESC}31mcheck failed{ESC}0m: 1 error, 1 warning" in run.written


def test_check_ok_is_green(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "repo", pair("a", "000001", "t1",
                                             "CREATE TABLE IF NOT EXISTS t1 (id int);\n",
                                             "DROP TABLE IF EXISTS t1;\n"), config=AB_CONFIG)
    run = run_on_terminal(["check"], cwd=root)
    assert run.code == 0, run.raw
    assert run.screen == [f"{ESC}32mcheck ok{ESC}0m: 0 errors, 0 warnings"]


def test_no_colour_with_no_color_a_dumb_terminal_or_a_pipe(tmp_path: Path) -> None:
    root = broken(tmp_path)
    for environ in ({"NO_COLOR": "1"}, {"NO_COLOR": "false"}, {"TERM": "dumb"}):
        run = run_on_terminal(["check"], cwd=root, environ=environ, stdout_too=True)
        assert run.code == 1
        assert ESC not in run.raw, (environ, run.raw)
        assert ": error: missing-down: " in run.written
        assert "check failed: 1 error, 1 warning" in run.written
    piped = run_process(["check"], cwd=root, environ={"TERM": "xterm"})
    assert piped.code == 1 and ESC not in piped.stdout + piped.stderr


def test_an_error_is_red_on_a_terminal_only(tmp_path: Path) -> None:
    """The no-DSN usage error: `error` in red on a terminal, plain in a pipe, and the
    same words either way."""
    root = four(tmp_path)
    run = run_on_terminal(["up", "--service", "a"], cwd=root)
    assert run.code == 2
    assert run.screen[0].startswith(f"migcoord: {ESC}31merror{ESC}0m: no database")
    piped = run_process(["up", "--service", "a"], cwd=root, environ={"TERM": "xterm"})
    assert piped.code == 2
    assert piped.stderr.splitlines()[0] == run.screen[0].replace(f"{ESC}31m", "").replace(
        f"{ESC}0m", "")


# -- the status line itself -------------------------------------------------------------------


def test_status_line_is_cut_to_the_terminal_width_and_wiped_for_other_lines() -> None:
    """A line longer than the terminal would wrap, and `\\r` would then not go back to its
    start; a StringIO has no width, so 80 columns are assumed."""
    stream = io.StringIO()
    now = [100.0]
    status = LiveStatus(stream, clock=lambda: now[0])
    status.on_step(StepStarted(index=1, total=2, command="up", name="x" * 200, version=7,
                               service="a"))
    now[0] += 75
    status.redraw()
    status.write("migcoord: applied 000007 a xxx (1 ms)\n")
    status.close()

    drawn = [part for part in stream.getvalue().split("\r") if part.startswith("up ")]
    assert drawn and all(len(part) == 79 for part in drawn)
    assert stream.getvalue().endswith("migcoord: applied 000007 a xxx (1 ms)\n")


class _InterruptedFlush(io.StringIO):
    """A stream whose first flush is where Ctrl-C lands, as it can on a terminal."""

    def __init__(self) -> None:
        super().__init__()
        self.interrupt = True

    def flush(self) -> None:
        if self.interrupt:
            self.interrupt = False
            raise KeyboardInterrupt
        super().flush()


def test_a_ctrl_c_while_the_status_line_is_drawn_still_lets_it_be_wiped() -> None:
    """The interrupt lands after the line is written and before its drawing returns; the
    wipe on the way out must still cover it."""
    stream = _InterruptedFlush()
    status = LiveStatus(stream, clock=lambda: 5.0)
    step = StepStarted(index=2, total=2, command="up", name="slow", version=2, service="a")
    try:
        status.on_step(step)
    except KeyboardInterrupt:
        pass
    else:
        raise AssertionError("the stream's flush did not interrupt the drawing")
    status.close()

    drawn = status_text(step, 0, 0)
    assert stream.getvalue() == f"\r{drawn}\r{' ' * len(drawn)}\r"


def test_status_text_and_elapsed_times() -> None:
    step = StepStarted(index=3, total=40, command="up", name="add_index", version=7,
                       service="aggregator")
    assert status_text(step, 2.14, 14.2) == "up 3/40 000007 aggregator add_index  2.1s  (total 14s)"
    sequence = StepStarted(index=2, total=2, command="verify", name="whole sequence")
    assert status_text(sequence, 0, 61) == "verify whole sequence  0.0s  (total 1m01s)"
    assert [elapsed(s) for s in (0.04, 9.94, 10, 59.9, 3599, 7380)] == [
        "0.0s", "9.9s", "10s", "59s", "59m59s", "2h03m"]
