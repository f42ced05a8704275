"""`python -m migcoord`."""

from migcoord.cli import run

run()
