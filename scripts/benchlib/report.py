"""The report: measured figures, ratios against the right reference, and every target's mark.

Times are compared only within one run, as ratios: the machine is shared and small, so an
absolute figure says more about its load than about a tool.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from benchlib.agent import AGENT_PATH, DOCKER_PATH
from benchlib.plan import (
    AGENT_AT_MOST,
    BEST_PEER,
    CACHE_AT_MOST,
    CACHE_ENDPOINT,
    CACHE_IMAGES,
    RSS_BELOW_MIB,
    Case,
    Results,
    limits,
)
from benchlib.proxy import HANDSHAKE, ONE_WAY
from benchlib.runner import Series
from benchlib.tools import TARGET_PEERS
from benchlib.world import IMAGE_BY_KEY, MIB

ROOT: Final = Path(__file__).resolve().parent.parent.parent


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "n/a" if value is None else format(value, spec)


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def table(rows: Sequence[Sequence[str]], *, right_from: int = 1) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [
            cell.ljust(width) if i < right_from else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def _title(key: str) -> str:
    return IMAGE_BY_KEY[key].title


def _failures(named: Sequence[tuple[str, Series]]) -> list[str]:
    lines = [
        f"- {name}: {len(s.failures)} of {len(s.samples)} runs failed; first: {s.failures[0]}"
        for name, s in named
        if s.failures
    ]
    return ["", "Failed runs (left out of the figures):", *lines] if lines else []


def best_peer(results: Results, case: Case) -> tuple[str, float] | None:
    """The target peer with the lowest median on ``case``, and that median."""
    medians = [
        (peer, median)
        for peer in TARGET_PEERS
        if (median := results.get(case, peer).median) is not None
    ]
    return min(medians, key=lambda item: item[1]) if medians else None


def reference_median(results: Results, case: Case, reference: str) -> tuple[str, float | None]:
    if reference == BEST_PEER:
        best = best_peer(results, case)
        return (BEST_PEER, None) if best is None else best
    return reference, results.get(case, reference).median


# --------------------------------------------------------------------------------------------
# Sections


def comparisons(
    results: Results, cases: Sequence[Case], tools: Sequence[str], runs: int
) -> list[str]:
    rows = [
        [
            "network",
            "registry",
            "image",
            "tool",
            "median",
            "min",
            "max",
            "tokens",
            "conns",
            "RSS MiB",
        ]
    ]
    for case in cases:
        for tool in tools:
            series = results.get(case, tool)
            rows.append(
                [
                    case.network,
                    case.registry,
                    _title(case.image),
                    tool,
                    _fmt(series.median),
                    _fmt(series.fastest),
                    _fmt(series.slowest),
                    series.tokens,
                    series.connections,
                    _fmt(series.peak_mib, ".1f"),
                ]
            )
    named = [
        (f"{case.network}, {case.registry}, {_title(case.image)}, {tool}", series)
        for (case, tool), series in results.compare.items()
    ]
    return [
        f"## Comparisons: seconds (median, min, max of {runs} runs), token requests and new "
        "connections per run, peak RSS of the tool's process tree",
        "",
        *table(rows, right_from=4),
        *_failures(named),
    ]


def ratios(results: Results, cases: Sequence[Case], tools: Sequence[str]) -> list[str]:
    """mesos_uri's median over each other tool's, and over the best peer's."""
    others = [tool for tool in tools if tool != "mesos_uri"]
    rows = [["network", "registry", "image", *[f"/{t}" for t in others], "/best peer"]]
    for case in cases:
        mine = results.get(case, "mesos_uri").median
        best = best_peer(results, case)
        rows.append(
            [
                case.network,
                case.registry,
                _title(case.image),
                *[_fmt(_ratio(mine, results.get(case, t).median), ".2f") for t in others],
                _fmt(_ratio(mine, best[1] if best else None), ".2f")
                + (f" ({best[0]})" if best else ""),
            ]
        )
    return [
        "## Ratios: mesos_uri's median over each tool's (lower is better; the best peer is the "
        f"faster of {' and '.join(TARGET_PEERS)})",
        "",
        *table(rows, right_from=3),
    ]


def cache_section(results: Results, runs: int) -> list[str]:
    rows = [["image", "median", "min", "max", "RSS MiB"]]
    for key, series in results.cache.items():
        rows.append(
            [
                _title(key),
                _fmt(series.median),
                _fmt(series.fastest),
                _fmt(series.slowest),
                _fmt(series.peak_mib, ".1f"),
            ]
        )
    named = [(f"cache hit, {_title(key)}", series) for key, series in results.cache.items()]
    network, registry = CACHE_ENDPOINT
    return [
        f"## Second fetch into a complete directory (mesos_uri, {network}, {registry}; "
        f"seconds of {runs} runs, each after an untimed fetch filled the directory)",
        "",
        *table(rows),
        *_failures(named),
    ]


def agent_section(results: Results, runs: int) -> list[str]:
    rows = [["network", "registry", "image", "path", "median", "min", "max", "tokens", "conns"]]
    for (case, path), series in results.agent.items():
        rows.append(
            [
                case.network,
                case.registry,
                _title(case.image),
                path,
                _fmt(series.median),
                _fmt(series.fastest),
                _fmt(series.slowest),
                series.tokens,
                series.connections,
            ]
        )
    named = [
        (f"{case.network}, {case.registry}, {path}", series)
        for (case, path), series in results.agent.items()
    ]
    return [
        "## The agent's path in one already-imported process: docker-manifest, then every "
        f"docker-blob at once through one Fetcher, against docker:// (seconds of {runs} runs)",
        "",
        *table(rows, right_from=4),
        *_failures(named),
    ]


# --------------------------------------------------------------------------------------------
# Targets


@dataclass(frozen=True)
class Check:
    what: str
    measured: str
    ratio: str
    target: str
    passed: bool | None  # None: could not be measured, which counts as a miss


def _ratio_check(
    what: str, mine: float | None, theirs: float | None, theirs_name: str, at_most: float
) -> Check:
    ratio = _ratio(mine, theirs)
    return Check(
        what,
        f"{_fmt(mine)} s / {_fmt(theirs)} s ({theirs_name})",
        _fmt(ratio, ".2f") + " x",
        f"<= {at_most} x",
        None if ratio is None else ratio <= at_most,
    )


def checks(results: Results, cases: Sequence[Case], agent_cases: Sequence[Case]) -> list[Check]:
    found: list[Check] = []
    for case in cases:
        where = f"{case.network}, {case.registry}, {_title(case.image)}"
        mine = results.get(case, "mesos_uri").median
        for limit in limits(case):
            name, theirs = reference_median(results, case, limit.reference)
            what = f"{where}: mesos_uri / {limit.reference}"
            found.append(_ratio_check(what, mine, theirs, name, limit.at_most))
        if case.registry == "token":
            found.append(
                _token_check(f"{where}: token requests, docker://", results.get(case, "mesos_uri"))
            )
    large, small = CACHE_IMAGES
    if large in results.cache and small in results.cache:
        what = f"cache hit: {_title(large)} / {_title(small)}"
        mine, theirs = results.cache[large].median, results.cache[small].median
        found.append(_ratio_check(what, mine, theirs, _title(small), CACHE_AT_MOST))
    for case in agent_cases:
        agent = results.agent.get((case, AGENT_PATH))
        docker = results.agent.get((case, DOCKER_PATH))
        if agent is None or docker is None:
            continue
        where = f"agent path, {case.network}, {case.registry}, {_title(case.image)}"
        found.append(
            _ratio_check(
                f"{where}: / docker://", agent.median, docker.median, "docker://", AGENT_AT_MOST
            )
        )
        if case.registry == "token":
            found.append(_token_check(f"{where}: token requests", agent))
    found += _rss_checks(results)
    return found


def _token_check(what: str, series: Series) -> Check:
    counts = series.token_counts
    return Check(what, series.tokens, "", "1", None if not counts else counts == {1})


def _rss_checks(results: Results) -> list[Check]:
    by_image: dict[str, list[float]] = {}
    for (case, tool), series in results.compare.items():
        if tool == "mesos_uri" and series.peak_mib is not None:
            by_image.setdefault(case.image, []).append(series.peak_mib)
    for key, series in results.cache.items():
        if series.peak_mib is not None:
            by_image.setdefault(key, []).append(series.peak_mib)
    return [
        Check(
            f"peak RSS of mesos_uri, {_title(key)}",
            f"{max(peaks):.1f} MiB",
            "",
            f"< {RSS_BELOW_MIB:.0f} MiB",
            max(peaks) < RSS_BELOW_MIB,
        )
        for key, peaks in by_image.items()
    ]


def checks_section(found: Sequence[Check]) -> list[str]:
    rows = [["target", "measured", "ratio", "target", "mark"]]
    for check in found:
        mark = {True: "pass", False: "MISS", None: "MISS (not measured)"}[check.passed]
        rows.append([check.what, check.measured, check.ratio, check.target, mark])
    missed = sum(1 for c in found if c.passed is not True)
    return [
        "## Targets",
        "",
        *table(rows, right_from=2),
        "",
        f"{len(found) - missed} of {len(found)} targets met, {missed} missed.",
    ]


# --------------------------------------------------------------------------------------------
# The machine


def machine(load_before: tuple[float, float, float], peers_versions: str) -> list[str]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.partition(":")[2].strip()
                break
    busy = max(load_before[0], os.getloadavg()[0]) > 0.5 * (os.cpu_count() or 1)
    memory = "unknown"
    with contextlib.suppress(OSError):
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{kib / MIB:.1f} GiB"
    return [
        "## Machine",
        "",
        f"- date: {datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- cpus: {os.cpu_count()} x {cpu}",
        f"- memory: {memory}",
        f"- kernel: {platform.release()}",
        f"- python: {platform.python_version()}",
        f"- curl: {version(['curl', '--version'])}",
        f"- skopeo: {version(['skopeo', '--version'])}",
        f"- registry: {version(['docker-registry', '--version'])}",
        f"- peers: {peers_versions}",
        f"- mesos_uri: {version(['git', '-C', str(ROOT), 'describe', '--always', '--dirty'])}",
        f"- network 50ms: a proxy adds {ONE_WAY * 1000:.0f} ms each way and holds a new "
        f"connection's first bytes {HANDSHAKE * 1000:.0f} ms (its handshake)",
        f"- load average (1 min) before and after: {load_before[0]:.2f}, "
        f"{os.getloadavg()[0]:.2f}" + (" (a busy machine: timings are noisy)" if busy else ""),
    ]


def version(argv: Sequence[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
    except OSError:
        return "not installed"
    text = done.stdout or done.stderr
    return text.splitlines()[0].strip() if text else "?"
