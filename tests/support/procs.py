"""The processes on this machine as /proc shows them: tests look for curls that outlived what
started them, for what a process group still holds, and for secrets in a command line."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import attrs


@attrs.frozen
class Proc:
    pid: int
    ppid: int
    pgrp: int
    comm: str
    start: int  # clock ticks after boot: tells a pid's process from a later one reusing it
    cmdline: bytes  # empty for a zombie

    @property
    def argv(self) -> list[str]:
        return [arg.decode(errors="replace") for arg in self.cmdline.split(b"\0") if arg]

    def environ(self) -> list[bytes]:
        """Its environment, or nothing once it has gone."""
        try:
            return Path(f"/proc/{self.pid}/environ").read_bytes().split(b"\0")
        except OSError:
            return []


def processes() -> list[Proc]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue  # exited meanwhile
        # "pid (comm) state ppid pgrp ... starttime(22nd) ...": comm may hold spaces and parens.
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        found.append(
            Proc(int(entry.name), int(fields[1]), int(fields[2]), comm, int(fields[19]), cmdline)
        )
    return found


def curl_procs(parents: Collection[int] | None = None) -> list[Proc]:
    """curl processes, zombies included, whose parent is one of ``parents`` (any, without)."""
    return [p for p in processes() if p.comm == "curl" and (parents is None or p.ppid in parents)]


def curl_pids(parents: Collection[int] | None = None) -> list[int]:
    return [p.pid for p in curl_procs(parents)]
