"""JSON text to typed records, by the rules the original's protobuf conversion follows.

The original turns every registry JSON document into a protobuf message with stout's
``protobuf::parse`` and validates afterwards; its error texts ("Missing required fields: ...",
"Not expecting a JSON string for field 'config'") are what users grep logs for. This module keeps
those rules (SPEC.md §6.5) over small field specs, so each document type declares its fields once
instead of checking JSON types by hand:

* the top-level value must be an object; keys are matched to field names exactly, unknown keys are
  ignored, and keys are visited in sorted order so that the *first* error is the original's;
* ``null`` leaves a field unset; a scalar or object given for a repeated field is a one-element
  list; an array for a non-repeated field, or any other type mismatch, is an error;
* a string given for a number field is parsed as a JSON number;
* after conversion, unset required fields are listed in declaration order, nested ones as
  ``config.digest`` or ``fsLayers[0].blobSum``.

Departures: numbers are Python ints (the original cast to uint32 and wrapped silently), so a
negative, fractional or out-of-range number is an error instead of a different number; and the
JSON errors never quote the document (a docker config holds secrets; picojson quoted the line).

Errors are raised as :class:`ProtoError` carrying the bare text; the public parsers add their
prefixes and re-raise it as the package's own error type.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Mapping
from typing import Final, NoReturn

import attrs

__all__ = [
    "MAX_NUMBER",
    "Field",
    "Kind",
    "Message",
    "ProtoError",
    "Record",
    "convert",
    "message",
    "optional",
    "parse_object",
    "repeated",
    "required",
    "shorten",
]

# Sizes are int64 in the OCI descriptor spec; larger numbers describe nothing that exists.
MAX_NUMBER: Final = 2**63 - 1

# Longest piece of a document quoted in an error text; manifests reach 4 MiB.
_MAX_QUOTED: Final = 80


class ProtoError(Exception):
    """A document failed to parse or convert; ``str()`` is the bare text, without a prefix."""


class Kind(enum.Enum):
    """What a field holds: the few protobuf types the registry documents use."""

    STRING = "string"
    NUMBER = "number"  # non-negative integer (uint32/int64 in the protos)
    MESSAGE = "message"
    MAP = "map"  # string -> string (labels, annotations, credHelpers)


@attrs.frozen
class Field:
    """One declared field of a message: its JSON key, kind, and protobuf label."""

    name: str
    kind: Kind
    is_required: bool = False
    is_repeated: bool = False
    spec: Message | None = None


@attrs.frozen
class Message:
    """The declared fields of one message type, in declaration order."""

    fields: tuple[Field, ...]

    def get(self, name: str) -> Field | None:
        for field in self.fields:
            if field.name == name:
                return field
        return None


def message(*fields: Field | str) -> Message:
    """A message spec; a bare name stands for an optional string field."""
    return Message(tuple(Field(f, Kind.STRING) if isinstance(f, str) else f for f in fields))


def optional(name: str, kind: Kind = Kind.STRING, spec: Message | None = None) -> Field:
    """An optional field: left unset when absent or ``null``."""
    return Field(name, kind, spec=spec)


def required(name: str, kind: Kind = Kind.STRING, spec: Message | None = None) -> Field:
    """A required field (proto2 ``required``): its absence is "Missing required fields"."""
    return Field(name, kind, is_required=True, spec=spec)


def repeated(name: str, kind: Kind = Kind.STRING, spec: Message | None = None) -> Field:
    """A repeated field: an array, or one value standing for a one-element array."""
    return Field(name, kind, is_repeated=True, spec=spec)


class Record:
    """A JSON object converted against a :class:`Message`: only declared fields, typed.

    The accessors trust the conversion: a required field is present, and every value has the
    kind its field declares. Parsers read a record into their attrs classes and drop it.
    """

    __slots__ = ("_values",)

    def __init__(self, values: dict[str, object]) -> None:
        self._values = values

    def __contains__(self, name: str) -> bool:
        return name in self._values

    def text(self, name: str) -> str:
        value = self._values[name]
        assert isinstance(value, str)
        return value

    def optional_text(self, name: str) -> str | None:
        return self.text(name) if name in self._values else None

    def texts(self, name: str) -> tuple[str, ...]:
        items = self._list(name)
        assert all(isinstance(v, str) for v in items)
        return tuple(v for v in items if isinstance(v, str))

    def number(self, name: str) -> int:
        value = self._values[name]
        assert isinstance(value, int)
        return value

    def optional_number(self, name: str) -> int | None:
        return self.number(name) if name in self._values else None

    def child(self, name: str) -> Record:
        value = self._values[name]
        assert isinstance(value, Record)
        return value

    def optional_child(self, name: str) -> Record | None:
        return self.child(name) if name in self._values else None

    def children(self, name: str) -> tuple[Record, ...]:
        items = self._list(name)
        assert all(isinstance(v, Record) for v in items)
        return tuple(v for v in items if isinstance(v, Record))

    def pairs(self, name: str) -> tuple[tuple[str, str], ...]:
        value = self._values.get(name, ())
        assert isinstance(value, tuple)
        return value

    def _list(self, name: str) -> list[object]:
        value = self._values.get(name, [])
        assert isinstance(value, list)
        return value


def shorten(text: str) -> str:
    """``text`` cut to a length fit for an error message (documents are attacker-controlled)."""
    return text if len(text) <= _MAX_QUOTED else text[:_MAX_QUOTED] + "..."


# Python's own limit on int() of a decimal string, given a clear text here.
_MAX_INTEGER_DIGITS: Final = 4300


def _reject_constant(name: str) -> NoReturn:
    # Python's json accepts NaN and Infinity; JSON (RFC 8259) does not.
    raise ValueError(f"'{name}' is not valid JSON")


def _parse_int(text: str) -> int:
    if len(text) > _MAX_INTEGER_DIGITS:
        raise ValueError(f"Integer longer than {_MAX_INTEGER_DIGITS} digits")
    return int(text)


def _loads(text: str) -> object:
    return json.loads(text, parse_constant=_reject_constant, parse_int=_parse_int)


def parse_object(data: bytes | str) -> dict[str, object]:
    """Parse a JSON document that must be an object, as stout's ``JSON::parse<JSON::Object>``.

    Bytes must be UTF-8 (RFC 8259 §8.1). The error text says where the document is wrong but
    never quotes it.
    """
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        value = _loads(text)
    except UnicodeDecodeError as exc:
        raise ProtoError(f"Not UTF-8: invalid byte at offset {exc.start}") from exc
    except json.JSONDecodeError as exc:
        raise ProtoError(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    except RecursionError as exc:
        raise ProtoError("Nested too deeply") from exc
    except ValueError as exc:  # NaN, Infinity, and overlong integers
        raise ProtoError(str(exc)) from exc
    if not isinstance(value, dict):
        raise ProtoError("Unexpected JSON type parsed")
    return value


def convert(document: Mapping[str, object], spec: Message) -> Record:
    """Convert a parsed JSON object to a record of ``spec`` (SPEC.md §6.5)."""
    record = _convert_message(document, spec)
    missing = _missing_fields(record, spec, "")
    if missing:
        raise ProtoError("Missing required fields: " + ", ".join(missing))
    return record


def _json_type(value: object) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    return "number"


def _mismatch(value: object, field: Field) -> ProtoError:
    return ProtoError(f"Not expecting a JSON {_json_type(value)} for field '{field.name}'")


def _convert_message(document: Mapping[str, object], spec: Message) -> Record:
    values: dict[str, object] = {}
    # std::map order: the first error in sorted key order is the one reported.
    for key in sorted(document):
        field = spec.get(key)
        value = document[key]
        if field is None or value is None:
            continue
        if field.is_repeated:
            items = value if isinstance(value, list) else [value]
            converted = []
            for item in items:
                if isinstance(item, list):
                    raise _mismatch(item, field)
                if item is not None:
                    converted.append(_convert_value(item, field))
            values[key] = converted
        elif isinstance(value, list):
            raise _mismatch(value, field)
        else:
            values[key] = _convert_value(value, field)
    return Record(values)


def _convert_value(value: object, field: Field) -> object:
    if field.kind is Kind.STRING:
        if not isinstance(value, str):
            raise _mismatch(value, field)
        return value
    if field.kind is Kind.NUMBER:
        return _convert_number(value, field)
    if not isinstance(value, dict):
        raise _mismatch(value, field)
    if field.kind is Kind.MAP:
        return _convert_map(value)
    assert field.spec is not None
    return _convert_message(value, field.spec)


def _convert_map(value: Mapping[str, object]) -> tuple[tuple[str, str], ...]:
    # Each pair is an entry message {key, value}; checked in sorted order for the original's
    # first error, kept in document order. A null value is an unset (empty) string.
    entry_value = Field("value", Kind.STRING)
    for key in sorted(value):
        item = value[key]
        if item is not None and not isinstance(item, str):
            raise _mismatch(item, entry_value)
    return tuple((key, item if isinstance(item, str) else "") for key, item in value.items())


def _convert_number(value: object, field: Field) -> int:
    if isinstance(value, str):
        try:
            parsed = _loads(value)
        except (ValueError, RecursionError) as exc:
            raise ProtoError(
                f"Failed to parse '{shorten(value)}' as a JSON number for field '{field.name}': "
                + (exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc))
            ) from exc
        if isinstance(parsed, bool) or not isinstance(parsed, int | float):
            raise ProtoError(
                f"Failed to parse '{shorten(value)}' as a JSON number for field '{field.name}': "
                f"found a JSON {_json_type(parsed)}"
            )
        value = parsed
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _mismatch(value, field)
    if isinstance(value, float):
        # The original truncated (1.5 -> 1); a size is a count of bytes, so a fraction is wrong.
        if not (math.isfinite(value) and value.is_integer()):
            raise ProtoError(f"Not expecting a non-integer JSON number for field '{field.name}'")
        value = int(value)
    # The original wrapped into uint32 (-1 -> 4294967295, 4 GiB -> 0): reject instead.
    if value < 0:
        raise ProtoError(f"Not expecting a negative JSON number for field '{field.name}'")
    if value > MAX_NUMBER:
        raise ProtoError(f"JSON number out of range for field '{field.name}'")
    return value


def _missing_fields(record: Record, spec: Message, prefix: str) -> list[str]:
    # protobuf's InitializationErrorString: this message's required fields first, then nested.
    missing = [prefix + f.name for f in spec.fields if f.is_required and f.name not in record]
    for field in spec.fields:
        if field.kind is not Kind.MESSAGE or field.name not in record:
            continue
        assert field.spec is not None
        if field.is_repeated:
            for index, child in enumerate(record.children(field.name)):
                missing += _missing_fields(child, field.spec, f"{prefix}{field.name}[{index}].")
        else:
            missing += _missing_fields(
                record.child(field.name), field.spec, f"{prefix}{field.name}."
            )
    return missing
