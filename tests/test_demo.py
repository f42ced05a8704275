"""The README's main command: `make demo` runs examples/demo.sh, the whole tour."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from helpers import REPO


def test_the_demo_tours_the_example_on_an_embedded_server_and_cleans_up() -> None:
    """Refusal, both services up, create, check, verify, down, and the dev server stopped."""
    migcoord = Path(sys.executable).parent / "migcoord"
    environment = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    environment["MIGCOORD"] = str(migcoord)
    done = subprocess.run(["bash", str(REPO / "examples" / "demo.sh")], env=environment,
                          capture_output=True, text=True, timeout=300, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "needs rule-service:000002, which is not applied" in output
    assert "applied 000006 aggregator create_notifications_table" in output
    assert "000007_add_notification_channel.up.sql" in output
    assert "check ok: 0 errors" in output
    assert "verify ok: 5 migrations round-tripped; whole sequence ok" in output
    assert "rolled back 000006 aggregator create_notifications_table" in output
    scratch = output.split("the scratch copy in ")[1].split()[0]
    assert not Path(scratch).exists()
