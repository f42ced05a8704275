"""The text `create` puts in a new migration's up and down files (pure).

The comments teach the conventions at the moment they matter: which tables the service
owns, how to declare a dependency on another service's migration, and that migcoord
supplies the transaction.
"""

from __future__ import annotations

from migcoord.core.model import Catalog, ServiceConfig, format_version


def up_file(service: ServiceConfig, catalog: Catalog, version: int, width: int) -> str:
    """The new up file: a header of comments, then an empty body.

    The `depends` example names the newest migration of another service in `catalog`,
    so it can be copied as it is.
    """
    owns = ", ".join(service.owns) if service.owns else "(not declared in migcoord.toml)"
    example = dependency_example(catalog, service.name, width)
    return (
        f"-- {service.name}: migration {format_version(version, width)}\n"
        f"-- Tables owned by {service.name}: {owns}\n"
        "-- Needs another service's tables? Declare it before the first statement:\n"
        f"--   -- migcoord:depends {example}\n"
        "-- No BEGIN/COMMIT: migcoord runs this file and its history row in one transaction.\n"
        "\n"
    )


def down_file(service: ServiceConfig, version: int, width: int) -> str:
    """The new down file: what it must undo, then an empty body."""
    return (
        f"-- {service.name}: undo migration {format_version(version, width)}\n"
        "-- Undo exactly what the up file does, in reverse order.\n"
        "\n"
    )


def dependency_example(catalog: Catalog, service: str, width: int) -> str:
    """`other:VERSION` of the newest migration not of `service`, or a placeholder."""
    for migration in reversed(catalog.migrations):
        if migration.service != service:
            return f"{migration.service}:{migration.version_text}"
    return f"other-service:{format_version(1, width)}"
