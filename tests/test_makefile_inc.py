"""Makefile.inc, run by real GNU make in a temporary copy.

`MIGCOORD` points at a tiny recording script (run by this Python, so it is also a
two-word command like `python -m migcoord`) that appends its argv as one JSON line to a
file. That tests what make expands and passes on, not migcoord itself.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import attrs
import pytest

REPO = Path(__file__).resolve().parents[1]
MAKEFILE_INC = REPO / "Makefile.inc"
EXAMPLE = REPO / "examples" / "alerting"

RECORDER = """\
import json, os, sys
with open(os.environ["RECORD_LOG"], "a", encoding="utf-8") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
sys.exit(int(os.environ.get("RECORD_EXIT", "0")))
"""

#: Variables from the caller's environment that would change what make does.
SCRUBBED = {
    "MAKEFLAGS",
    "MFLAGS",
    "MAKELEVEL",
    "MAKEFILES",
    "GNUMAKEFLAGS",
    "MAKEOVERRIDES",
    "NAME",
    "VERSION",
    "SERVICE",
    "STEPS",
    "MIGCOORD",
    "MIGCOORD_FLAGS",
    "ONTO",
}

SERVICE_MAKEFILE = "SERVICE := aggregator\ninclude ../Makefile.inc\n"


@attrs.frozen
class Run:
    returncode: int
    stdout: str
    stderr: str
    calls: list[list[str]]

    @property
    def stderr_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


@attrs.frozen
class Workspace:
    """A copy of Makefile.inc with service folders beside it, and the recording MIGCOORD."""

    root: Path
    recorder: Path
    log: Path

    def service(self, makefile: str = SERVICE_MAKEFILE, folder: str = "aggregator") -> Path:
        path = self.root / folder
        path.mkdir(exist_ok=True)
        (path / "Makefile").write_text(makefile)
        return path

    def make(
        self,
        *args: str,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        exit_code: int = 0,
    ) -> Run:
        self.log.write_text("")
        environ = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
        environ.update(LC_ALL="C", RECORD_LOG=str(self.log), RECORD_EXIT=str(exit_code))
        environ.update(env or {})
        migcoord = f"{shlex.quote(sys.executable)} {shlex.quote(str(self.recorder))}"
        proc = subprocess.run(
            ["make", f"MIGCOORD={migcoord}", *args],
            cwd=cwd or self.root / "aggregator",
            env=environ,
            capture_output=True,
            text=True,
            timeout=60,
        )
        calls = [json.loads(line) for line in self.log.read_text().splitlines()]
        return Run(proc.returncode, proc.stdout, proc.stderr, calls)


def workspace(root: Path) -> Workspace:
    """Makefile.inc copied to `root`, and the recorder beside it."""
    shutil.copy(MAKEFILE_INC, root / "Makefile.inc")
    recorder = root / "record.py"
    recorder.write_text(RECORDER)
    return Workspace(root=root, recorder=recorder, log=root / "calls.jsonl")


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    """A workspace with the two-line Makefile of `aggregator`."""
    ws = workspace(tmp_path)
    ws.service()
    return ws


def assert_one_usage_line(run: Run, *expected: str) -> None:
    assert run.returncode != 0
    assert len(run.stderr_lines) == 1, run.stderr
    assert "usage:" in run.stderr_lines[0]
    for text in expected:
        assert text in run.stderr_lines[0]
    assert run.calls == [], "migcoord must not run after a usage error"


TARGETS: Sequence[tuple[list[str], list[str]]] = [
    (["migrate-create", "NAME=add_index"], ["create", "add_index", "--service", "aggregator"]),
    (["migrate-up"], ["up", "--service", "aggregator"]),
    (["migrate-down", "STEPS=3"], ["down", "--service", "aggregator", "--steps", "3"]),
    (["migrate-status"], ["status", "--service", "aggregator"]),
    (["migrate-force", "VERSION=000007"], ["force", "000007", "--reason", "make migrate-force"]),
    (["check-migrations"], ["check"]),
    (["migrate-verify"], ["verify", "--service", "aggregator"]),
    (["migrate-resolve"], ["resolve"]),
    (["migrate-resolve", "ONTO=origin/main"], ["resolve", "--onto", "origin/main"]),
    (["migrate-docs"], ["docs", "--schema"]),
]


@pytest.mark.parametrize(("args", "argv"), TARGETS, ids=[" ".join(t[0]) for t in TARGETS])
def test_each_target_runs_its_migcoord_command(ws: Workspace, args: list[str], argv: list[str]) -> None:
    """Each target runs exactly one migcoord command, with the documented arguments."""
    run = ws.make(*args)
    assert run.returncode == 0, run.stderr
    assert run.calls == [argv]


@pytest.mark.parametrize(("args", "argv"), TARGETS, ids=[" ".join(t[0]) for t in TARGETS])
def test_migcoord_flags_are_appended_to_every_call(ws: Workspace, args: list[str], argv: list[str]) -> None:
    """MIGCOORD_FLAGS is split into words and appended after each command's arguments."""
    run = ws.make(*args, "MIGCOORD_FLAGS=--format json -q")
    assert run.returncode == 0, run.stderr
    assert run.calls == [[*argv, "--format", "json", "-q"]]


def test_migrate_down_rolls_back_one_step_by_default(ws: Workspace) -> None:
    """Without STEPS, migrate-down passes --steps 1."""
    run = ws.make("migrate-down")
    assert run.calls == [["down", "--service", "aggregator", "--steps", "1"]]


@pytest.mark.parametrize("name", ["add index", "add 'quoted' index", "with;semicolon", "`backticks`", 'a"b'])
def test_migration_name_reaches_migcoord_as_one_argument(ws: Workspace, name: str) -> None:
    """NAME is quoted for the shell: spaces, quotes and shell syntax arrive as one argument."""
    run = ws.make("migrate-create", f"NAME={name}")
    assert run.returncode == 0, run.stderr
    assert run.calls == [["create", name, "--service", "aggregator"]]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["migrate-create"], "make migrate-create NAME="),
        (["migrate-create", "NAME="], "make migrate-create NAME="),
        (["migrate-force"], "make migrate-force VERSION="),
        (["migrate-force", "VERSION= "], "make migrate-force VERSION="),
        (["migrate-down", "STEPS="], "make migrate-down [STEPS=n]"),
    ],
    ids=["no-NAME", "empty-NAME", "no-VERSION", "blank-VERSION", "empty-STEPS"],
)
def test_missing_argument_stops_make_with_one_usage_line(
    ws: Workspace, args: list[str], expected: str
) -> None:
    """A missing NAME, VERSION or STEPS stops make with one usage line and a non-zero exit."""
    assert_one_usage_line(ws.make(*args), expected)


@pytest.mark.parametrize(
    "target", ["migrate-create", "migrate-up", "migrate-down", "migrate-status", "migrate-verify"]
)
def test_missing_service_stops_service_targets_with_one_usage_line(ws: Workspace, target: str) -> None:
    """A Makefile that includes Makefile.inc without SERVICE gets one usage line naming SERVICE."""
    folder = ws.service("include ../Makefile.inc\n", folder="noservice")
    assert_one_usage_line(ws.make(target, "NAME=add_index", cwd=folder), "SERVICE")


def test_targets_that_take_no_service_work_without_one(ws: Workspace) -> None:
    """check-migrations and migrate-force do not need SERVICE."""
    folder = ws.service("include ../Makefile.inc\n", folder="noservice")
    run = ws.make("check-migrations", "migrate-force", "VERSION=7", cwd=folder)
    assert run.returncode == 0, run.stderr
    assert run.calls == [["check"], ["force", "7", "--reason", "make migrate-force"]]


def test_usage_checks_apply_only_to_their_own_target(ws: Workspace) -> None:
    """Targets that take no NAME or VERSION run without them, several in one make call."""
    run = ws.make("migrate-up", "migrate-status")
    assert run.returncode == 0, run.stderr
    assert run.calls == [["up", "--service", "aggregator"], ["status", "--service", "aggregator"]]


def test_migrate_force_ignores_version_from_the_environment(ws: Workspace) -> None:
    """A VERSION left in the environment (an image tag, say) never reaches `migcoord force`."""
    assert_one_usage_line(ws.make("migrate-force", env={"VERSION": "000003"}), "on the command line")


def test_migrate_force_ignores_version_defined_in_the_service_makefile(ws: Workspace) -> None:
    """A VERSION defined in the service Makefile (a release number) is not a migration."""
    folder = ws.service("VERSION := 2\n" + SERVICE_MAKEFILE)
    assert_one_usage_line(ws.make("migrate-force", cwd=folder), "on the command line")


def test_migcoord_failure_fails_make(ws: Workspace) -> None:
    """migcoord's non-zero exit (3: could not get the lock) makes make fail too."""
    run = ws.make("migrate-up", exit_code=3)
    assert run.returncode != 0
    assert "Error 3" in run.stderr
    assert run.calls == [["up", "--service", "aggregator"]]


def test_plain_make_lists_the_migration_targets(ws: Workspace) -> None:
    """In a two-line service Makefile, `make` alone runs migrate-help, which lists every target."""
    run = ws.make()
    assert run.returncode == 0, run.stderr
    assert "SERVICE=aggregator" in run.stdout
    listed = [line.split()[0] for line in run.stdout.splitlines()[1:]]
    assert listed == [
        "migrate-help",
        "migrate-create",
        "migrate-up",
        "migrate-down",
        "migrate-status",
        "migrate-force",
        "check-migrations",
        "migrate-verify",
        "migrate-resolve",
        "migrate-docs",
    ]
    assert run.calls == []


def test_service_makefile_keeps_its_own_default_goal(ws: Workspace) -> None:
    """A service Makefile whose first target comes before the include keeps it as the default."""
    folder = ws.service("SERVICE := aggregator\nbuild:\n\t@echo building\ninclude ../Makefile.inc\n")
    run = ws.make(cwd=folder)
    assert run.stdout.strip() == "building"


@pytest.mark.parametrize("service", ["rule-service", "aggregator", "sender"])
def test_example_service_makefiles_reach_the_root_include(tmp_path: Path, service: str) -> None:
    """examples/alerting/<service>/Makefile is the two documented lines and works from its folder."""
    makefile = EXAMPLE / service / "Makefile"
    assert makefile.read_text() == f"SERVICE := {service}\ninclude ../Makefile.inc\n"
    ws = workspace(tmp_path)  # the repository root: Makefile.inc
    copy = tmp_path / "examples" / "alerting"
    (copy / service).mkdir(parents=True)
    shutil.copy(EXAMPLE / "Makefile.inc", copy / "Makefile.inc")
    shutil.copy(makefile, copy / service / "Makefile")
    run = ws.make("migrate-up", cwd=copy / service)
    assert run.returncode == 0, run.stderr
    assert run.calls == [["up", "--service", service]]
