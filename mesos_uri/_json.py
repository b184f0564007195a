"""Reading JSON objects from untrusted text: one parser, and typed accessors for their fields.

Every JSON document the package reads goes through :func:`parse_object` and :class:`Fields`, so
one set of rules holds: UTF-8 without a BOM (RFC 8259); no ``NaN``/``Infinity``, trailing text or
non-object top level; deep nesting is our error, not ``RecursionError``; ``null`` is unset; no lone
surrogate (JSON's ``"\\ud800"``), which no header or file name can carry; counts in 0..2^63-1.
A :class:`JSONError` names a field by its path (``layers[1].digest``) and never quotes a string of
the document (a docker config holds secrets, a registry's text terminal escapes); callers add the
prefix their users know ("Failed to parse the V2 Schema 2 image manifest: ...").
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Final, NoReturn, TypeVar

import attrs

__all__ = ["Fields", "JSONError", "parse_object"]

# Sizes are int64 in the OCI descriptor; a larger number describes nothing that exists.
MAX_COUNT: Final = 2**63 - 1

# JSON's whitespace (RFC 8259 "ws"), which may stand before and after the value.
_WHITESPACE: Final = " \t\n\r"
# The longest piece of a document or a key shown in an error text.
_MAX_SHOWN: Final = 80


_T = TypeVar("_T")
_Reader = Callable[[object, str], _T]


class JSONError(Exception):
    """A text is not a JSON object, or a field of it is not what it must be."""


def _reject_constant(name: str) -> NoReturn:
    raise JSONError(f"'{name}' is not JSON")


_DECODER: Final = json.JSONDecoder(parse_constant=_reject_constant)


def parse_object(data: bytes | str, *, secret: bool = False) -> Fields:
    """Parse ``data`` as one JSON object, failing with stout's texts where it had one; a
    ``secret`` document (a docker config, a token answer) has trailing text located, not quoted."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        raise JSONError(f"Not UTF-8: invalid byte at offset {exc.start}") from exc
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _DECODER.raw_decode(text, start)
    except json.JSONDecodeError as exc:  # its text names a position, never the document
        raise JSONError(str(exc)) from exc
    except ValueError as exc:  # Python refuses to read integers of more than 4300 digits
        raise JSONError("A number has more digits than can be read") from exc
    except RecursionError as exc:
        raise JSONError("JSON nested too deeply") from exc
    rest = text[end:].rstrip(_WHITESPACE)
    if rest:
        where = f"at offset {end}" if secret else _shown(rest)
        raise JSONError(f"Parsed JSON included non-whitespace trailing characters: {where}")
    if not isinstance(value, dict):
        raise JSONError("Unexpected JSON type parsed")
    return Fields(value)


@attrs.frozen
class Fields:
    """A parsed JSON object, read one field at a time by the type the field must have;
    ``path`` is where it sits in its document (``""``, ``manifests[2].platform``)."""

    values: Mapping[str, object]
    path: str = ""

    def __contains__(self, key: str) -> bool:
        return self.values.get(key) is not None

    def get(self, key: str) -> object:
        """The raw value, for a caller that tolerates any type (sniffing, optional extras)."""
        return self.values.get(key)

    def string(self, key: str) -> str:
        return _string(self._required(key), self._at(key))

    def optional_string(self, key: str) -> str | None:
        return self.string(key) if key in self else None

    def count(self, key: str) -> int:
        """A required integer from 0 to :data:`MAX_COUNT`: a size or a version."""
        value = self._required(key)
        if type(value) is not int or not 0 <= value <= MAX_COUNT:
            shown = _kind(value) if isinstance(value, bool | str | list | dict) else _number(value)
            raise JSONError(f"'{self._at(key)}' must be a non-negative integer, not {shown}")
        return value

    def child(self, key: str) -> Fields:
        return _object(self._required(key), self._at(key))

    def optional_child(self, key: str) -> Fields | None:
        return self.child(key) if key in self else None

    def children(self, key: str, *, required: bool = False) -> tuple[Fields, ...]:
        """An array of objects; unset is empty unless ``required``."""
        return self._array(key, "objects", _object, required=required)

    def strings(self, key: str) -> tuple[str, ...]:
        """An optional array of strings; unset is empty."""
        return self._array(key, "strings", _string, required=False)

    def string_map(self, key: str) -> tuple[tuple[str, str], ...]:
        """An optional object of strings (labels, annotations), in document order; unset is
        empty. Keys are checked like values: they become header or program names too."""
        value = self.values.get(key)
        if value is None:
            return ()
        if not isinstance(value, dict):
            raise JSONError(f"'{self._at(key)}' must be an object of strings, not {_kind(value)}")
        return Fields(value, self._at(key))._entries(_string)

    def objects(self) -> tuple[tuple[str, Fields], ...]:
        """This object as a map of objects (the registries of a docker config)."""
        return self._entries(_object)

    def _entries(self, read: _Reader[_T]) -> tuple[tuple[str, _T], ...]:
        return tuple(
            (_string(key, self._at(key)), read(value, self._at(key)))
            for key, value in self.values.items()
        )

    def _at(self, key: str) -> str:
        shown = _shown(key)
        return f"{self.path}.{shown}" if self.path else shown

    def _required(self, key: str) -> object:
        value = self.values.get(key)
        if value is None:
            raise JSONError(f"Missing required fields: {self._at(key)}")
        return value

    def _array(self, key: str, of: str, read: _Reader[_T], *, required: bool) -> tuple[_T, ...]:
        value = self._required(key) if required else self.values.get(key)
        if value is None:
            return ()
        if not isinstance(value, list):
            raise JSONError(f"'{self._at(key)}' must be an array of {of}, not {_kind(value)}")
        return tuple(read(item, f"{self._at(key)}[{i}]") for i, item in enumerate(value))


def _string(value: object, at: str) -> str:
    if not isinstance(value, str):
        raise JSONError(f"'{at}' must be a string, not {_kind(value)}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise JSONError(f"'{at}' is not valid Unicode (it holds a lone surrogate)") from exc
    return value


def _object(value: object, at: str) -> Fields:
    if not isinstance(value, dict):
        raise JSONError(f"'{at}' must be an object, not {_kind(value)}")
    return Fields(value, at)


def _kind(value: object) -> str:
    """The JSON type of ``value``, for an error text that must not quote it (it may be secret)."""
    if value is None:
        return "null"
    kinds = ((bool, "a boolean"), (str, "a string"), (list, "an array"), (dict, "an object"))
    return next((name for kind, name in kinds if isinstance(value, kind)), "a number")


def _number(value: object) -> str:
    # Numbers are shown where a count was expected: they hold no secret, and say what is wrong.
    text = json.dumps(value)
    if len(text) > 24:
        text = f"a {len(text)}-digit number"
    return f"{text} (more than 2^63-1)" if type(value) is int and value > MAX_COUNT else text


def _shown(text: str) -> str:
    # Map keys and trailing text come from the document: kept short, and escaped unless
    # printable (a lone surrogate in an error text would break printing it).
    if not text.isprintable():
        text = ascii(text)[1:-1]
    return text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "..."
