"""A Config made in code for one service's folder, with no config file
(`Coordinator.for_service`, for service start-up code).

Its settings are Config fields, spelt here as migcoord.toml spells them so that the
config file's own checks judge them (repo/config.py): one rule for both.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import attrs

from migcoord.core.model import Config, ServiceConfig
from migcoord.errors import UsageError
from migcoord.repo import config as config_module

WHERE = "Coordinator.for_service"


def for_service(service: str, migrations: Path | str, settings: Mapping[str, object]) -> Config:
    """The Config of `service` alone, its migrations in `migrations`; UsageError for an
    unknown setting or a bad service name, ConfigError naming each bad value. Paths
    (`docs`) must lie beside the migrations folder, as a config file's lie beside it."""
    allowed = {f.name for f in attrs.fields(Config)} - {"root", "services", "path"}
    unknown = sorted(set(settings) - allowed)
    if unknown:
        raise UsageError(f"unknown setting(s) for {WHERE}: "
                         f"{', '.join(unknown)}", hint="known: " + ", ".join(sorted(allowed)))
    why = config_module.service_name_problem(service)
    if why is not None:
        raise UsageError(f"{WHERE}: {service!r}: {why}")
    folder = Path(migrations).resolve()
    spelt: dict[str, object] = {
        key: (str(value) if isinstance(value, Path)
              else list(value) if isinstance(value, frozenset | set) else value)
        for key, value in settings.items() if not (key == "docs" and value is None)}
    fields = config_module.settings(spelt, root=folder.parent, where=WHERE)
    return Config(root=folder.parent,
                  services=(ServiceConfig(name=service, migrations=folder),), **fields)
