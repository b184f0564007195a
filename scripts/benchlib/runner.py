"""Running one tool: timed and reaped by a small waiter, its peak RSS read from ``wait4``.

Each tool runs under a waiter process in a session of its own. The waiter times it and reaps it
with ``wait4``, whose ``ru_maxrss`` covers the tool and every descendant it waited for, so the
peak RSS is that of the largest process of the tool's tree (for mesos_uri, the python process
or one of its curls). A timeout, a Ctrl-C or a SIGTERM to the benchmark kills the whole group.
"""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

KIB: Final = 1024
# A run that takes this long is stuck, not slow: its process group is killed.
RUN_TIMEOUT: Final = 600.0
# How much of a failed tool's stderr a report shows.
STDERR_TAIL: Final = 600

# Runs the tool and reports "seconds exit-status ru_maxrss" on fd 3. On Linux a process's
# ru_maxrss starts at the peak RSS of whichever process it was forked or vforked from (exec keeps
# the old memory's high-water mark), so a tool spawned by the bench itself (40+ MiB, more with a
# 1 GiB layer pushed) would report at least that much. This waiter is a bare interpreter (-S -I,
# ~8 MiB: the floor of every figure, below what any measured tool uses).
_WAITER: Final = """\
import os, sys, time
os.set_inheritable(3, False)
argv = sys.argv[1:]
started = time.perf_counter()
pid = os.posix_spawnp(argv[0], argv, os.environ)
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - started
os.write(3, f"{seconds} {os.waitstatus_to_exitcode(status)} {usage.ru_maxrss}".encode())
"""


@dataclass(frozen=True)
class Outcome:
    seconds: float
    status: int
    maxrss_kib: int
    leftover: bool  # some process of the tree outlived the tool


def spawn_and_wait(
    argv: Sequence[str],
    *,
    env: dict[str, str],
    stderr_path: Path,
    timeout: float = RUN_TIMEOUT,
) -> Outcome:
    """Run ``argv`` under the waiter, in a new session, and wait for it.

    The waiter leads its own process group, so a timeout, a Ctrl-C or a SIGTERM to the bench
    kills the whole tree, and a process of the tree that outlives the tool is found.
    """
    report = stderr_path.with_name(stderr_path.name + ".report")
    write = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
        (os.POSIX_SPAWN_OPEN, 2, str(stderr_path), write, 0o600),
        (os.POSIX_SPAWN_OPEN, 3, str(report), write, 0o600),
    ]
    waiter = [sys.executable, "-S", "-I", "-c", _WAITER, *argv]
    pid = os.posix_spawn(sys.executable, waiter, env, file_actions=actions, setsid=True)
    timer = threading.Timer(timeout, kill_group, (pid,))
    timer.start()
    try:
        _, status, _ = os.wait4(pid, 0)
    except BaseException:
        kill_group(pid)
        with contextlib.suppress(ChildProcessError):
            os.wait4(pid, 0)
        raise
    finally:
        timer.cancel()
    leftover = kill_group(pid)
    try:
        seconds, code, maxrss = report.read_text().split()
    except (OSError, ValueError):
        return Outcome(0.0, os.waitstatus_to_exitcode(status) or -1, 0, leftover)
    finally:
        report.unlink(missing_ok=True)
    return Outcome(float(seconds), int(code), int(maxrss), leftover)


def kill_group(pgid: int) -> bool:
    """SIGKILL the group; True when some process was still in it."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def tail(path: Path) -> str:
    """The end of a tool's stderr, on one line."""
    try:
        text = path.read_text(errors="replace").strip()
    except OSError:
        return ""
    return " ".join(text[-STDERR_TAIL:].split())


def error_of(done: Outcome, stderr_path: Path) -> str | None:
    if done.status != 0:
        return f"exit status {done.status}: {tail(stderr_path)}"
    if done.leftover:
        return "processes of its tree outlived it"
    return None


@dataclass(frozen=True)
class Sample:
    """One timed run; ``tokens`` and ``connections`` are None where nothing counted them."""

    seconds: float
    maxrss_kib: int | None
    tokens: int | None
    connections: int | None
    error: str | None = None


def _span(values: Sequence[int]) -> str:
    if not values:
        return "-"
    low, high = min(values), max(values)
    return str(low) if low == high else f"{low}-{high}"


@dataclass
class Series:
    """The runs of one tool on one case; failed runs are kept apart from the figures."""

    samples: list[Sample] = field(default_factory=list)

    @property
    def good(self) -> list[Sample]:
        return [s for s in self.samples if s.error is None]

    @property
    def failures(self) -> list[str]:
        return [s.error for s in self.samples if s.error is not None]

    @property
    def median(self) -> float | None:
        good = self.good
        return statistics.median(s.seconds for s in good) if good else None

    @property
    def fastest(self) -> float | None:
        return min((s.seconds for s in self.good), default=None)

    @property
    def slowest(self) -> float | None:
        return max((s.seconds for s in self.good), default=None)

    @property
    def peak_mib(self) -> float | None:
        known = [s.maxrss_kib for s in self.good if s.maxrss_kib is not None]
        return max(known) / KIB if known else None

    @property
    def tokens(self) -> str:
        return _span([s.tokens for s in self.good if s.tokens is not None])

    @property
    def token_counts(self) -> set[int]:
        return {s.tokens for s in self.good if s.tokens is not None}

    @property
    def connections(self) -> str:
        return _span([s.connections for s in self.good if s.connections is not None])
