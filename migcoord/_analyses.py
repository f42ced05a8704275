"""The SQL analyses one Coordinator has made, and the tables each service owns by them.

A file is parsed once per process (kept by its checksums), and once per change across
runs: the analyses parsed are stored in .migcoord/analysis-cache, which is read at the
first analysis. The facade imports this module only for the commands that read SQL, so
that `up` and `status` never load the parser.
"""

from __future__ import annotations

from migcoord import checks
from migcoord.checks import plain
from migcoord.core.model import Catalog, Config
from migcoord.repo import analysiscache


class SqlAnalyses:
    """The analyses of one Coordinator's migrations (see the module's docstring)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._cache: checks.Cache = {}
        self._stored: str | None = None  # the fingerprint, once the store was read

    def analyze(self, catalog: Catalog, *, parallel: bool = False) -> checks.Analyses:
        """The SQL analysis of `catalog`, parsing only what neither this object nor the
        stored cache has; what was parsed is stored for the next run."""
        if self._stored is None:
            self._stored = analysiscache.fingerprint()
            stored = plain.cache_from_plain(analysiscache.load(self.config, self._stored))
            self._cache.update({k: v for k, v in stored.items() if k not in self._cache})
        analyses = checks.analyze_catalog(catalog, self.config, cache=self._cache,
                                          parallel=parallel)
        if analyses.parsed:
            analysiscache.save(self.config, {key: plain.to_plain(self._cache[key])
                                             for key in analyses.cache_keys},
                               self._stored)
        return analyses

    def owned_tables(self, catalog: Catalog,
                     analyses: checks.Analyses | None = None) -> dict[str, list[str]]:
        """The tables each service owns, as the docs name them, from `analyses` or a new
        SQL analysis."""
        if analyses is None:
            analyses = self.analyze(catalog)
        owners = checks.Owners.of(catalog, self.config, analyses)
        return {service.name: [checks.display(t, self.config)
                               for t in owners.owned_by(service.name)]
                for service in self.config.services}
