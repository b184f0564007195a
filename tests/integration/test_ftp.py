"""The curl plugin's ftp:// URIs against a real FTP server on loopback (pyftpdlib)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyftpdlib.authorizers import DummyAuthorizer  # type: ignore[import-untyped]
from pyftpdlib.handlers import FTPHandler  # type: ignore[import-untyped]
from pyftpdlib.servers import ThreadedFTPServer  # type: ignore[import-untyped]

from .helpers import run_cli

USER, PASSWORD = "mesos", "ftp-secret"


@pytest.fixture
def ftp_root(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    root = tmp_path / "ftp-root"
    root.mkdir()
    authorizer = DummyAuthorizer()
    authorizer.add_user(USER, PASSWORD, str(root), perm="elr")
    handler = type("Handler", (FTPHandler,), {"authorizer": authorizer, "banner": "test"})
    server = ThreadedFTPServer(("127.0.0.1", 0), handler)
    port = server.socket.getsockname()[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"handle_exit": False})
    thread.start()
    try:
        yield port, root
    finally:
        server.close_all()
        thread.join(timeout=10)


def test_ftp_uri_is_fetched_to_its_basename(ftp_root: tuple[int, Path], tmp_path: Path) -> None:
    port, root = ftp_root
    (root / "tool.tar.gz").write_bytes(b"\x1f\x8b" + bytes(range(256)) * 40)
    uri = f"ftp://{USER}:{PASSWORD}@127.0.0.1:{port}/tool.tar.gz"
    done = run_cli(uri, str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "tool.tar.gz").read_bytes() == (root / "tool.tar.gz").read_bytes()
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["tool.tar.gz"]


def test_missing_ftp_file_fails_cleanly(ftp_root: tuple[int, Path], tmp_path: Path) -> None:
    port, _ = ftp_root
    done = run_cli(f"ftp://{USER}:{PASSWORD}@127.0.0.1:{port}/nothing", str(tmp_path / "out"))
    assert done.returncode == 1
    assert "Failed to perform 'curl'" in done.stderr
    assert "(78)" in done.stderr
    assert PASSWORD not in done.stderr
    assert not (tmp_path / "out").exists()  # made for the fetch, removed when it failed
