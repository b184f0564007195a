#!/usr/bin/env python3
"""``make bench``: mesos_uri against its peers and against what raw curl can do, on a network
with latency as well as on loopback.

Local registries (anonymous, and token auth with the test token server) get generated images:
3 small layers, 40 x 256 KiB, 200 x 64 KiB, 4 x 64 MiB, 1 x 1 GiB. The ``50ms`` network puts a
latency proxy (``benchlib.proxy``: 25 ms each way, one more round trip per new connection) in
front of every registry and token server, so that every request of every tool pays the round
trips a real registry costs; ``loopback`` reaches the registries directly. Then, as
``benchlib.plan`` lays out:

- every tool fetches each image of the plan, tools alternating: mesos_uri's command line,
  skopeo, python-dxf (8 threads), oras-py, and the curl bound (``benchlib.tools``);
- mesos_uri fetches again into a directory that is already complete (cache hits);
- the agent's path (docker-manifest, then every docker-blob through one Fetcher) against
  docker:// in one already-imported process (``benchlib.agent``).

The report prints medians, token requests and new connections per run, peak RSS, ratios, and
every target with a pass or miss mark; ``--check`` makes a missed target fail the command.
Registries, proxies, token servers, the agent process and every directory are removed on any
exit, Ctrl-C and SIGTERM included. The peers live in ``.make/bench-venv``, made on first use.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Final

from benchlib import report
from benchlib.plan import (
    AGENT_CASES,
    CACHE_ENDPOINT,
    CACHE_IMAGES,
    COMPARISONS,
    DEFAULT_RUNS,
    Bench,
    Case,
    Results,
    agent_paths,
    cache_hits,
    compare,
    tools_in_order,
)
from benchlib.tools import TOOLS, Toolbox
from benchlib.world import IMAGES, NETWORKS, REGISTRIES, build_world, peers_python

ROOT: Final = Path(__file__).resolve().parent.parent
PARTS: Final = ("compare", "cache", "agent")
# --quick: enough to see where things stand in a few minutes, not enough for a record.
QUICK_RUNS: Final = 3
QUICK_IMAGES: Final = ("small3", "small40", "big4")


def say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


@dataclass
class Selection:
    """What the command line chose: cases of each part, tools, runs."""

    runs: int
    tools: list[str]
    jobs: int | None = None
    compare: list[Case] = field(default_factory=list)
    cache: list[str] = field(default_factory=list)
    agent: list[Case] = field(default_factory=list)

    def endpoint_images(self) -> dict[tuple[str, str], set[str]]:
        wanted: dict[tuple[str, str], set[str]] = {}
        triples = [(c.network, c.registry, c.image) for c in [*self.compare, *self.agent]]
        triples += [(*CACHE_ENDPOINT, key) for key in self.cache]
        for network, registry, image in triples:
            wanted.setdefault((network, registry), set()).add(image)
        return wanted


def _csv(known: Sequence[str]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        values = [part for part in text.split(",") if part]
        unknown = [v for v in values if v not in known]
        if unknown or not values:
            raise argparse.ArgumentTypeError(f"expected some of {','.join(known)}, not {text!r}")
        return values

    return parse


def _parser() -> argparse.ArgumentParser:
    keys = [spec.key for spec in IMAGES]
    parser = argparse.ArgumentParser(
        prog="bench.py",
        description="Time mesos_uri against skopeo, python-dxf, oras-py and the curl bound, "
        "on loopback and through a 50 ms latency proxy.",
    )
    parser.add_argument("--runs", type=int, help=f"timed runs per tool (default {DEFAULT_RUNS})")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_RUNS} runs, images {','.join(QUICK_IMAGES)} (unless given)",
    )
    parser.add_argument("--images", type=_csv(keys), help=f"some of {','.join(keys)}")
    parser.add_argument(
        "--networks",
        type=_csv(NETWORKS),
        default=list(NETWORKS),
        help=f"some of {','.join(NETWORKS)}",
    )
    parser.add_argument(
        "--registries",
        type=_csv(REGISTRIES),
        default=list(REGISTRIES),
        help=f"some of {','.join(REGISTRIES)}",
    )
    parser.add_argument(
        "--tools",
        type=_csv(TOOLS),
        default=list(TOOLS),
        help=f"some of {','.join(TOOLS)}; mesos_uri is always measured",
    )
    parser.add_argument(
        "--parts", type=_csv(PARTS), default=list(PARTS), help=f"some of {','.join(PARTS)}"
    )
    parser.add_argument("--jobs", type=int, help="mesos_uri's --jobs (default: its own)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--workdir", type=Path, help="where the runs write (default: TMPDIR)")
    return parser


def select(args: argparse.Namespace) -> Selection:
    runs = args.runs or (QUICK_RUNS if args.quick else DEFAULT_RUNS)
    images = args.images or (list(QUICK_IMAGES) if args.quick else [s.key for s in IMAGES])

    def chosen(case: Case) -> bool:
        return (
            case.network in args.networks
            and case.registry in args.registries
            and case.image in images
        )

    selection = Selection(runs, tools_in_order(["mesos_uri", *args.tools]), args.jobs)
    if "compare" in args.parts:
        selection.compare = [c for c in COMPARISONS if chosen(c)]
    if "cache" in args.parts and chosen(Case(*CACHE_ENDPOINT, CACHE_IMAGES[0])):
        selection.cache = [key for key in CACHE_IMAGES if key in images]
    if "agent" in args.parts:
        selection.agent = [c for c in AGENT_CASES if chosen(c)]
    return selection


def ensure_programs() -> None:
    """skopeo (and the registry, curl) from the system packages when missing."""
    if all(shutil.which(p) for p in ("skopeo", "docker-registry", "curl")):
        return
    script = ROOT / "scripts" / "install-system-deps.sh"
    subprocess.run(["bash", str(script), "skopeo"], check=True)


def tool_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    # A proxy from the environment would sit between every tool and the registries.
    for name in (
        "http_proxy",
        "https_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
    ):
        env.pop(name, None)
    return env


class SetupError(Exception):
    """Something the bench needs could not be had; nothing was measured."""


class Interrupted(Exception):
    """SIGTERM, turned into an exception so that every ``with`` block cleans up."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signal.Signals(signum).name)


def measure(selection: Selection, workdir: Path | None) -> tuple[Results, str]:
    """Start the world, run every part, stop the world; (results, the peers' versions)."""
    results = Results()
    peers = [t for t in selection.tools if t in ("python-dxf", "oras-py")]
    try:
        python = peers_python(ROOT, say) if peers else None
    except (OSError, subprocess.CalledProcessError) as exc:
        raise SetupError(
            f"the peers' virtualenv could not be made ({exc}); leave {' and '.join(peers)} "
            "out with --tools, or install them by hand into .make/bench-venv"
        ) from exc
    versions = _peer_versions(python) if python is not None else "-"
    with contextlib.ExitStack() as stack:
        scratch = Path(
            stack.enter_context(tempfile.TemporaryDirectory(dir=workdir, prefix="bench-"))
        )
        world = stack.enter_context(build_world(selection.endpoint_images(), say))
        stack.callback(_ignore_signals)  # runs first: a second Ctrl-C must not cut clean-up short
        bench = Bench(scratch, Toolbox(python, jobs=selection.jobs), tool_env())
        compare(bench, world, results, selection.compare, selection.tools, selection.runs, say)
        if selection.cache:
            cache_hits(bench, world, results, selection.cache, selection.runs, say)
        agent_paths(bench, world, results, selection.agent, selection.runs, say)
    return results, versions


def _peer_versions(python: Path) -> str:
    code = (
        "from importlib.metadata import version; "
        "print(', '.join(f'{p} {version(p)}' for p in ('python-dxf', 'oras')))"
    )
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=False)
    return done.stdout.strip() or "unknown"


def _ignore_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.runs is not None and args.runs < 1:
        parser.error("--runs must be at least 1")
    selection = select(args)
    if not (selection.compare or selection.cache or selection.agent):
        parser.error("the options select no case")
    # also when started in the background, where a shell leaves SIGINT ignored
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _on_sigterm)
    ensure_programs()
    load_before = os.getloadavg()
    started = time.monotonic()
    try:
        results, versions = measure(selection, args.workdir)
    except KeyboardInterrupt:
        print("bench: interrupted; registries, proxies and directories removed", file=sys.stderr)
        return 130
    except SetupError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    except Interrupted as exc:
        print(f"bench: {exc}; registries, proxies and directories removed", file=sys.stderr)
        return 143
    command = " ".join(["python scripts/bench.py", *(argv if argv is not None else sys.argv[1:])])
    lines = [
        "# mesos_uri benchmark",
        "",
        f"`{command}` took {time.monotonic() - started:.0f} s.",
        "",
        *report.machine(load_before, versions),
        "",
    ]
    if selection.compare:
        lines += [
            *report.comparisons(results, selection.compare, selection.tools, selection.runs),
            "",
        ]
        lines += [*report.ratios(results, selection.compare, selection.tools), ""]
    if selection.cache:
        lines += [*report.cache_section(results, selection.runs), ""]
    if selection.agent:
        lines += [*report.agent_section(results, selection.runs), ""]
    checks = report.checks(results, selection.compare, selection.agent)
    lines += report.checks_section(checks)
    print("\n".join(lines).rstrip())
    missed = [c for c in checks if c.passed is not True]
    if args.check and missed:
        print(f"bench: {len(missed)} target(s) missed:", file=sys.stderr)
        for check in missed:
            print(
                f"  {check.what}: {check.ratio or check.measured} (target {check.target})",
                file=sys.stderr,
            )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
