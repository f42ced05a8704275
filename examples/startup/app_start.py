"""Apply this service's own migrations at boot, then start serving.

Every replica runs this: migcoord applies each migration exactly once and the other
replicas wait (up to lock_timeout seconds) and then find nothing to do.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import migcoord

SERVICE = "aggregator"
# The image carries only this service's folder; no migcoord.toml is needed for `up`.
MIGRATIONS = Path(os.environ.get("MIGRATIONS_DIR", Path(__file__).parent / "migrations"))


def migrate() -> None:
    """Apply SERVICE's pending migrations, or raise migcoord.MigcoordError saying why not."""
    coord = migcoord.Coordinator.for_service(SERVICE, migrations=MIGRATIONS)
    # In a checkout with migcoord.toml: coord = migcoord.Coordinator.load()
    coord.up(SERVICE, dsn=os.environ["DATABASE_URL"], lock_timeout=60)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("migcoord").setLevel(logging.INFO)  # each migration applied, lock waits
    if not os.environ.get("DATABASE_URL"):
        sys.exit(f"{SERVICE}: set DATABASE_URL to the database's connection URL")
    try:
        migrate()
    except migcoord.MigcoordError as err:
        # The message says what to do next, e.g. "run `migcoord up --service rule-service` first".
        sys.exit(f"{SERVICE}: migrations not applied: {err}")
    logging.getLogger(SERVICE).info("schema is up to date; starting")
    # serve() ...


if __name__ == "__main__":
    main()
