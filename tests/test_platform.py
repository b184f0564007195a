"""Platform parsing, normalisation and matching, held against containerd's ``platforms`` package."""

from __future__ import annotations

import platform as stdlib_platform
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mesos_uri._docker.platform import (
    Platform,
    best_match,
    host_platform,
    matches,
    normalize,
    parse_platform,
    rank,
)
from mesos_uri.errors import UsageError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("linux/amd64", Platform("linux", "amd64")),
        ("linux/amd64/v1", Platform("linux", "amd64")),
        ("linux/amd64/v3", Platform("linux", "amd64", "v3")),
        ("linux/x86_64", Platform("linux", "amd64")),
        ("linux/x86-64", Platform("linux", "amd64")),
        ("Linux/AMD64", Platform("linux", "amd64")),
        ("linux/arm64", Platform("linux", "arm64", "v8")),
        ("linux/arm64/v8", Platform("linux", "arm64", "v8")),
        ("linux/aarch64", Platform("linux", "arm64", "v8")),
        ("linux/arm64/v8.0", Platform("linux", "arm64", "v8")),
        ("linux/arm64/v8.2", Platform("linux", "arm64", "v8.2")),
        ("linux/arm64/9", Platform("linux", "arm64", "v9")),
        ("linux/arm", Platform("linux", "arm", "v7")),
        ("linux/arm/7", Platform("linux", "arm", "v7")),
        ("linux/arm/v6", Platform("linux", "arm", "v6")),
        ("linux/arm/5", Platform("linux", "arm", "v5")),
        ("linux/armhf", Platform("linux", "arm", "v7")),
        ("linux/armel", Platform("linux", "arm", "v6")),
        ("linux/i386", Platform("linux", "386")),
        ("linux/386", Platform("linux", "386")),
        ("linux/ppc64le", Platform("linux", "ppc64le")),
        ("windows/amd64", Platform("windows", "amd64")),
        ("macos/arm64", Platform("darwin", "arm64", "v8")),
    ],
)
def test_parse_platform_normalises_like_containerd(text: str, expected: Platform) -> None:
    assert parse_platform(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "linux",
        "amd64",
        "linux/",
        "/amd64",
        "linux//v7",
        "linux/arm/v7/extra",
        "linux/*",
        "linux/amd 64",
        "windows(10.0.17763)/amd64",
        "linux/amd64\n",
        "linux/amd64/v8\r\nX-Injected: 1",
    ],
)
def test_parse_platform_rejects_malformed_text(text: str) -> None:
    with pytest.raises(UsageError, match=r"^Invalid platform") as caught:
        parse_platform(text)
    assert text in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_parse_platform_says_what_form_it_wants() -> None:
    with pytest.raises(UsageError) as caught:
        parse_platform("arm64")
    assert str(caught.value) == (
        "Invalid platform 'arm64': expected 'os/arch[/variant]', e.g. 'linux/arm64/v8'"
    )


@pytest.mark.parametrize(
    ("given_platform", "expected"),
    [
        (Platform("LINUX", "X86_64", "V1"), Platform("linux", "amd64")),
        (Platform("linux", "aarch64"), Platform("linux", "arm64", "v8")),
        (Platform("linux", "arm64", "8"), Platform("linux", "arm64", "v8")),
        (Platform("linux", "arm64", "v9.0"), Platform("linux", "arm64", "v9")),
        (Platform("linux", "arm"), Platform("linux", "arm", "v7")),
        (Platform("linux", "arm", "8"), Platform("linux", "arm", "v8")),
        (Platform("linux", "armhf", "v5"), Platform("linux", "arm", "v7")),
        (Platform("linux", "i386", "sse2"), Platform("linux", "386")),
        (Platform("linux", "amd64", ""), Platform("linux", "amd64")),
        (Platform("linux", "mips64le"), Platform("linux", "mips64le")),
        (
            Platform("windows", "amd64", os_version="10.0.17763.5458", os_features=("b", "a", "b")),
            Platform("windows", "amd64", os_version="10.0.17763.5458", os_features=("a", "b")),
        ),
    ],
)
def test_normalize(given_platform: Platform, expected: Platform) -> None:
    assert normalize(given_platform) == expected


@given(
    st.builds(
        Platform,
        os=st.text(max_size=12),
        architecture=st.sampled_from(
            ["amd64", "x86_64", "arm", "armhf", "armel", "arm64", "aarch64", "i386", "riscv64"]
        )
        | st.text(max_size=12),
        variant=st.none() | st.sampled_from(["", "v1", "v5", "7", "8", "v8.0", "9.0"]) | st.text(),
        os_features=st.lists(st.text(max_size=4), max_size=4).map(tuple),
    )
)
def test_normalize_is_idempotent(given_platform: Platform) -> None:
    once = normalize(given_platform)
    assert normalize(once) == once


@given(st.text(max_size=40))
def test_parse_platform_raises_only_usage_error_and_round_trips(text: str) -> None:
    try:
        parsed = parse_platform(text)
    except UsageError:
        return
    assert parse_platform(str(parsed)) == parsed


@pytest.mark.parametrize(
    ("machine", "expected"),
    [
        ("x86_64", "linux/amd64"),
        ("aarch64", "linux/arm64/v8"),
        ("arm64", "linux/arm64/v8"),
        ("i386", "linux/386"),
        ("i686", "linux/386"),
        ("armv7l", "linux/arm/v7"),
        ("armv6l", "linux/arm/v6"),
        ("ppc64le", "linux/ppc64le"),
        ("s390x", "linux/s390x"),
        ("riscv64", "linux/riscv64"),
        ("mips64", "linux/mips64"),
    ],
)
def test_host_platform_names_the_machine_as_go_does(
    monkeypatch: pytest.MonkeyPatch, machine: str, expected: str
) -> None:
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(stdlib_platform, "machine", lambda: machine)
    assert str(host_platform()) == expected


def test_host_platform_on_a_windows_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setattr(stdlib_platform, "machine", lambda: "AMD64")
    assert host_platform() == Platform("windows", "amd64")


def test_host_platform_of_this_machine_is_normalised() -> None:
    here = host_platform()
    assert normalize(here) == here
    assert parse_platform(str(here)) == here


# containerd platforms/compare_test.go TestOnly: wanted -> (matches, does not match).
_CONTAINERD_ONLY = {
    "linux/amd64": (
        ["linux/amd64", "linux/386"],
        ["linux/amd64/v2", "linux/arm/v7", "linux/arm64", "windows/amd64", "windows/arm"],
    ),
    "linux/amd64/v2": (
        ["linux/amd64", "linux/amd64/v1", "linux/amd64/v2", "linux/386"],
        ["linux/amd64/v3", "linux/amd64/v4", "linux/arm/v7", "linux/arm64", "windows/amd64"],
    ),
    "linux/386": (["linux/386"], ["linux/amd64", "linux/arm/v7", "linux/arm64"]),
    "windows/amd64": (["windows/amd64"], ["linux/amd64", "linux/arm/v7", "windows/arm"]),
    "linux/arm/v8": (
        ["linux/arm", "linux/arm/v5", "linux/arm/v6", "linux/arm/v7", "linux/arm/v8"],
        ["linux/amd64", "linux/arm/v4", "linux/arm64", "windows/arm"],
    ),
    "linux/arm/v7": (
        ["linux/arm", "linux/arm/v5", "linux/arm/v6", "linux/arm/v7"],
        ["linux/amd64", "linux/arm/v4", "linux/arm/v8", "linux/arm64", "windows/arm"],
    ),
    "linux/arm/v6": (
        ["linux/arm/v5", "linux/arm/v6"],
        ["linux/arm", "linux/arm/v4", "linux/arm/v7", "linux/arm/v8", "linux/arm64"],
    ),
    "linux/arm/v5": (["linux/arm/v5"], ["linux/arm", "linux/arm/v4", "linux/arm/v6"]),
    "linux/arm/v4": (["linux/arm/v4"], ["linux/arm", "linux/arm/v5", "linux/arm/v6"]),
    "linux/arm64/v9": (
        [
            "linux/arm",
            "linux/arm/v5",
            "linux/arm/v8",
            "linux/arm64",
            "linux/arm64/v8",
            "linux/arm64/v8.1",
            "linux/arm64/v8.5",
            "linux/arm64/v9",
            "linux/arm64/v9.0",
        ],
        ["linux/amd64", "linux/arm/v4", "linux/arm64/v8.6", "windows/arm"],
    ),
    "linux/arm64/v8.1": (
        ["linux/arm", "linux/arm/v8", "linux/arm64", "linux/arm64/v8", "linux/arm64/v8.1"],
        ["linux/amd64", "linux/arm/v4", "linux/arm/v9", "linux/arm64/v9"],
    ),
    "linux/arm64": (
        [
            "linux/arm",
            "linux/arm/v5",
            "linux/arm/v6",
            "linux/arm/v7",
            "linux/arm/v8",
            "linux/arm64",
            "linux/arm64/v8",
        ],
        ["linux/amd64", "linux/arm/v4", "linux/arm/v9", "linux/arm64/v9", "windows/amd64"],
    ),
}


@pytest.mark.parametrize(
    ("wanted", "offered", "expected"),
    [
        (wanted, offered, expected)
        for wanted, (yes, no) in _CONTAINERD_ONLY.items()
        for expected, offers in ((True, yes), (False, no))
        for offered in offers
    ],
)
def test_matches_like_containerd_only(wanted: str, offered: str, expected: bool) -> None:
    assert matches(parse_platform(wanted), parse_platform(offered)) is expected


def test_arm_v7_runs_v6_but_v6_does_not_run_v7() -> None:
    v6, v7 = Platform("linux", "arm", "v6"), Platform("linux", "arm", "v7")
    assert matches(v7, v6)
    assert not matches(v6, v7)


def test_arm64_and_arm64_v8_are_the_same_platform() -> None:
    bare, v8 = Platform("linux", "arm64"), Platform("linux", "arm64", "v8")
    assert rank(bare, v8) == 0
    assert rank(v8, bare) == 0
    assert rank(Platform("linux", "aarch64"), v8) == 0


def test_amd64_v1_is_amd64_without_variant() -> None:
    assert rank(Platform("linux", "amd64"), Platform("linux", "amd64", "v1")) == 0


def test_os_version_is_ignored() -> None:
    server_2019 = Platform("windows", "amd64", os_version="10.0.17763.5458")
    server_2022 = Platform("windows", "amd64", os_version="10.0.20348.2227")
    assert rank(Platform("windows", "amd64"), server_2019) == 0
    assert rank(server_2022, server_2019) == 0
    assert not matches(Platform("linux", "amd64"), server_2019)


def test_offered_os_features_must_be_ones_the_wanted_platform_has() -> None:
    plain = Platform("windows", "amd64")
    needs_win32k = Platform("windows", "amd64", os_features=("win32k",))
    has_win32k = Platform("windows", "amd64", os_features=("win32k", "other"))
    assert not matches(plain, needs_win32k)
    assert matches(has_win32k, needs_win32k)
    assert matches(has_win32k, plain)


def test_rank_orders_fallbacks_best_first() -> None:
    wanted = parse_platform("linux/arm64/v8")
    offered = ["linux/arm64", "linux/arm/v8", "linux/arm/v7", "linux/arm/v6", "linux/arm/v5"]
    assert [rank(wanted, parse_platform(o)) for o in offered] == [0, 1, 2, 3, 4]
    assert rank(wanted, parse_platform("linux/amd64")) is None


@pytest.mark.parametrize(
    ("wanted", "candidates", "expected"),
    [
        ("linux/arm/v7", ["linux/arm/v5", "linux/arm/v6", "linux/arm/v7"], "linux/arm/v7"),
        ("linux/arm/v7", ["linux/arm/v5", "linux/arm/v6"], "linux/arm/v6"),
        ("linux/amd64", ["linux/386", "linux/amd64"], "linux/amd64"),
        ("linux/amd64", ["linux/arm64", "linux/386"], "linux/386"),
        (
            "linux/amd64/v3",
            ["linux/amd64/v1", "linux/amd64/v2", "linux/amd64/v4"],
            "linux/amd64/v2",
        ),
        ("linux/arm64/v8", ["linux/arm/v7", "linux/arm64"], "linux/arm64/v8"),
        ("linux/arm64/v8", ["linux/arm/v6", "linux/arm/v7", "linux/amd64"], "linux/arm/v7"),
    ],
)
def test_best_match_picks_what_containerd_pulls(
    wanted: str, candidates: list[str], expected: str
) -> None:
    chosen = best_match(parse_platform(wanted), [parse_platform(c) for c in candidates])
    assert chosen == parse_platform(expected)


def test_best_match_keeps_the_first_of_equals_and_prefers_more_features() -> None:
    first = Platform("windows", "amd64", os_version="10.0.17763.1")
    second = Platform("windows", "amd64", os_version="10.0.17763.2")
    featured = Platform("windows", "amd64", os_features=("win32k",))
    wanted = Platform("windows", "amd64", os_features=("win32k",))
    assert best_match(wanted, [first, second]) is first
    assert best_match(wanted, [first, featured, second]) is featured


def test_best_match_is_none_when_nothing_runs() -> None:
    assert best_match(Platform("linux", "s390x"), [Platform("linux", "amd64")]) is None
    assert best_match(Platform("linux", "s390x"), []) is None


@given(
    st.builds(Platform, st.text(max_size=8), st.text(max_size=8), st.none() | st.text(max_size=8)),
    st.builds(Platform, st.text(max_size=8), st.text(max_size=8), st.none() | st.text(max_size=8)),
)
def test_matching_never_raises_and_a_platform_matches_itself(
    wanted: Platform, offered: Platform
) -> None:
    assert matches(wanted, wanted)
    position = rank(wanted, offered)
    assert position is None or position >= 0
