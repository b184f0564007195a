"""Flag values: Mesos durations, curl's -y argument, file:// values and JSON object flags."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mesos_uri.errors import UsageError
from mesos_uri.flags import (
    Duration,
    curl_stall_seconds,
    parse_duration,
    parse_json_object,
    parse_json_object_flag,
    read_flag_value,
    world_readable,
)

UNITS_TEXT = "supported units are 'ns', 'us', 'ms', 'secs', 'mins', 'hrs', 'days', and 'weeks'"


@pytest.mark.parametrize(
    ("text", "nanoseconds"),
    [
        ("10secs", 10_000_000_000),
        ("1mins", 60_000_000_000),
        ("500ms", 500_000_000),
        ("1.5hrs", 5_400_000_000_000),
        ("2days", 172_800_000_000_000),
        ("1weeks", 604_800_000_000_000),
        ("7us", 7_000),
        ("3ns", 3),
        ("0secs", 0),
        (".5secs", 500_000_000),
        ("1.secs", 1_000_000_000),
        ("007mins", 420_000_000_000),
        # value × unit is truncated to whole nanoseconds.
        ("1.9ns", 1),
    ],
)
def test_parse_duration(text: str, nanoseconds: int) -> None:
    assert parse_duration(text) == Duration(nanoseconds)


def test_duration_seconds() -> None:
    assert parse_duration("1500ms").seconds == 1.5


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("10", "Invalid duration '10'"),
        ("", "Invalid duration ''"),
        ("1.5", "Invalid duration '1.5'"),
        ("secs", "Failed to convert '' to number"),
        ("-1secs", "Failed to convert '' to number"),
        ("1.2.3secs", "Failed to convert '1.2.3' to number"),
        (".secs", "Failed to convert '.' to number"),
        ("10sec", f"Unknown duration unit 'sec'; {UNITS_TEXT}"),
        ("10 secs", f"Unknown duration unit ' secs'; {UNITS_TEXT}"),
        ("10Secs", f"Unknown duration unit 'Secs'; {UNITS_TEXT}"),
        ("1e3secs", f"Unknown duration unit 'e3secs'; {UNITS_TEXT}"),
        ("10secs ", f"Unknown duration unit 'secs '; {UNITS_TEXT}"),
    ],
)
def test_parse_duration_errors(text: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_duration(text)
    assert str(caught.value) == message


def test_parse_duration_refuses_what_int64_cannot_hold() -> None:
    with pytest.raises(UsageError, match=r"^Duration '9+weeks' is too large$"):
        parse_duration("9" * 30 + "weeks")


@given(st.text(st.sampled_from("0123456789.-e nsumcihrdawk"), max_size=12))
def test_parse_duration_returns_or_raises_usage_error(text: str) -> None:
    try:
        duration = parse_duration(text)
    except UsageError:
        return
    assert duration.nanoseconds >= 0


@given(st.integers(0, 10**6), st.sampled_from(["ns", "us", "ms", "secs", "mins", "hrs"]))
def test_whole_numbers_scale_exactly(value: int, unit: str) -> None:
    factor = {"ns": 1, "us": 10**3, "ms": 10**6, "secs": 10**9, "mins": 6 * 10**10}
    factor["hrs"] = 36 * 10**11
    assert parse_duration(f"{value}{unit}").nanoseconds == value * factor[unit]


@pytest.mark.parametrize(
    ("text", "argument"),
    [("1500ms", "1"), ("500ms", "0"), ("10secs", "10"), ("1mins", "60"), ("59999ms", "59")],
)
def test_curl_stall_seconds_truncates(text: str, argument: str) -> None:
    assert curl_stall_seconds(parse_duration(text)) == argument


def test_duration_refuses_negative_and_non_integers() -> None:
    with pytest.raises(UsageError, match="out of range"):
        Duration(-1)
    with pytest.raises(UsageError, match="whole nanoseconds"):
        Duration(1.5)  # type: ignore[arg-type]


# --- file:// values -------------------------------------------------------------------------------


def test_read_flag_value_passes_plain_values() -> None:
    assert read_flag_value("10secs") == "10secs"
    assert read_flag_value("/etc/hosts") == "/etc/hosts"


def test_read_flag_value_reads_file_urls(tmp_path: Path) -> None:
    path = tmp_path / "value"
    path.write_bytes(b"1mins\r\n")
    assert read_flag_value(f"file://{path}") == "1mins\r\n"


def test_read_flag_value_names_the_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(UsageError) as caught:
        read_flag_value(f"file://{missing}")
    assert str(caught.value) == f"Failed to read '{missing}': No such file or directory"


def test_read_flag_value_refuses_undecodable_files(tmp_path: Path) -> None:
    path = tmp_path / "binary"
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(UsageError, match=rf"^Failed to read '{path}': .*utf-8"):
        read_flag_value(f"file://{path}")


# --- JSON object flags ----------------------------------------------------------------------------

CONFIG = '{"auths": {"localhost:5000": {"auth": "dXNlcjpwYXNz"}}}'
CONFIG_VALUE = {"auths": {"localhost:5000": {"auth": "dXNlcjpwYXNz"}}}


def test_json_flag_inline() -> None:
    assert parse_json_object_flag(CONFIG) == CONFIG_VALUE


def test_json_flag_file_url(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(CONFIG)
    assert parse_json_object_flag(f"file://{path}") == CONFIG_VALUE


def test_json_flag_absolute_path_is_read_with_a_deprecation_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "config.json"
    path.write_text(CONFIG)
    with caplog.at_level(logging.WARNING, logger="mesos_uri.flags"):
        assert parse_json_object_flag(str(path)) == CONFIG_VALUE
    assert "deprecated" in caplog.text


def test_json_flag_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(UsageError) as caught:
        parse_json_object_flag(str(missing))
    assert str(caught.value) == f"Failed to read '{missing}': No such file or directory"


def test_json_flag_file_contents_are_json_not_a_path(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text("/etc/hosts")
    with pytest.raises(UsageError, match=r"^Expecting value"):
        parse_json_object_flag(f"file://{path}")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[]", "Unexpected JSON type parsed"),
        ('"text"', "Unexpected JSON type parsed"),
        ("null", "Unexpected JSON type parsed"),
        ("{} x ", "Parsed JSON included non-whitespace trailing characters:  x"),
        ('{"a": 1}{"b": 2}\n', 'Parsed JSON included non-whitespace trailing characters: {"b": 2}'),
        ('{"a": NaN}', "'NaN' is not JSON"),
        ("[" * 100_000, "JSON nested too deeply"),
    ],
)
def test_json_object_errors(text: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_json_object(text)
    assert str(caught.value) == message


def test_json_object_syntax_errors_are_usage_errors() -> None:
    with pytest.raises(UsageError, match=r"^Expecting property name"):
        parse_json_object("{")


def test_json_object_allows_surrounding_whitespace() -> None:
    assert parse_json_object(' \t\r\n{"a": [1, 2]} \n') == {"a": [1, 2]}


@given(st.text(max_size=30))
def test_json_object_returns_or_raises_usage_error(text: str) -> None:
    try:
        value = parse_json_object(text)
    except UsageError:
        return
    assert isinstance(value, dict)


# --- permissions ----------------------------------------------------------------------------------


def test_world_readable(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(CONFIG)
    path.chmod(0o640)
    assert not world_readable(str(path))
    path.chmod(0o644)
    assert world_readable(str(path))


def test_world_readable_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"^Failed to read '.*': No such file or directory$"):
        world_readable(str(tmp_path / "missing"))
