"""README's library example runs as printed, against a real registry in place of its address."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from tests.support import Registry

from .conftest import Pusher
from .helpers import REPO_ROOT, assert_image

EXAMPLE_REGISTRY = "127.0.0.1:5000"


def library_example() -> str:
    readme = (REPO_ROOT / "README.md").read_text()
    [example] = re.findall(r"```python\n(.*?)```", readme, re.S)
    return str(example)


def test_the_readme_library_example_fetches_both_ways(
    registry: Registry, pushed: Pusher, tmp_path: Path
) -> None:
    image = pushed(registry, "library/busybox", "latest", layers=2)
    example = library_example()
    assert EXAMPLE_REGISTRY in example
    # Every path the example writes is one this test puts under tmp_path.
    assert sorted(re.findall(r'"/tmp/[^"]*"', example)) == ['"/tmp/bb"', '"/tmp/bb2"']
    code = (
        example.replace(EXAMPLE_REGISTRY, f"{registry.host}:{registry.port}")
        .replace('"/tmp/bb"', repr(str(tmp_path / "bb")))
        .replace('"/tmp/bb2"', repr(str(tmp_path / "bb2")))
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    # The example prints one line: the manifest's digest, then the list of the blobs' digests.
    [line] = done.stdout.splitlines()
    printed_digest, _, printed_blobs = line.partition(" ")
    assert printed_digest == image.manifest_digest
    assert ast.literal_eval(printed_blobs) == list(image.blobs)  # config first, then layers
    assert_image(tmp_path / "bb", image)
    assert_image(tmp_path / "bb2", image)
