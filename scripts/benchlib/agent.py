"""The agent's path, measured the way an agent runs it: in one python process, already imported.

A Mesos agent is a long-lived process: it fetches ``docker-manifest://…`` first, then every
``docker-blob://…`` the manifest names at once, through one ``Fetcher``. Start-up is not part
of it. The child process here imports mesos_uri and anyio, then serves requests from the
benchmark on stdin, one JSON line each, inside one event loop; each request gets a fresh
``create()`` (so no token is cached from the request before) and is timed from its start to the
end of its last fetch. It answers on a pipe of its own, so nothing the library might print can
be mistaken for an answer. The benchmark alternates the agent's path with a ``docker://``
fetch of the same image in the same process, and counts token requests and connections around
each request.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from pathlib import Path
from types import TracebackType
from typing import Final

from benchlib.runner import RUN_TIMEOUT

AGENT_PATH: Final = "agent path"
DOCKER_PATH: Final = "docker://"

_CHILD: Final = """\
import json, os, sys, time
import anyio, anyio.to_thread
from mesos_uri.fetcher import create

async def agent_path(manifest, blobs, directory):
    fetcher = create()
    await fetcher.fetch(manifest, directory)
    async with anyio.create_task_group() as group:
        for blob in blobs:
            group.start_soon(fetcher.fetch, blob, directory)

async def docker_path(uri, directory):
    await create().fetch(uri, directory)

async def serve(answers):
    while line := await anyio.to_thread.run_sync(sys.stdin.readline):
        request = json.loads(line)
        started = time.perf_counter()
        error = None
        try:
            if request["path"] == "agent":
                await agent_path(request["manifest"], request["blobs"], request["directory"])
            else:
                await docker_path(request["uri"], request["directory"])
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        seconds = time.perf_counter() - started
        answers.write(json.dumps({"seconds": seconds, "error": error}) + "\\n")
        answers.flush()

anyio.run(serve, os.fdopen(int(sys.argv[1]), "w"))
"""


class AgentError(RuntimeError):
    """The agent process died or did not answer in time."""


class AgentProcess:
    """The child process above, started and stopped as a context manager."""

    def __init__(self, *, env: dict[str, str], stderr_path: Path) -> None:
        self._env = env
        self._stderr_path = stderr_path
        self._process: subprocess.Popen[str] | None = None
        self._answers = -1

    def __enter__(self) -> AgentProcess:
        read, write = os.pipe()
        try:
            with open(self._stderr_path, "w") as stderr:
                self._process = subprocess.Popen(
                    [sys.executable, "-c", _CHILD, str(write)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    stderr=stderr,
                    env=self._env,
                    pass_fds=(write,),
                    text=True,
                )
        except BaseException:
            os.close(read)
            raise
        finally:
            os.close(write)
        self._answers = read
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        process, self._process = self._process, None
        if process is not None:
            if process.stdin is not None:
                process.stdin.close()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._answers >= 0:
            os.close(self._answers)
            self._answers = -1

    def agent_path(
        self, manifest: str, blobs: list[str], directory: Path
    ) -> tuple[float, str | None]:
        """``docker-manifest`` then every ``docker-blob`` at once: (seconds, error or None)."""
        request = {"path": "agent", "manifest": manifest, "blobs": blobs}
        return self._ask({**request, "directory": str(directory)})

    def docker_path(self, uri: str, directory: Path) -> tuple[float, str | None]:
        return self._ask({"path": "docker", "uri": uri, "directory": str(directory)})

    def _ask(self, request: dict[str, object]) -> tuple[float, str | None]:
        process = self._process
        if process is None or process.stdin is None:
            raise AgentError("the agent process is not running")
        try:
            process.stdin.write(json.dumps(request) + "\n")
            process.stdin.flush()
        except OSError as exc:
            raise AgentError(f"the agent process is gone: {self._stderr_tail()}") from exc
        line = b""
        while not line.endswith(b"\n"):
            ready, _, _ = select.select([self._answers], [], [], RUN_TIMEOUT)
            chunk = os.read(self._answers, 4096) if ready else b""
            if not chunk:
                process.kill()
                raise AgentError(f"the agent process did not answer: {self._stderr_tail()}")
            line += chunk
        answer = json.loads(line)
        return float(answer["seconds"]), answer["error"]

    def _stderr_tail(self) -> str:
        try:
            return " ".join(self._stderr_path.read_text(errors="replace")[-600:].split())
        except OSError:
            return ""
