"""Flag values as stout's flags read them: durations, ``file://`` values, JSON object flags.

SPEC.md §3. Durations are kept as stout keeps them, whole nanoseconds (``Duration``), so the
truncations of the original (``value × unit`` cut to an integer, curl's ``-y`` cut to whole
seconds) happen at the same places.
"""

from __future__ import annotations

import logging
import os
import stat
from typing import Any, Final

import attrs

from mesos_uri._json import JSONError, parse_object
from mesos_uri.errors import UsageError

__all__ = [
    "Duration",
    "curl_stall_seconds",
    "parse_duration",
    "parse_json_object",
    "parse_json_object_flag",
    "read_flag_value",
    "world_readable",
]

_log = logging.getLogger(__name__)

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
    """Parse a Mesos duration such as ``10secs``, ``1mins``, ``500ms`` or ``1.5hrs`` (SPEC §3).

    The leading run of digits and dots is the number, the rest must be exactly one unit; errors
    carry stout's texts. Negative durations are not supported (``-1secs`` has no number).
    """
    for index, char in enumerate(text):
        if char in _NUMBER_CHARS:
            continue
        number = text[:index]
        try:
            value = float(number)
        except ValueError as exc:
            raise UsageError(f"Failed to convert '{number}' to number") from exc
        unit = text[index:]
        factor = _UNITS.get(unit)
        if factor is None:
            raise UsageError(
                f"Unknown duration unit '{unit}'; supported units are 'ns', 'us', 'ms', 'secs', "
                "'mins', 'hrs', 'days', and 'weeks'"
            )
        # stout computes in double and truncates to int64 nanoseconds.
        nanoseconds = value * factor
        if not nanoseconds <= _MAX_NANOSECONDS:
            raise UsageError(f"Duration '{text}' is too large")
        return Duration(int(nanoseconds))
    raise UsageError(f"Invalid duration '{text}'")


def curl_stall_seconds(duration: Duration) -> str:
    """curl's ``-y`` argument: whole seconds, truncated (``1500ms`` -> ``1``, ``500ms`` -> ``0``).

    curl takes 0 as "no stall check", so a sub-second timeout disables it, as in the original.
    """
    return str(duration.nanoseconds // NANOSECONDS_PER_SECOND)


def _read_text(path: str) -> str:
    try:
        # newline="": the value is the file's bytes, line endings included.
        with open(path, encoding="utf-8", newline="") as handle:
            return handle.read()
    except OSError as exc:
        raise UsageError(f"Failed to read '{path}': {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise UsageError(f"Failed to read '{path}': {exc}") from exc


def read_flag_value(value: str) -> str:
    """A flag value, with a ``file://<path>`` value replaced by that file's contents (SPEC §3)."""
    if value.startswith(_FILE_PREFIX):
        return _read_text(value[len(_FILE_PREFIX) :])
    return value


def parse_json_object(text: str) -> dict[str, Any]:
    """Parse ``text`` as one JSON object with stout's ``JSON::parse<JSON::Object>`` errors.

    Texts: the parser's own syntax message; "Parsed JSON included non-whitespace trailing
    characters: <rest>"; "Unexpected JSON type parsed" for a value that is not an object.
    """
    try:
        return dict(parse_object(text).values)
    except JSONError as exc:
        raise UsageError(str(exc)) from exc


def parse_json_object_flag(value: str) -> dict[str, Any]:
    """A JSON object flag such as ``--docker_config``: inline JSON, ``file://<path>`` or ``/path``.

    A value starting with ``/`` is read as a file (stout's deprecated path form, SPEC §3). The
    contents of a file are always parsed as JSON: unlike stout, a file whose text starts with
    ``/`` is not read as a path a second time.
    """
    if value.startswith(_FILE_PREFIX):
        text = _read_text(value[len(_FILE_PREFIX) :])
    elif value.startswith("/"):
        _log.warning(
            "Specifying an absolute filename to read a command line option out of without "
            "using 'file://' is deprecated; prefix the path with 'file://'"
        )
        text = _read_text(value)
    else:
        text = value
    return parse_json_object(text)


def world_readable(path: str) -> bool:
    """Whether users other than the owner and group may read ``path``.

    Such a docker config is still used, but the caller warns: it holds credentials (issue #4).
    """
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise UsageError(f"Failed to read '{path}': {exc.strerror or exc}") from exc
    return bool(mode & stat.S_IROTH)
