"""Listeners that are not HTTP servers: a canary that records what reaches it, and a blackhole
that no connection gets through to."""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from typing import Final, cast


class Canary:
    """A TCP listener on another loopback port standing for any other local service (a Redis,
    a memcached, an FTP server): it accepts connections, records every byte it receives, and
    never sends one. A test asserts it saw no connection: then nothing reached it, through
    any redirect or any URL."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.setblocking(False)
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._connections: list[bytearray] = []
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ, None)
        self._selector.register(self._wake_reader, selectors.EVENT_READ, None)
        self._open: list[socket.socket] = []
        self._thread = threading.Thread(target=self._run, name="canary")
        self._thread.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, scheme: str, path: str = "/", *, host: str = "127.0.0.1") -> str:
        return f"{scheme}://{host}:{self.port}{path}"

    @property
    def connections(self) -> int:
        """Connections accepted so far."""
        with self._lock:
            return len(self._connections)

    @property
    def received(self) -> bytes:
        """Every byte received so far, connection after connection."""
        with self._lock:
            return b"".join(bytes(data) for data in self._connections)

    def _run(self) -> None:
        while True:
            for key, _ in self._selector.select():
                if key.fileobj is self._wake_reader:
                    return
                if key.fileobj is self._listener:
                    self._accept()
                else:
                    self._read(cast(socket.socket, key.fileobj), key.data)

    def _accept(self) -> None:
        with contextlib.suppress(BlockingIOError):
            connection, _ = self._listener.accept()
            connection.setblocking(False)
            data = bytearray()
            with self._lock:
                self._connections.append(data)
            self._open.append(connection)
            self._selector.register(connection, selectors.EVENT_READ, data)

    def _read(self, connection: socket.socket, data: bytearray) -> None:
        try:
            chunk = connection.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if chunk:
            with self._lock:
                data.extend(chunk)
            return
        self._selector.unregister(connection)
        connection.close()

    def close(self) -> None:
        self._wake_writer.send(b"x")
        self._thread.join()
        for connection in self._open:
            connection.close()
        for sock in (self._listener, self._wake_reader, self._wake_writer):
            sock.close()
        self._selector.close()

    def __enter__(self) -> Canary:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# Connections that fill a listen(0) queue; Linux keeps one more than the backlog, the rest spare.
_BACKLOG_FILLERS: Final = 4


class Blackhole:
    """A loopback port that no connection attempt gets through to: it listens, but its accept
    queue is full and never drained, so the kernel drops every new SYN (a host that is down
    behind a firewall looks the same). Only a connect timeout ends an attempt."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=0)
        self.port: int = self._listener.getsockname()[1]
        self._fillers: list[socket.socket] = []
        for _ in range(_BACKLOG_FILLERS):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", self.port))
            self._fillers.append(filler)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def close(self) -> None:
        for sock in [*self._fillers, self._listener]:
            sock.close()

    def __enter__(self) -> Blackhole:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
