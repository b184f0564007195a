#!/usr/bin/env python3
"""The main job, end to end: a throw-away registry on loopback, a small image pushed to it, and
``python -m mesos_uri.fetch`` pulling it into a directory that is then listed with sizes."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
from pathlib import Path

import repo_root  # noqa: F401  (puts the repository root on sys.path, for tests.support)

from tests.support import Registry, make_layer, push_image


def main() -> int:
    with Registry(auth="none") as registry, tempfile.TemporaryDirectory() as scratch:
        print(f"registry: {registry.url} (docker-registry, storage in {registry.storage_dir})")
        layers = [make_layer(seed, size) for seed, size in ((1, 64 * 1024), (2, 256 * 1024))]
        image = push_image(registry, "library/demo", "latest", layers)
        print(f"pushed:   library/demo:latest {image.manifest_digest} ({len(layers)} layers)")

        uri = registry.docker_uri("library/demo", "latest")
        target = Path(scratch) / "image"
        command = [sys.executable, "-m", "mesos_uri.fetch", uri, str(target)]
        print(f"fetching: python {' '.join(command[1:])}")
        done = subprocess.run(command, check=False)
        if done.returncode != 0:
            print(f"fetch failed with exit status {done.returncode}", file=sys.stderr)
            return done.returncode

        print(f"{target}:")
        for path in sorted(target.iterdir()):
            data = path.read_bytes()
            check = ""
            if path.name.startswith("sha256:"):
                ok = "sha256:" + hashlib.sha256(data).hexdigest() == path.name
                check = "  sha256 verified" if ok else "  SHA256 MISMATCH"
            print(f"  {len(data):>9}  {path.name}{check}")
    print("registry stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
