"""Flag values: Mesos durations, and docker configs given inline or as a file.

Durations are read as stout reads them (``10secs``, ``1mins``, ``500ms``; the number times the
unit truncated to whole nanoseconds), since the agent passes its own flags through.
"""

from __future__ import annotations

import os
import stat
from typing import Final

import attrs

from mesos_uri.errors import UsageError

__all__ = ["Duration", "config_text", "parse_duration", "read_config", "world_readable"]

NANOSECONDS_PER_SECOND: Final = 1_000_000_000

# stout's Duration units, in nanoseconds (stout/duration.hpp).
_UNITS: Final[dict[str, int]] = {
    "ns": 1,
    "us": 1_000,
    "ms": 1_000_000,
    "secs": NANOSECONDS_PER_SECOND,
    "mins": 60 * NANOSECONDS_PER_SECOND,
    "hrs": 3_600 * NANOSECONDS_PER_SECOND,
    "days": 86_400 * NANOSECONDS_PER_SECOND,
    "weeks": 7 * 86_400 * NANOSECONDS_PER_SECOND,
}
_NUMBER_CHARS: Final = frozenset("0123456789.")
# stout stores an int64; the original overflows silently beyond it, we refuse.
_MAX_NANOSECONDS: Final = 2**63 - 1

_FILE_PREFIX: Final = "file://"
_UNITS_TEXT: Final = ", ".join(_UNITS)


@attrs.frozen(order=True)
class Duration:
    """A non-negative span of time in whole nanoseconds, as stout's ``Duration`` stores it."""

    nanoseconds: int

    def __attrs_post_init__(self) -> None:
        if isinstance(self.nanoseconds, bool) or not isinstance(self.nanoseconds, int):
            raise UsageError(f"Duration needs whole nanoseconds, not {self.nanoseconds!r}")
        if not 0 <= self.nanoseconds <= _MAX_NANOSECONDS:
            raise UsageError(f"Duration of {self.nanoseconds}ns is out of range")

    @property
    def seconds(self) -> float:
        return self.nanoseconds / NANOSECONDS_PER_SECOND


def parse_duration(text: str) -> Duration:
    """Parse a Mesos duration such as ``10secs``, ``1mins``, ``500ms`` or ``1.5hrs``.

    The leading run of digits and dots is the number, the rest must be exactly one unit.
    Negative durations are not supported (``-1secs`` has no number).
    """
    for index, char in enumerate(text):
        if char in _NUMBER_CHARS:
            continue
        number = text[:index]
        try:
            value = float(number)
        except ValueError as exc:
            raise UsageError(
                f"Invalid duration '{text}': '{number}' is not a number (e.g. 30secs)"
            ) from exc
        unit = text[index:]
        factor = _UNITS.get(unit)
        if factor is None:
            raise UsageError(
                f"Invalid duration '{text}': unknown unit '{unit}'; the units are {_UNITS_TEXT}"
            )
        # stout computes in double and truncates to int64 nanoseconds.
        nanoseconds = value * factor
        if not nanoseconds <= _MAX_NANOSECONDS:
            raise UsageError(f"Invalid duration '{text}': too large")
        return Duration(int(nanoseconds))
    raise UsageError(
        f"Invalid duration '{text}': a number and a unit, one of {_UNITS_TEXT} (e.g. 30secs)"
    )


def config_text(value: str) -> str:
    """A docker config flag's text: the value itself when it is inline JSON (starts with ``{``),
    else the contents of the file it names (a path, with or without ``file://``)."""
    if value.lstrip().startswith("{"):
        return value
    return read_config(value.removeprefix(_FILE_PREFIX))


def read_config(path: str) -> str:
    """The text of a docker config file, with a clear error for what cannot be one."""
    if os.path.isdir(path):
        raise UsageError(f"'{path}' is a directory, not a docker config file")
    try:
        # newline="": the value is the file's bytes, line endings included.
        with open(path, encoding="utf-8", newline="") as handle:
            return handle.read()
    except OSError as exc:
        raise UsageError(f"Failed to read '{path}': {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise UsageError(f"Failed to read '{path}': not UTF-8 text") from exc


def world_readable(path: str) -> bool:
    """Whether users other than the owner and group may read ``path``: such a docker config is
    still used, but the caller warns, since it holds credentials."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise UsageError(f"Failed to read '{path}': {exc.strerror or exc}") from exc
    return bool(mode & stat.S_IROTH)
