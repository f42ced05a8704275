"""`make` on a Python that cannot create virtual environments (Debian without
python3-venv): one message naming the package, and no half-made .venv left behind."""

from __future__ import annotations

import subprocess
from pathlib import Path

from helpers import REPO


def fake_python(folder: Path, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "python3"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o755)
    return script


def make_venv(python: Path, venv: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["make", "-s", "-C", str(REPO), f"PYTHON={python}", f"VENV={venv}",
                           f"{venv}/bin/python"], capture_output=True, text=True, check=False,
                          env={"PATH": "/usr/bin:/bin"})


def test_a_python_without_venv_support_is_named_before_anything_is_made(tmp_path: Path) -> None:
    python = fake_python(tmp_path / "bin", """\
case "$*" in
  *ensurepip*) exit 1 ;;
  *version_info*) echo 3.11 ;;
esac
""")
    done = make_venv(python, tmp_path / ".venv")
    assert done.returncode == 2
    assert "apt-get install python3-venv (or python3.11-venv)" in done.stderr
    assert not (tmp_path / ".venv").exists()


def test_a_venv_that_fails_half_way_is_removed(tmp_path: Path) -> None:
    """ensurepip importable, yet `-m venv` fails after making the folder (as on a broken
    install): the folder goes, so the next run starts clean."""
    python = fake_python(tmp_path / "bin", """\
case "$*" in
  *"-m venv"*) mkdir -p "$3/bin"; echo "Error: ensurepip failed" >&2; exit 1 ;;
esac
exit 0
""")
    done = make_venv(python, tmp_path / ".venv")
    assert done.returncode == 2
    assert "removed the half-made" in done.stderr
    assert not (tmp_path / ".venv").exists()
