"""What `up`, `down` and `verify` say as they go: the step that starts now.

The engine and verify call an `OnStep` callback just before each migration runs, so a
caller can show where a long run is (the CLI draws it on a terminal, cli/progress.py; a
service's start-up code may log it). The callback must be quick and must not raise:
it runs between two migrations, with the migration lock held.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from migcoord.core.model import format_version


@attrs.frozen
class StepStarted:
    """The `index`-th step (from 1) of `total` starts: a migration's `up` or `down`, or
    one migration's round trip (`verify`).

    `version` and `service` are None for a step that is not one migration (verify's
    whole sequence down and up again, named by `name`).
    """

    index: int
    total: int
    command: str  # "up", "down" or "verify"
    name: str
    version: int | None = None
    service: str | None = None

    @property
    def label(self) -> str:
        """`000007 aggregator add_index`, or the name of a step that is no migration."""
        if self.version is None:
            return self.name
        return f"{format_version(self.version)} {self.service} {self.name}"


#: Called with each step as it starts.
OnStep = Callable[[StepStarted], None]


def ignore(step: StepStarted) -> None:
    """The OnStep of a caller that does not ask to be told."""
