"""Which database a command talks to: `--dsn`, else the configured environment variable,
where the value `embedded` names this repository's running dev server.

It lives beside the dev server, above db/: the database layer takes a DSN and knows
nothing of local servers.
"""

from __future__ import annotations

from collections.abc import Mapping

from migcoord.core.model import Config
from migcoord.errors import NoDatabaseUrl

EMBEDDED = "embedded"


def resolve_dsn(explicit: str | None, config: Config, environ: Mapping[str, str]) -> str:
    """`--dsn`, else the environment variable named by `database_url_env` (exit 2 if neither).

    The value `embedded` means this repository's running dev server (`migcoord dev
    start`); when it is not running that is an error (exit 3), never a start. Without
    either there is no fallback: a missing DATABASE_URL never means the dev server.
    """
    if explicit:
        if explicit.strip() == EMBEDDED:
            return _embedded(config, environ, "--dsn embedded")
        return explicit
    value = environ.get(config.database_url_env, "").strip()
    if value == EMBEDDED:
        return _embedded(config, environ, f"{config.database_url_env}=embedded")
    if value:
        return value
    raise NoDatabaseUrl(
        f"no database given: ${config.database_url_env} is not set",
        hint=f"export {config.database_url_env}=postgresql://USER@HOST:5432/DBNAME "
        "(or pass --dsn); for a local development server use `migcoord dev start` and "
        f"{config.database_url_env}=embedded",
    )


def _embedded(config: Config, environ: Mapping[str, str], asked_by: str) -> str:
    from migcoord.local import devserver

    return devserver.running_dsn(config, environ, asked_by=asked_by)
