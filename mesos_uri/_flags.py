"""Flag values: Mesos durations, read as stout reads them since the agent passes its own flags
through, and docker configs given inline or as a file."""

from __future__ import annotations

import logging
import os
import stat
from typing import Final

import attrs

from mesos_uri.errors import UsageError

__all__ = ["Duration", "config_text", "parse_duration"]

NANOSECONDS_PER_SECOND: Final = 1_000_000_000

# stout's Duration units, in nanoseconds.
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
_NUMBER_CHARS: Final = "0123456789."
# stout stores an int64; the original overflows silently beyond it, we refuse.
_MAX_NANOSECONDS: Final = 2**63 - 1

_FILE_PREFIX: Final = "file://"
_UNITS_TEXT: Final = ", ".join(_UNITS)


@attrs.frozen
class Duration:
    """A non-negative span of time in whole nanoseconds, as stout's ``Duration`` stores it."""

    nanoseconds: int

    @property
    def seconds(self) -> float:
        return self.nanoseconds / NANOSECONDS_PER_SECOND


def parse_duration(text: str) -> Duration:
    """A number (digits and dots) and exactly one unit: ``10secs``, ``500ms``, ``1.5hrs``; there
    are no negative durations (``-1secs`` has no number)."""
    invalid = f"Invalid duration '{text}'"
    unit = text.lstrip(_NUMBER_CHARS)
    number = text[: len(text) - len(unit)]
    if not unit:
        raise UsageError(f"{invalid}: a number and a unit, one of {_UNITS_TEXT} (e.g. 30secs)")
    try:
        value = float(number)
    except ValueError as exc:
        raise UsageError(f"{invalid}: '{number}' is not a number (e.g. 30secs)") from exc
    factor = _UNITS.get(unit)
    if factor is None:
        raise UsageError(f"{invalid}: unknown unit '{unit}'; the units are {_UNITS_TEXT}")
    # stout computes in double and truncates to int64 nanoseconds.
    nanoseconds = value * factor
    if not nanoseconds <= _MAX_NANOSECONDS:
        raise UsageError(f"{invalid}: too large")
    return Duration(int(nanoseconds))


def config_text(value: str) -> str:
    """A docker config flag's text: the value when it is inline JSON (starts with ``{``), else
    the contents of the file it names (with or without ``file://``)."""
    if value.lstrip().startswith("{"):
        return value
    return read_config(value.removeprefix(_FILE_PREFIX))


def read_config(path: str) -> str:
    if os.path.isdir(path):
        raise UsageError(f"'{path}' is a directory, not a docker config file")
    try:
        # newline="": the value is the file's bytes, line endings included.
        with open(path, encoding="utf-8", newline="") as handle:
            # Used all the same, but the operator is told (the CLI prints warnings unless -q).
            if os.fstat(handle.fileno()).st_mode & stat.S_IROTH:
                logging.getLogger("mesos_uri").warning(
                    "'%s' holds credentials and is readable by every user (chmod 600 it)", path
                )
            return handle.read()
    except OSError as exc:
        raise UsageError(f"Failed to read '{path}': {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise UsageError(f"Failed to read '{path}': not UTF-8 text") from exc
