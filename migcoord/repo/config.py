"""Find and load migcoord.toml (the only module that reads TOML).

Every mistake is reported at once, each naming the file, the key and what is expected,
as one ConfigError (exit 2).
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from migcoord.core import ddl
from migcoord.core.model import Config, Reservation, ServiceConfig
from migcoord.errors import ConfigError, UsageError

CONFIG_NAME = "migcoord.toml"
ENV_CONFIG = "MIGCOORD_CONFIG"

_TOP_KEYS: dict[str, type | tuple[type, ...]] = {
    "database_url_env": str,
    "version_width": int,
    "history_schema": str,
    "default_schema": str,
    "docs": str,
    "docs_schema": bool,
    "adopted_through": (int, str),
    "allow": list,
    "synchronous_commit": str,
    "lock_timeout": (int, float),
    "ddl": dict,
    "services": dict,
}
_SERVICE_KEYS = {"migrations": str, "owns": list, "reserved": str, "role": str, "ddl": dict}
_SERVICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
_RESERVED = re.compile(r"^\s*([0-9]+)\s*-\s*([0-9]+)\s*$")
_SYNC_CHOICES = ("last", "each")


def locate(
    *, start: Path, environ: Mapping[str, str], explicit: Path | None = None
) -> Path:
    """The config file to use: `explicit` (--config), else $MIGCOORD_CONFIG, else the
    nearest migcoord.toml in `start` or a parent folder (like git finds .git)."""
    if explicit is not None:
        return _existing(explicit, "--config")
    if environ.get(ENV_CONFIG):
        return _existing(Path(environ[ENV_CONFIG]), f"${ENV_CONFIG}")
    folder = start.resolve()
    for candidate_dir in (folder, *folder.parents):
        candidate = candidate_dir / CONFIG_NAME
        if _is_file(candidate):
            return candidate
    raise ConfigError(
        f"no {CONFIG_NAME} found in {folder} or any folder above it",
        hint=f"run from inside the repository, or pass --config PATH, or set ${ENV_CONFIG}",
    )


def _existing(path: Path, source: str) -> Path:
    try:
        if path.is_dir():
            path = path / CONFIG_NAME
    except OSError as err:
        raise _unreadable(path, err) from None
    if not _is_file(path):
        raise ConfigError(f"config file {path} (from {source}) does not exist",
                          hint="check the path")
    return path.resolve()


def _is_file(path: Path) -> bool:
    """Whether `path` is a file; ConfigError when a folder on the way may not be entered
    (Path.is_file raises PermissionError there instead of answering)."""
    try:
        return path.is_file()
    except OSError as err:
        raise _unreadable(path, err) from None


def _unreadable(path: Path, err: OSError) -> ConfigError:
    return ConfigError(f"cannot look for the config at {path}: {err.strerror}",
                       hint="run as a user who may read the repository, or pass --config PATH")


def load(path: Path) -> Config:
    """Read and validate one config file."""
    try:
        raw_bytes = path.read_bytes()
    except OSError as err:
        raise ConfigError(f"cannot read the config: {err.strerror}", path=path) from None
    return parse(raw_bytes, path)


def parse(raw_bytes: bytes, path: Path) -> Config:
    """A config file's content, validated as if it were at `path`."""
    try:
        # A byte order mark (as Windows editors write) is not TOML; it is dropped.
        data = tomllib.loads(raw_bytes.decode("utf-8").removeprefix("\ufeff"))
    except UnicodeDecodeError:
        raise ConfigError("the config is not valid UTF-8", path=path) from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"not valid TOML: {err}", path=path,
                          hint="see https://toml.io for the syntax") from None
    return from_mapping(data, path=path.resolve())


#: Notes one mistake: (the key, what is wrong with it).
Problem = Callable[[str, str], None]

#: The longest identifier PostgreSQL keeps (NAMEDATALEN - 1): longer ones are truncated.
MAX_IDENTIFIER_BYTES = 63
#: The longest wait, in seconds, a lock timeout may ask for (a day).
MAX_SECONDS = 86400


def seconds_problem(value: object) -> str | None:
    """Why `value` is not a usable lock wait in seconds (above 0, at most a day, finite),
    or None when it is; the one rule for `lock_timeout`, `--lock-timeout` and the API."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"expected a number of seconds, got {ddl.shown(value)}"
    if not (math.isfinite(value) and 0 < value <= MAX_SECONDS):
        return f"expected a number of seconds above 0 and at most {MAX_SECONDS}, got {value!r}"
    return None


def lock_wait(value: float) -> float:
    """`value` when it is a usable lock wait (`seconds_problem`), else UsageError: how the
    library's calls that take a lock judge their `lock_timeout` argument."""
    why = seconds_problem(value)
    if why is not None:
        raise UsageError(f"lock_timeout: {why}")
    return value


def settings(values: Mapping[str, Any], *, root: Path, where: str) -> dict[str, Any]:
    """Config fields from top-level settings spelt as in migcoord.toml (`docs` a path
    relative to `root`, `allow` a list), validated exactly as a config file's; one
    ConfigError naming every mistake, each prefixed with the key, after `where`."""
    problems: list[str] = []

    def problem(key: str, message: str) -> None:
        problems.append(f"[{key}] {message}")

    fields = _top_level({k: v for k, v in values.items() if k != "services"}, root, problem)
    if "services" in values:
        problem("services", "not a setting here")
    if problems:
        raise ConfigError(f"{where}: invalid settings:\n  " + "\n  ".join(problems),
                          hint="fix the settings above; see docs/config.md")
    fields.pop("services")
    return fields


def service_name_problem(name: object) -> str | None:
    """Why `name` cannot name a service, or None when it can."""
    if not isinstance(name, str) or not _SERVICE_NAME.match(name):
        return "a service name is letters, digits, '_', '-' or '.'"
    return None


def from_mapping(data: Mapping[str, Any], *, path: Path) -> Config:
    """Validate parsed TOML; `path` is where it came from (paths are relative to it).

    Every mistake is reported at once, in one ConfigError.
    """
    problems: list[str] = []

    def problem(key: str, message: str) -> None:
        problems.append(f"[{key}] {message}")

    settings = _top_level(data, path.parent, problem)
    services = _services(settings.pop("services"), path.parent, problem)
    if not services and "services" in data and not problems:
        problem("services", "no service is configured")
    if "services" not in data:
        problem("services", "missing: add at least one [services.NAME] table with migrations = ...")
    if problems:
        message = "invalid config:\n  " + "\n  ".join(problems)
        raise ConfigError(message, path=path, hint="fix the keys above; see docs/config.md")
    return Config(root=path.parent, path=path, services=tuple(services), **settings)


def _top_level(data: Mapping[str, Any], root: Path, problem: Problem) -> dict[str, Any]:
    """The top-level settings as Config fields (and the raw `services` table); a value of
    the wrong type is noted and replaced by its default, so the rest is still judged."""
    for key, value in data.items():
        expected = _TOP_KEYS.get(key)
        if expected is None:
            problem(key, f"unknown key; known keys: {', '.join(sorted(_TOP_KEYS))}")
        elif not _has_type(value, expected):
            problem(key, f"expected {_type_name(expected)}, got {_got(value)}")

    def get(key: str, default: Any) -> Any:
        value = data.get(key, default)
        return value if _has_type(value, _TOP_KEYS[key]) else default

    database_url_env = get("database_url_env", "DATABASE_URL")
    if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", database_url_env):
        problem("database_url_env", f"{database_url_env!r} is not an environment variable name")
    version_width = get("version_width", 6)
    if not 1 <= version_width <= 20:
        problem("version_width", f"expected a number from 1 to 20, got {version_width}")
    history_schema = get("history_schema", "public")
    default_schema = get("default_schema", "public")
    for key, value in (("history_schema", history_schema), ("default_schema", default_schema)):
        why = _identifier_problem(value, "schema")
        if why is not None:
            problem(key, why)
    if _IDENTIFIER.match(history_schema) and _system_schema(history_schema):
        problem("history_schema", f"{history_schema!r} is a system schema: PostgreSQL reserves "
                "pg_* and information_schema; use a schema of your own, e.g. \"migcoord\"")
    docs_value = get("docs", None)
    docs = _inside(root, docs_value, "docs", problem) if docs_value is not None else None
    docs_schema = get("docs_schema", False)
    adopted_through = _adopted_through(get("adopted_through", None), problem)
    if docs_schema and docs is None:
        problem("docs_schema", "needs `docs`, the file the schema is written to")
    allow_list = get("allow", [])
    if not all(isinstance(code, str) for code in allow_list):
        problem("allow", "expected a list of finding codes (strings)")
        allow_list = []
    lock_timeout = get("lock_timeout", 60)
    why = seconds_problem(lock_timeout)
    if why is not None:
        problem("lock_timeout", why)
    ddl_settings = ddl.settings_from(get("ddl", {}), _prefixed("ddl", problem))
    sync = get("synchronous_commit", "last")
    if sync not in _SYNC_CHOICES:
        problem("synchronous_commit", f"expected one of {', '.join(_SYNC_CHOICES)}, got {sync!r}")
    return {
        "database_url_env": database_url_env,
        "version_width": version_width,
        "history_schema": history_schema,
        "default_schema": default_schema,
        "docs": docs,
        "docs_schema": docs_schema,
        "adopted_through": adopted_through,
        "allow": frozenset(allow_list),
        "synchronous_commit": sync,
        "lock_timeout": float(lock_timeout),
        "ddl": ddl_settings,
        "services": get("services", {}),
    }


def _adopted_through(value: int | str | None, problem: Problem) -> int | None:
    """`adopted_through`: the last version numbered before migcoord (a number, or its
    digits as a string, `"0190"`)."""
    if value is None:
        return None
    if isinstance(value, str):
        if not value.strip().isdigit():
            problem("adopted_through", f"expected a version number such as \"0190\", got "
                    f"{value!r}")
            return None
        value = int(value.strip())
    if not 0 <= value <= 9223372036854775807:
        problem("adopted_through", f"expected a version from 0 to 9223372036854775807, got "
                f"{value}")
        return None
    return value


def _services(table: Mapping[str, Any], root: Path, problem: Problem) -> list[ServiceConfig]:
    services: list[ServiceConfig] = []
    folders: dict[Path, str] = {}
    reservations: list[tuple[str, Reservation]] = []
    for name, body in table.items():
        key = f"services.{name}"
        why = service_name_problem(name)
        if why is not None:
            problem(key, why)
            continue
        if not isinstance(body, dict):
            problem(key, f"expected a table, got {_type_name(type(body))}")
            continue
        # A key of the wrong type is left out and the others are still judged, so one run
        # reports every mistake.
        valid: dict[str, Any] = {}
        for sub, value in body.items():
            expected = _SERVICE_KEYS.get(sub)
            if expected is None:
                problem(f"{key}.{sub}", f"unknown key; known keys: {', '.join(sorted(_SERVICE_KEYS))}")
            elif not isinstance(value, expected):
                problem(f"{key}.{sub}",
                        f"expected {_type_name(expected)}, got {_got(value)}")
            else:
                valid[sub] = value
        if "migrations" not in body:
            problem(f"{key}.migrations", 'missing: the folder of this service\'s migrations, '
                    'e.g. migrations = "aggregator/migrations"')
            continue
        if "migrations" not in valid:
            continue
        body = valid
        folder = _inside(root, body["migrations"], f"{key}.migrations", problem)
        if folder is None:
            continue
        if folder in folders:
            problem(f"{key}.migrations",
                    f"{body['migrations']!r} is also the folder of service {folders[folder]!r}; "
                    "each service needs its own folder")
            continue
        nested = next(((seen, owner) for seen, owner in folders.items()
                       if folder in seen.parents or seen in folder.parents), None)
        if nested is not None:
            seen, owner = nested
            inner, outer = (name, owner) if seen in folder.parents else (owner, name)
            problem(f"{key}.migrations",
                    f"the folder of service {inner!r} lies inside the folder of service "
                    f"{outer!r}; each service needs a folder of its own, side by side")
            continue
        folders[folder] = name
        owns = body.get("owns", [])
        if not all(isinstance(t, str) and t for t in owns):
            problem(f"{key}.owns", 'expected a list of table names, e.g. owns = ["rules"]')
            owns = []
        reservation = None
        if "reserved" in body:
            reservation = _reservation(body["reserved"], f"{key}.reserved", problem)
            if reservation is not None:
                for other_name, other in reservations:
                    if reservation.overlaps(other):
                        problem(f"{key}.reserved",
                                f"{body['reserved']!r} overlaps the range reserved by "
                                f"{other_name!r} ({other.first}-{other.last})")
                reservations.append((name, reservation))
        role = body.get("role")
        why = _identifier_problem(role, "role") if role is not None else None
        if why is not None:
            problem(f"{key}.role", why)
        service_ddl = ddl.settings_from(body.get("ddl", {}), _prefixed(f"{key}.ddl", problem))
        services.append(
            ServiceConfig(name=name, migrations=folder, owns=tuple(owns),
                          reserved=reservation, role=role, ddl=service_ddl)
        )
    return services


def _prefixed(table: str, problem: Problem) -> Problem:
    """`problem` for the keys of `table`: `[ddl.retries] ...`."""
    return lambda key, why: problem(f"{table}.{key}", why)


def _identifier_problem(value: str, what: str) -> str | None:
    """Why `value` is not a usable name of a schema or role, or None."""
    if not _IDENTIFIER.match(value):
        return f"{value!r} is not a plain {what} name (letters, digits, _)"
    if len(value.encode("utf-8")) > MAX_IDENTIFIER_BYTES:
        return (f"{value!r} is {len(value)} characters long; PostgreSQL keeps at most "
                f"{MAX_IDENTIFIER_BYTES} and would silently cut it")
    return None


def _system_schema(name: str) -> bool:
    # PostgreSQL refuses CREATE SCHEMA pg_... (reserved for the system); pg_catalog,
    # pg_toast and pg_temp_N exist but are no place for migcoord's tables.
    return name.startswith("pg_") or name == "information_schema"


def _reservation(text: str, key: str, problem: Problem) -> Reservation | None:
    match = _RESERVED.match(text)
    if match is None:
        problem(key, f'expected a range "FIRST-LAST" such as "000001-000005", got {text!r}')
        return None
    first, last = int(match.group(1)), int(match.group(2))
    if first < 1 or first > last:
        problem(key, f"{text!r} is empty or starts below 1: the first number must be "
                "at least 1 and not above the last")
        return None
    return Reservation(first, last)


def _inside(root: Path, value: str, key: str, problem: Problem) -> Path | None:
    if not value.strip():
        problem(key, "expected a path, got an empty string")
        return None
    resolved = (root / value).resolve()
    if resolved != root and root not in resolved.parents:
        problem(key, f"{value!r} points outside the folder of the config ({root}); "
                "paths must stay inside the repository")
        return None
    return resolved


def _has_type(value: object, expected: type | tuple[type, ...]) -> bool:
    # TOML's true/false are bools, and bool is an int subclass in Python: a bool is only
    # what a bool is expected for.
    if isinstance(value, bool):
        return expected is bool
    return isinstance(value, expected)


def _got(value: object) -> str:
    """What a key of the wrong type holds: `true` as written, else the kind of value."""
    return ddl.shown(value) if isinstance(value, bool) else _type_name(type(value))


def _type_name(kind: type | tuple[type, ...]) -> str:
    if isinstance(kind, tuple):
        return "a number"
    return {
        str: "a string",
        int: "a whole number",
        list: "a list",
        dict: "a table",
        bool: "true/false",
        float: "a number",
    }.get(kind, kind.__name__)
