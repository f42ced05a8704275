"""A git ref's own config and migrations, read from git without a checkout: what
`check --against REF` compares with to leave out the warnings REF already has
(core/merged)."""

from __future__ import annotations

from migcoord.core.model import Catalog, Config, ServiceFolder, SqlFile
from migcoord.core.naming import parse_filename
from migcoord.errors import ConfigError
from migcoord.repo import config as config_module
from migcoord.repo import discovery, git


def config_at(config: Config, ref: str) -> Config:
    """REF's migcoord.toml, read as if it were this one (same place, so its paths are
    these paths). `config` itself when REF has none (the branch that adopts migcoord)
    or REF's cannot be read: then the migrations REF has are judged by this config."""
    if config.path is None:
        return config
    top = git.toplevel(config, "`check --against`")
    relative = git.relative_to_top(top, config.path)
    if relative is None:
        return config
    content = git.tree_at(top, git.commit_of(top, ref), [relative]).get(relative)
    if content is None:
        return config
    try:
        return config_module.parse(content, config.path)
    except ConfigError:
        return config


def catalog_at(config: Config, ref: str) -> Catalog:
    """The migrations of REF's tree in the folders `config` names (paths as they would
    be in this work tree)."""
    top = git.toplevel(config, "`check --against`")
    commit = git.commit_of(top, ref)
    folders = {service.name: git.relative_to_top(top, service.migrations)
               for service in config.services}
    tree = git.tree_at(top, commit, sorted({f for f in folders.values() if f is not None}))
    result = []
    for service in config.services:
        folder = folders[service.name]
        files: list[SqlFile] = []
        for path, content in tree.items():
            parent, _, name = path.rpartition("/")
            if parent == folder and parse_filename(name) is not None:
                files.append(discovery.sql_file_from_bytes(service.migrations / name, service.name,
                                                           content))
        result.append(ServiceFolder(config=service, present=bool(files),
                                    migrations=tuple(discovery.pair_files(service.name, files))))
    return Catalog.of(result)
