"""Image platforms (os/architecture/variant) and how an index entry is chosen for one.

As containerd's ``platforms`` package (``Normalize``, ``Only``), which Docker and nerdctl pull with:
a wanted platform expands into the platforms it can run, best first; an offered one must match.
"""

from __future__ import annotations

import platform as _host
import re
import sys
from collections.abc import Iterable, Iterator
from typing import Final

import attrs

from mesos_uri.errors import UsageError

__all__ = ["Platform", "best_match", "host_platform", "matches", "parse_platform", "rank"]


@attrs.frozen
class Platform:
    """An OCI platform; ``str()`` is the ``os/arch[/variant]`` form the CLI takes."""

    os: str
    architecture: str
    variant: str | None = None
    os_version: str | None = None
    os_features: tuple[str, ...] = ()

    def __str__(self) -> str:
        base = f"{self.os}/{self.architecture}"
        return f"{base}/{self.variant}" if self.variant else base


# containerd's specifier grammar (platforms.Parse: osRe without the "(version)" part, specifierRe).
_OS_PART: Final = re.compile(r"[A-Za-z0-9_-]+")
_PART: Final = re.compile(r"[A-Za-z0-9_.-]+")

# Go's strconv.Atoi, which containerd reads variants with (more digits are past any level we use).
_GO_INT: Final = re.compile(r"[+-]?[0-9]{1,9}")

# Above any real level (amd64/v4, arm/v8): a higher wanted level gets no fall-backs at all.
_MAX_VARIANT_LEVEL: Final = 16
# The lowest level each architecture falls back to: amd64/v1, arm/v5.
_LOWEST_LEVEL: Final = {"amd64": 1, "arm": 5}

# platform.machine() names that normalize() does not know, as Go's GOARCH and variant.
_MACHINES: Final = {
    "armv8l": ("arm", "v8"),
    "armv7l": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "armv5tel": ("arm", "v5"),
    **dict.fromkeys(("i486", "i586", "i686", "x86"), ("386", "")),
}


def parse_platform(text: str) -> Platform:
    """Parse the CLI's ``os/arch[/variant]`` into a normalised platform. Unlike containerd, both
    OS and architecture are required: inferring the missing half from the host hides typos."""
    parts = text.split("/")
    if not 2 <= len(parts) <= 3:
        reason = "expected 'os/arch[/variant]', e.g. 'linux/arm64/v8'"
    elif not _OS_PART.fullmatch(parts[0]):
        reason = f"the OS '{parts[0]}' must be letters, digits, '_' or '-'"
    elif bad := [part for part in parts[1:] if not _PART.fullmatch(part)]:
        reason = f"'{bad[0]}' must be letters, digits, '.', '_' or '-'"
    else:
        return normalize(Platform(parts[0], parts[1], parts[2] if len(parts) == 3 else None))
    raise UsageError(f"Invalid platform '{text}': {reason}")


def host_platform() -> Platform:
    """This machine's platform as Go spells it (a Mesos agent runs Linux but on Windows)."""
    os_name = "windows" if sys.platform == "win32" else "linux"
    machine = _host.machine().lower() or "unknown"
    architecture, variant = _MACHINES.get(machine, (machine, ""))
    return normalize(Platform(os_name, architecture, variant or None))


def normalize(platform: Platform) -> Platform:
    """containerd's ``platforms.Normalize``, but arm64 keeps its default variant ``v8``: both
    sides of every comparison are normalised, so which platforms match is the same."""
    os_name = platform.os.lower()
    architecture, variant = _normalize_arch(platform.architecture, platform.variant or "")
    return attrs.evolve(
        platform,
        os="darwin" if os_name == "macos" else os_name,
        architecture=architecture,
        variant=variant or None,
        os_features=tuple(sorted(set(platform.os_features))),
    )


def _normalize_arch(architecture: str, variant: str) -> tuple[str, str]:
    """containerd's ``normalizeArch``, with arm64's default variant kept (see ``normalize``)."""
    architecture, variant = architecture.lower(), variant.lower()
    if architecture == "i386":
        return "386", ""
    if architecture in ("x86_64", "x86-64", "amd64"):
        return "amd64", "" if variant == "v1" else variant
    if architecture in ("aarch64", "arm64"):
        if variant in ("", "8", "v8", "v8.0"):
            return "arm64", "v8"
        if variant in ("9", "9.0", "v9.0"):
            return "arm64", "v9"
        return "arm64", variant
    if architecture == "armhf":
        return "arm", "v7"
    if architecture == "armel":
        return "arm", "v6"
    if architecture == "arm":
        if variant in ("", "7"):
            return "arm", "v7"
        if variant in ("5", "6", "8"):
            return "arm", f"v{variant}"
    return architecture, variant


def _level(variant: str) -> int | None:
    """The number in a ``vN`` variant as containerd reads it (``strconv.Atoi`` after ``v``)."""
    digits = variant.removeprefix("v")
    return int(digits) if _GO_INT.fullmatch(digits) else None


def _fallbacks(os_name: str, architecture: str, variant: str) -> Iterator[tuple[str, str, str]]:
    """The platforms a normalised wanted platform can run, best first (containerd's
    ``platformVector``): amd64/vN runs v(N-1)..v1, then 386; arm/vN runs v(N-1)..v5."""
    yield os_name, architecture, variant
    lowest, level = _LOWEST_LEVEL.get(architecture), _level(variant)
    if lowest is not None and level is not None and lowest < level <= _MAX_VARIANT_LEVEL:
        for lower in range(level - 1, lowest - 1, -1):
            yield os_name, architecture, f"v{lower}"
    if architecture == "amd64":
        yield os_name, "386", ""
    elif architecture == "arm64":
        yield from _arm64_fallbacks(os_name, variant or "v8")


def _arm64_fallbacks(os_name: str, variant: str) -> Iterator[tuple[str, str, str]]:
    """arm64/v8.x runs v8.(x-1)..v8; arm64/v9.x runs v9.(x-1)..v9, then v8.(x+5)..v8 (v9.0
    forked from v8.5); then 32-bit arm from v8 down."""
    major_text, dot, minor_text = variant.partition(".")
    major = _level(major_text)
    if major is not None and 8 <= major <= _MAX_VARIANT_LEVEL:
        minor = 0
        # containerd reads a minor only from a four-character variant such as "v8.2".
        if len(variant) == 4 and dot and _GO_INT.fullmatch(minor_text):
            minor = int(minor_text)
        # Each (level, bound) runs v{level}.{bound - 1} down to v{level}; v9.x goes on at v8.(x+5).
        runs = [(9, minor), (8, min(minor + 5, 9) + 1)] if major == 9 else [(major, minor)]
        for level, bound in runs:
            for lower in range(bound - 1, -1, -1):
                yield os_name, "arm64", f"v{level}.{lower}" if lower else f"v{level}"
    # There is no arm/v9: v8.x and v9.x fall back to arm/v8.
    if variant.startswith(("v8.", "v9.")):
        variant = "v8"
    yield from _fallbacks(os_name, "arm", variant)


def rank(wanted: Platform, offered: Platform) -> int | None:
    """How well ``offered`` suits ``wanted``: 0 for the platform itself, higher for fall-backs,
    None for no match. As containerd's matcher, ``offered`` may need only OS features ``wanted``
    has; ``os.version`` is ignored, which containerd checks only for a Windows build we never ask
    for."""
    want = normalize(wanted)
    have = normalize(offered)
    if not set(have.os_features) <= set(want.os_features):
        return None
    target = (have.os, have.architecture, have.variant or "")
    for position, (os_name, architecture, variant) in enumerate(
        _fallbacks(want.os, want.architecture, want.variant or "")
    ):
        if (os_name, *_normalize_arch(architecture, variant)) == target:
            return position
    return None


def matches(wanted: Platform, offered: Platform) -> bool:
    """Whether an image built for ``offered`` runs where ``wanted`` is asked for."""
    return rank(wanted, offered) is not None


def best_match(wanted: Platform, candidates: Iterable[Platform]) -> Platform | None:
    """The candidate containerd would pull for ``wanted``, or None when none matches: the best
    rank, then more OS features, then the earlier one (containerd sorts stably)."""
    ranked = [
        ((position, -len(set(candidate.os_features))), candidate)
        for candidate in candidates
        if (position := rank(wanted, candidate)) is not None
    ]
    return min(ranked, key=lambda pair: pair[0], default=(None, None))[1]
