"""What the integration tests check again and again: the CLI's outcome, the directory's layout."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from tests.support import PushedImage

REPO_ROOT = Path(__file__).resolve().parents[2]


def run_cli(
    *args: str,
    stdin: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """``python -m mesos_uri.fetch ARGS`` as a user types it; stdout/stderr captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "mesos_uri.fetch", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=REPO_ROOT,
        check=False,
    )


def docker_config(registry: str, user: str, password: str) -> str:
    """A docker ``config.json`` holding ``user:password`` for ``registry`` (``host:port``)."""
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    return json.dumps({"auths": {registry: {"auth": auth}}})


def assert_verified(directory: Path) -> None:
    """Every digest-named file holds exactly the bytes its name promises; no temp file is left."""
    for path in directory.iterdir():
        assert not path.name.startswith("."), f"left behind: {path.name}"
        if path.name.startswith("sha256:"):
            actual = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
            assert actual == path.name, f"{path.name} holds bytes of {actual}"


def assert_image(directory: Path, image: PushedImage, *, blobs: bool = True) -> None:
    """DIR holds the manifest as served and (optionally) every blob of ``image``, nothing else."""
    expected = {"manifest"} | (set(image.blobs) if blobs else set())
    assert {p.name for p in directory.iterdir()} == expected
    assert (directory / "manifest").read_bytes() == image.manifest
    for digest, data in image.blobs.items() if blobs else ():
        assert (directory / digest).read_bytes() == data
    assert_verified(directory)
