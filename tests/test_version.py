"""`migcoord --version` and `migcoord.__version__`, from the installed package metadata."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

import attr
import attrs

import migcoord
from helpers import REPO, run


def test_version_option_prints_the_installed_version(tmp_path: Path) -> None:
    """`--version` works anywhere (no config needed) and prints what pip installed."""
    result = run(["--version"], cwd=tmp_path)
    assert result.code == 0, result.stderr
    assert result.stdout == f"migcoord {metadata.version('migcoord')}\n"
    assert migcoord.__version__ == metadata.version("migcoord")
    assert "__version__" in migcoord.__all__


def test_version_without_package_metadata_is_a_sane_placeholder(tmp_path: Path) -> None:
    """A source tree on PYTHONPATH, with no metadata anywhere, says 0+unknown."""
    (tmp_path / "lib").mkdir()
    for module in (attr, attrs):
        folder = Path(module.__file__ or "").parent
        (tmp_path / "lib" / folder.name).symlink_to(folder)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "migcoord").symlink_to(REPO / "migcoord")
    # -S: no site-packages, so neither the venv's metadata nor an egg-info is seen.
    done = subprocess.run(
        [sys.executable, "-S", "-c", "import migcoord; print(migcoord.__version__)"],
        env={"PYTHONPATH": f"{tmp_path / 'src'}:{tmp_path / 'lib'}"}, cwd=tmp_path,
        capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{migcoord.UNKNOWN_VERSION}\n"


def test_a_command_with_a_version_argument_is_not_taken_for_version(tmp_path: Path) -> None:
    """`mark 7 --applied` reaches mark (it needs a database), not the --version output."""
    (tmp_path / "migcoord.toml").write_text('[services.a]\nmigrations = "a"\n')
    result = run(["mark", "7", "--applied"], cwd=tmp_path)
    assert result.code == 2 and "migcoord" not in result.stdout
    assert "no database given" in result.stderr
