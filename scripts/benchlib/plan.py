"""What is measured: the cases, the runs of each, and the targets they are held against.

Three kinds of measurement, each timed ``runs`` times after one untimed warm-up, tools in an
order that rotates every round, every run on a fresh directory whose result is checked:

- *comparisons*: every tool fetches one image from one endpoint;
- *cache hits*: mesos_uri fetches an image into a directory that an untimed fetch of the same
  image has just filled; the images alternate, so the small and the large image's second fetch
  see the same machine;
- *the agent's path*: ``docker-manifest`` then every ``docker-blob`` through one ``Fetcher``,
  against ``docker://``, both in one already-imported process (``benchlib.agent``).
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from benchlib.agent import AGENT_PATH, DOCKER_PATH, AgentProcess
from benchlib.runner import Sample, Series, error_of, spawn_and_wait
from benchlib.tools import TOOLS, Toolbox, check_result, leftovers, stderr_of
from benchlib.world import TAG, Endpoint, Image, Progress, World

DEFAULT_RUNS: Final = 7


@dataclass(frozen=True)
class Case:
    network: str
    registry: str
    image: str


# The comparisons of a full run: the small images at 50 ms on both registries, where round trips
# and connections decide; 200 x 64 KiB on loopback too; the large images and the 3 small layers
# on loopback, where the product's own costs (hashing, fsync, start-up) are not hidden by latency.
COMPARISONS: Final = (
    *(
        Case("50ms", registry, image)
        for image in ("small3", "small40", "small200")
        for registry in ("anonymous", "token")
    ),
    Case("loopback", "anonymous", "small200"),
    Case("loopback", "token", "small200"),
    Case("loopback", "anonymous", "small3"),
    Case("loopback", "anonymous", "big4"),
    Case("loopback", "anonymous", "huge1"),
)
# A cache hit's cost should not grow with the image: the large image against the small one.
CACHE_IMAGES: Final = ("big4", "small3")
CACHE_ENDPOINT: Final = ("loopback", "anonymous")
AGENT_CASES: Final = (
    Case("50ms", "token", "small40"),
    Case("loopback", "token", "small40"),
)


@dataclass
class Results:
    compare: dict[tuple[Case, str], Series] = field(default_factory=dict)
    cache: dict[str, Series] = field(default_factory=dict)
    agent: dict[tuple[Case, str], Series] = field(default_factory=dict)

    def get(self, case: Case, tool: str) -> Series:
        return self.compare.setdefault((case, tool), Series())


class Bench:
    """Runs tools on fresh directories under ``workdir`` and removes what they wrote."""

    def __init__(self, workdir: Path, toolbox: Toolbox, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.toolbox = toolbox
        self.env = env
        self._serial = 0

    def fresh_dir(self) -> Path:
        self._serial += 1
        return self.workdir / f"run-{self._serial}"

    def run(self, tool: str, endpoint: Endpoint, image: Image, *, prefill: bool = False) -> Sample:
        """One timed run of ``tool``; with ``prefill``, into a directory an untimed run filled."""
        out = self.fresh_dir()
        stderr_path = stderr_of(out)
        try:
            if prefill:
                argv = self.toolbox.command(tool, endpoint, image, out)
                done = spawn_and_wait(argv, env=self.env, stderr_path=stderr_path)
                error = error_of(done, stderr_path) or check_result(tool, image, out)
                if error is not None:
                    return Sample(0.0, None, None, None, f"the filling run failed: {error}")
            argv = self.toolbox.command(tool, endpoint, image, out)
            endpoint.reset_counts()
            done = spawn_and_wait(argv, env=self.env, stderr_path=stderr_path)
            tokens, connections = endpoint.tokens(), endpoint.connections()
            error = error_of(done, stderr_path) or check_result(tool, image, out)
            return Sample(done.seconds, done.maxrss_kib, tokens, connections, error)
        finally:
            shutil.rmtree(out, ignore_errors=True)
            for path in leftovers(out):
                path.unlink(missing_ok=True)


def compare(
    bench: Bench,
    world: World,
    results: Results,
    cases: Sequence[Case],
    tools: Sequence[str],
    runs: int,
    progress: Progress,
) -> None:
    for case in cases:
        endpoint = world.endpoint(case.network, case.registry)
        image = endpoint.images[case.image]
        label = f"{case.network} / {case.registry} / {image.repo}"
        progress(f"{label}: warm-up")
        for tool in tools:
            bench.run(tool, endpoint, image)  # page cache, registry caches, skopeo's cache
        for round_ in range(runs):
            progress(f"{label}: round {round_ + 1} of {runs}")
            for tool in _rotated(tools, round_):
                results.get(case, tool).samples.append(bench.run(tool, endpoint, image))


def cache_hits(
    bench: Bench,
    world: World,
    results: Results,
    images: Sequence[str],
    runs: int,
    progress: Progress,
) -> None:
    endpoint = world.endpoint(*CACHE_ENDPOINT)
    progress("cache hits: warm-up")
    for key in images:
        bench.run("mesos_uri", endpoint, endpoint.images[key], prefill=True)
    for round_ in range(runs):
        progress(f"cache hits: round {round_ + 1} of {runs}")
        for key in _rotated(images, round_):
            sample = bench.run("mesos_uri", endpoint, endpoint.images[key], prefill=True)
            results.cache.setdefault(key, Series()).samples.append(sample)


def agent_paths(
    bench: Bench,
    world: World,
    results: Results,
    cases: Sequence[Case],
    runs: int,
    progress: Progress,
) -> None:
    paths = (AGENT_PATH, DOCKER_PATH)
    stderr_path = bench.workdir / "agent.stderr"
    for case in cases:
        endpoint = world.endpoint(case.network, case.registry)
        image = endpoint.images[case.image]
        with AgentProcess(env=bench.env, stderr_path=stderr_path) as agent:
            progress(f"agent path, {case.network} / {case.registry}: warm-up")
            for path in paths:
                _agent_run(bench, agent, endpoint, image, path)  # imports the lazy rest
            for round_ in range(runs):
                progress(f"agent path, {case.network} / {case.registry}: round {round_ + 1}")
                for path in _rotated(paths, round_):
                    sample = _agent_run(bench, agent, endpoint, image, path)
                    results.agent.setdefault((case, path), Series()).samples.append(sample)


def _agent_run(
    bench: Bench, agent: AgentProcess, endpoint: Endpoint, image: Image, path: str
) -> Sample:
    out = bench.fresh_dir()
    endpoint.reset_counts()
    try:
        if path == AGENT_PATH:
            seconds, error = agent.agent_path(
                endpoint.docker_uri(image.repo, TAG, scheme="docker-manifest"),
                [endpoint.docker_uri(image.repo, d, scheme="docker-blob") for d in image.blobs],
                out,
            )
        else:
            seconds, error = agent.docker_path(endpoint.docker_uri(image.repo, TAG), out)
        tokens, connections = endpoint.tokens(), endpoint.connections()
        error = error or check_result("mesos_uri", image, out)
        return Sample(seconds, None, tokens, connections, error)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def _rotated(items: Sequence[str], round_: int) -> list[str]:
    shift = round_ % len(items)
    return [*items[shift:], *items[:shift]]


def tools_in_order(wanted: Sequence[str]) -> list[str]:
    return [tool for tool in TOOLS if tool in wanted]


@dataclass(frozen=True)
class Limit:
    """mesos_uri's median may be at most ``at_most`` times the ``reference``'s median."""

    reference: str  # a tool, or BEST_PEER
    at_most: float


BEST_PEER: Final = "best peer"
_ON_A_NETWORK: Final = (Limit(BEST_PEER, 1.0), Limit("curl bound", 1.5))
_LARGE: Final = (Limit("curl bound", 2.0), Limit("skopeo", 0.5))


def limits(case: Case) -> tuple[Limit, ...]:
    """The targets of a comparison: where latency counts, the best peer and the bound; on
    loopback, large images against the bound and skopeo, 3 small layers against skopeo."""
    if case.network == "50ms" or case.image == "small200":
        return _ON_A_NETWORK
    if case.image in ("big4", "huge1"):
        return _LARGE
    if case.image == "small3":
        return (Limit("skopeo", 3.0),)
    return ()


# The agent's path may take this much longer than the docker:// path of the same image.
AGENT_AT_MOST: Final = 1.2
# The large image's cache hit may take this much longer than the small one's.
CACHE_AT_MOST: Final = 1.3
# Peak RSS of mesos_uri's process tree, whatever the image.
RSS_BELOW_MIB: Final = 60.0
