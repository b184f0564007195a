"""Flag values: Mesos durations, and docker configs given inline or as a file."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mesos_uri._flags import Duration, config_text, parse_duration, read_config
from mesos_uri.errors import UsageError

UNITS = "ns, us, ms, secs, mins, hrs, days, weeks"


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
        # Every error says what a duration looks like, the units included.
        ("10", f"Invalid duration '10': a number and a unit, one of {UNITS} (e.g. 30secs)"),
        ("", f"Invalid duration '': a number and a unit, one of {UNITS} (e.g. 30secs)"),
        ("1.5", f"Invalid duration '1.5': a number and a unit, one of {UNITS} (e.g. 30secs)"),
        ("secs", "Invalid duration 'secs': '' is not a number (e.g. 30secs)"),
        ("-1secs", "Invalid duration '-1secs': '' is not a number (e.g. 30secs)"),
        ("1.2.3secs", "Invalid duration '1.2.3secs': '1.2.3' is not a number (e.g. 30secs)"),
        (".secs", "Invalid duration '.secs': '.' is not a number (e.g. 30secs)"),
        ("10sec", f"Invalid duration '10sec': unknown unit 'sec'; the units are {UNITS}"),
        ("10 secs", f"Invalid duration '10 secs': unknown unit ' secs'; the units are {UNITS}"),
        ("10Secs", f"Invalid duration '10Secs': unknown unit 'Secs'; the units are {UNITS}"),
        ("1e3secs", f"Invalid duration '1e3secs': unknown unit 'e3secs'; the units are {UNITS}"),
        ("10secs ", f"Invalid duration '10secs ': unknown unit 'secs '; the units are {UNITS}"),
    ],
)
def test_parse_duration_errors(text: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_duration(text)
    assert str(caught.value) == message


def test_parse_duration_refuses_what_int64_cannot_hold() -> None:
    with pytest.raises(UsageError, match=r"^Invalid duration '9+weeks': too large$"):
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


def test_durations_are_whole_non_negative_nanoseconds() -> None:
    assert type(parse_duration("1.9ns").nanoseconds) is int
    with pytest.raises(UsageError):
        parse_duration("-1secs")


# --- docker configs, inline or in a file -----------------------------------------------------

CONFIG = '{"auths": {"localhost:5000": {"auth": "dXNlcjpwYXNz"}}}'


def test_inline_json_is_the_value_itself() -> None:
    assert config_text(CONFIG) == CONFIG
    assert config_text("  " + CONFIG) == "  " + CONFIG


@pytest.mark.parametrize("form", ["{path}", "file://{path}", "./{name}", "{name}"])
def test_anything_else_is_a_path_whatever_it_starts_with(
    form: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "cfg.json"
    path.write_bytes(CONFIG.encode() + b"\r\n")
    assert config_text(form.format(path=path, name=path.name)) == CONFIG + "\r\n"


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(UsageError) as caught:
        config_text(str(missing))
    assert str(caught.value) == f"Failed to read '{missing}': No such file or directory"


def test_a_directory_is_said_to_be_one(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as caught:
        read_config(str(tmp_path))
    assert str(caught.value) == f"'{tmp_path}' is a directory, not a docker config file"


def test_an_undecodable_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "binary"
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(UsageError) as caught:
        config_text(f"file://{path}")
    assert str(caught.value) == f"Failed to read '{path}': not UTF-8 text"


# --- permissions ----------------------------------------------------------------------------------


def test_a_world_readable_file_is_read_but_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "config.json"
    path.write_text(CONFIG)
    path.chmod(0o640)
    assert read_config(str(path)) == CONFIG
    assert caplog.records == []
    path.chmod(0o644)
    assert read_config(str(path)) == CONFIG
    assert [record.getMessage() for record in caplog.records] == [
        f"'{path}' holds credentials and is readable by every user (chmod 600 it)"
    ]
    assert caplog.records[0].name == "mesos_uri"
    assert caplog.records[0].levelname == "WARNING"


def test_inline_json_is_never_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    assert config_text(CONFIG) == CONFIG
    assert caplog.records == []
