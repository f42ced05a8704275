"""What a stream can show: colour, and lines redrawn in place.

Both only on a terminal. Colour never when `NO_COLOR` is set to anything but the empty
string (https://no-color.org) or `TERM=dumb`; lines redrawn in place (the progress of
`up`, `down` and `verify`) not on `TERM=dumb` either, where a carriage return may not
move the cursor (an editor's shell buffer): that is cargo's rule too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO

import attrs

#: ANSI SGR codes of the few colours migcoord uses.
_RED, _YELLOW, _GREEN = "31", "33", "32"


def is_terminal(stream: IO[str]) -> bool:
    """Whether `stream` is a terminal; False for anything that cannot tell (a StringIO,
    a closed or detached stream)."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def _dumb(environ: Mapping[str, str]) -> bool:
    return environ.get("TERM", "") == "dumb"


def can_redraw(stream: IO[str], environ: Mapping[str, str]) -> bool:
    """Whether a line may be drawn on `stream` and then redrawn in place with `\\r`."""
    return is_terminal(stream) and not _dumb(environ)


def wants_colour(stream: IO[str], environ: Mapping[str, str]) -> bool:
    """Whether text written to `stream` may carry ANSI colours."""
    return can_redraw(stream, environ) and not environ.get("NO_COLOR", "")


@attrs.frozen
class Palette:
    """Colours words for one stream, or leaves them as they are when it has none."""

    enabled: bool = False

    @classmethod
    def of(cls, stream: IO[str], environ: Mapping[str, str]) -> Palette:
        return cls(wants_colour(stream, environ))

    def _paint(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.enabled and text else text

    def error(self, text: str) -> str:
        return self._paint(_RED, text)

    def warning(self, text: str) -> str:
        return self._paint(_YELLOW, text)

    def ok(self, text: str) -> str:
        return self._paint(_GREEN, text)

    def severity(self, severity: str) -> str:
        """`error` in red, `warning` in yellow (a finding's severity)."""
        return self.error(severity) if severity == "error" else self.warning(severity)


#: For streams that are no terminal.
PLAIN = Palette()
