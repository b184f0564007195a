"""A TCP proxy on loopback that makes a registry look far away: 25 ms each way, costly connects.

Loopback has no round trips worth counting, so it hides what costs most on a real network: every
sequential request pays a round trip, every new connection one more. This proxy puts that back:

- every chunk read from one side is written to the other ``one_way`` seconds after it arrived,
  in order, so a request and its answer cost a full round trip (2 x ``one_way``);
- a new connection costs a TCP handshake: the client's first bytes are held until ``handshake``
  seconds after the connection was accepted, before their own ``one_way``. The client's
  ``connect()`` itself returns at once (the kernel accepts on loopback), so the round trip is
  charged to the first request instead, which is where a client waits for it;
- at most ``IN_FLIGHT_CHUNKS`` chunks are under way in each direction, a window as TCP has, so
  that a fast sender is held back instead of filling the proxy's memory.

It does not model bandwidth, loss or slow start: the links of the benchmark are short of
round trips, not of bytes. Each proxy counts the connections it accepted, so the benchmark can
show how many connections a tool opened for one fetch.

It runs as a child process of the benchmark (``LatencyProxy``), its own event loop on the
other core rather than threads in the benchmark's process. The child prints its port, then
answers ``count`` and ``reset`` on stdin, one line each, and exits at the end of stdin, so it
also goes away when the benchmark is killed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import subprocess
import sys
from pathlib import Path
from types import TracebackType
from typing import IO, Final

LOOPBACK: Final = "127.0.0.1"
# 25 ms each way: a registry in a neighbouring region; the round trip is 50 ms.
ONE_WAY: Final = 0.025
# A TCP handshake (SYN, SYN-ACK) is one round trip before the client may send anything.
HANDSHAKE: Final = 2 * ONE_WAY
# What one read takes from a socket; also the unit of the window below.
CHUNK: Final = 64 * 1024
# 64 chunks of 64 KiB in flight per direction: a 4 MiB window, what Linux's receive-buffer
# autotuning reaches on such a link, so throughput is bounded near 160 MiB/s per connection.
IN_FLIGHT_CHUNKS: Final = 64
# How long the proxy gets to exit once its stdin is closed, before it is killed.
STOP_GRACE: Final = 5.0


# --------------------------------------------------------------------------------------------
# The child process: the proxy itself


class _Counter:
    def __init__(self) -> None:
        self.accepted = 0


async def _carry(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    *,
    not_before: float,
    one_way: float,
) -> None:
    """Copy ``reader`` to ``writer``, each chunk ``one_way`` after it arrived (or ``not_before``).

    End of stream is carried like data, as a half-close, so that a client that shuts down its
    sending side still gets the answer.
    """
    loop = asyncio.get_running_loop()
    line: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(IN_FLIGHT_CHUNKS)

    async def receive() -> None:
        while True:
            data = await reader.read(CHUNK)
            await line.put((max(loop.time(), not_before) + one_way, data))
            if not data:
                return

    async def deliver() -> None:
        while True:
            due, data = await line.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()

    async with asyncio.TaskGroup() as group:
        group.create_task(receive())
        group.create_task(deliver())


async def _serve_one(
    client_reader: asyncio.StreamReader,
    client_writer: asyncio.StreamWriter,
    *,
    upstream: tuple[str, int],
    one_way: float,
    handshake: float,
    counter: _Counter,
) -> None:
    counter.accepted += 1
    accepted = asyncio.get_running_loop().time()
    writers = [client_writer]
    try:
        upstream_reader, upstream_writer = await asyncio.open_connection(*upstream)
        writers.append(upstream_writer)
        async with asyncio.TaskGroup() as group:
            group.create_task(
                _carry(
                    client_reader,
                    upstream_writer,
                    not_before=accepted + handshake,
                    one_way=one_way,
                )
            )
            group.create_task(
                _carry(upstream_reader, client_writer, not_before=0.0, one_way=one_way)
            )
    except* OSError:
        pass  # a side hung up or reset: the other is closed below, as a router would
    finally:
        for writer in writers:
            writer.close()


async def _control(counter: _Counter) -> None:
    """Answer ``count`` and ``reset`` lines on stdin; return at its end."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        command = line.decode().strip()
        if command == "count":
            print(counter.accepted, flush=True)
        elif command == "reset":
            counter.accepted = 0
            print("ok", flush=True)
        else:
            print(f"unknown command {command!r}", flush=True)


async def _run(upstream: tuple[str, int], one_way: float, handshake: float) -> None:
    counter = _Counter()
    open_connections: set[asyncio.Task[object]] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        open_connections.add(task)
        # Connections still open at exit are cancelled; that is the end of them, not an error.
        try:
            with contextlib.suppress(asyncio.CancelledError):
                await _serve_one(
                    reader,
                    writer,
                    upstream=upstream,
                    one_way=one_way,
                    handshake=handshake,
                    counter=counter,
                )
        finally:
            open_connections.discard(task)

    server = await asyncio.start_server(serve, LOOPBACK, 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    loop = asyncio.get_running_loop()
    stop = loop.create_task(_control(counter))
    loop.add_signal_handler(signal.SIGTERM, stop.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await stop
    server.close()
    # End the connections a client left open (keep-alive) here, while the loop still runs them.
    for task in open_connections:
        task.cancel()
    await asyncio.gather(*open_connections, return_exceptions=True)
    await server.wait_closed()


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or LOOPBACK, int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A TCP proxy that adds latency.")
    parser.add_argument("upstream", type=_address, metavar="HOST:PORT")
    parser.add_argument("--one-way", type=float, default=ONE_WAY, metavar="SECONDS")
    parser.add_argument("--handshake", type=float, default=HANDSHAKE, metavar="SECONDS")
    args = parser.parse_args(argv)
    asyncio.run(_run(args.upstream, args.one_way, args.handshake))
    return 0


# --------------------------------------------------------------------------------------------
# The benchmark's side: one proxy as a context manager


class ProxyError(RuntimeError):
    """The proxy did not start, or stopped answering."""


class LatencyProxy:
    """A proxy child process in front of ``127.0.0.1:upstream_port``; ``port`` is its own."""

    def __init__(
        self, upstream_port: int, *, one_way: float = ONE_WAY, handshake: float = HANDSHAKE
    ) -> None:
        self.upstream_port = upstream_port
        self.one_way = one_way
        self.handshake = handshake
        self._process: subprocess.Popen[str] | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise ProxyError("the proxy is not running")
        return self._port

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> LatencyProxy:
        argv = [
            sys.executable,
            "-I",
            str(Path(__file__)),
            f"{LOOPBACK}:{self.upstream_port}",
            f"--one-way={self.one_way}",
            f"--handshake={self.handshake}",
        ]
        self._process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        try:
            self._port = int(self._ask(None))
        except (ProxyError, ValueError) as exc:
            self.stop()
            raise ProxyError(f"the latency proxy did not start: {exc}") from exc
        return self

    def stop(self) -> None:
        process, self._process = self._process, None
        self._port = None
        if process is None:
            return
        with contextlib.suppress(OSError):
            assert process.stdin is not None
            process.stdin.close()
        try:
            process.wait(STOP_GRACE)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()

    def connections(self) -> int:
        """Connections accepted since the last ``reset``."""
        return int(self._ask("count"))

    def reset(self) -> None:
        self._ask("reset")

    def _ask(self, command: str | None) -> str:
        process = self._process
        if process is None or process.stdin is None or process.stdout is None:
            raise ProxyError("the proxy is not running")
        try:
            if command is not None:
                _write_line(process.stdin, command)
            answer = process.stdout.readline()
        except OSError as exc:
            raise ProxyError(f"the proxy stopped: {exc}") from exc
        if not answer:
            raise ProxyError(f"the proxy exited with status {process.poll()}")
        return answer.strip()

    def __enter__(self) -> LatencyProxy:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _write_line(stream: IO[str], line: str) -> None:
    stream.write(line + "\n")
    stream.flush()


if __name__ == "__main__":
    sys.exit(main())
