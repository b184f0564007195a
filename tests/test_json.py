"""The one JSON reader: what it refuses, and how its accessors name a field that is wrong."""

from __future__ import annotations

import pytest

from mesos_uri._json import MAX_COUNT, Fields, JSONError, parse_object


def error(data: bytes | str, *, secret: bool = False) -> str:
    with pytest.raises(JSONError) as info:
        parse_object(data, secret=secret)
    return str(info.value)


def field_error(document: str, read: str, key: str) -> str:
    fields = parse_object(document)
    with pytest.raises(JSONError) as info:
        getattr(fields, read)(key)
    return str(info.value)


# --- parsing ----------------------------------------------------------------------------------


def test_an_object_with_surrounding_whitespace_parses() -> None:
    assert parse_object(b' \t\r\n{"a": [1, {"b": null}]} \n').values == {"a": [1, {"b": None}]}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"[]", "Unexpected JSON type parsed"),
        (b"null", "Unexpected JSON type parsed"),
        (b'{"a": NaN}', "'NaN' is not JSON"),
        (b'{"a": -Infinity}', "'-Infinity' is not JSON"),
        (b'{"a": 1}x', "Parsed JSON included non-whitespace trailing characters: x"),
        (b'{"a": "\xff"}', "Not UTF-8: invalid byte at offset 7"),
        (b"\xef\xbb\xbf{}", "Expecting value: line 1 column 1 (char 0)"),  # a byte-order mark
        ('{"a": 1' + "0" * 5000 + "}", "A number has more digits than can be read"),
        ("[" * 100_000, "JSON nested too deeply"),
        ('{"a":' * 100_000, "JSON nested too deeply"),
    ],
)
def test_what_is_not_a_json_object_is_refused(data: bytes | str, message: str) -> None:
    assert error(data) == message


def test_trailing_text_is_cut_and_escaped() -> None:
    message = error('{} "\x1b[2J' + "x" * 200)
    assert "\x1b" not in message
    assert len(message) < 200


def test_a_secret_document_has_its_trailing_text_located_not_quoted() -> None:
    assert error('{} {"auth": "s3cr3t"}', secret=True) == (
        "Parsed JSON included non-whitespace trailing characters: at offset 2"
    )


# --- accessors --------------------------------------------------------------------------------


def test_null_is_unset() -> None:
    fields = parse_object('{"s": null, "o": null, "a": null, "m": null}')
    assert fields.optional_string("s") is None
    assert fields.optional_child("o") is None
    assert fields.children("a") == ()
    assert fields.strings("a") == ()
    assert fields.string_map("m") == ()
    assert "s" not in fields
    assert field_error('{"s": null}', "string", "s") == "Missing required fields: s"


def test_a_required_array_must_be_there() -> None:
    with pytest.raises(JSONError, match=r"^Missing required fields: a$"):
        parse_object("{}").children("a", required=True)


def test_errors_name_the_field_by_its_path() -> None:
    fields = parse_object('{"a": [{"b": {"c": 1}}, {"b": {"c": "x"}}]}')
    leaves = [entry.child("b") for entry in fields.children("a")]
    assert leaves[1].string("c") == "x"
    with pytest.raises(JSONError) as info:
        leaves[0].string("c")
    assert str(info.value) == "'a[0].b.c' must be a string, not a number"


@pytest.mark.parametrize(
    ("document", "read", "message"),
    [
        ('{"k": "v"}', "child", "'k' must be an object, not a string"),
        ('{"k": {}}', "children", "'k' must be an array of objects, not an object"),
        ('{"k": [1]}', "children", "'k[0]' must be an object, not a number"),
        ('{"k": [true]}', "strings", "'k[0]' must be a string, not a boolean"),
        ('{"k": ["a"]}', "string_map", "'k' must be an object of strings, not an array"),
        ('{"k": {"a": []}}', "string_map", "'k.a' must be a string, not an array"),
    ],
)
def test_a_value_of_the_wrong_type_is_named_without_being_quoted(
    document: str, read: str, message: str
) -> None:
    assert field_error(document, read, "k") == message


@pytest.mark.parametrize(
    ("document", "read"),
    [
        ('{"k": "\\ud800"}', "string"),
        ('{"k": ["a", "\\udfff"]}', "strings"),
        ('{"k": {"a": "\\ud800x"}}', "string_map"),
        ('{"k": {"\\ud800": "a"}}', "string_map"),
    ],
)
def test_a_lone_surrogate_is_refused(document: str, read: str) -> None:
    # "\ud800" is a valid JSON escape, but no header or program name can carry what it parses to.
    message = field_error(document, read, "k")
    assert message.endswith("is not valid Unicode (it holds a lone surrogate)")
    message.encode("utf-8")  # the error text itself can be printed


@pytest.mark.parametrize("value", [0, 7023, MAX_COUNT])
def test_a_count_is_a_non_negative_int64(value: int) -> None:
    assert parse_object(f'{{"size": {value}}}').count("size") == value


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("-1", "-1"),
        ("1.5", "1.5"),
        ("7023.0", "7023.0"),
        ("1e999", "Infinity"),
        (str(MAX_COUNT + 1), f"{MAX_COUNT + 1} (more than 2^63-1)"),
        ("9" * 40, "a 40-digit number (more than 2^63-1)"),
        ('"7023"', "a string"),
        ("true", "a boolean"),
    ],
)
def test_what_is_not_a_count(value: str, shown: str) -> None:
    assert field_error(f'{{"size": {value}}}', "count", "size") == (
        f"'size' must be a non-negative integer, not {shown}"
    )


def test_map_keys_in_a_path_are_short_and_printable() -> None:
    fields = Fields({"k": {"\x1b[31m" + "a" * 200: 1}})
    with pytest.raises(JSONError) as info:
        fields.string_map("k")
    message = str(info.value)
    assert "\x1b" not in message
    assert len(message) < 150
