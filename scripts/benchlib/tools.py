"""The tools compared, as command lines, and what each must leave in its directory.

- ``mesos_uri``: ``python -m mesos_uri.fetch docker://HOST/REPO?TAG#http DIR``: manifest and every
  blob, each verified against its digest and fsync'ed before its final name;
- ``skopeo``: ``skopeo copy docker://HOST/REPO:TAG dir:DIR``, what a container engine runs;
- ``python-dxf``: ``peers/dxf_pull.py``, 8 threads over one keep-alive session, digests verified;
- ``oras-py``: ``peers/oras_pull.py``, one blob after another as its ``pull`` goes, verified;
- ``curl bound``: what raw curl does with no verification: one token request (token registry),
  the manifest, then ONE ``curl --parallel --parallel-immediate --parallel-max 8`` over every
  blob, no hashing, no fsync. The blob list is known in advance, so the bound does not even
  parse the manifest; every request it makes still crosses the network.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from benchlib.world import TAG, Endpoint, Image

SCRIPTS: Final = Path(__file__).resolve().parent.parent
TOOLS: Final = ("mesos_uri", "skopeo", "python-dxf", "oras-py", "curl bound")
PEERS: Final = ("skopeo", "python-dxf", "oras-py")
# The peers the targets name: "the best of skopeo and python-dxf".
TARGET_PEERS: Final = ("skopeo", "python-dxf")
# Parallel transfers of the curl bound and threads of python-dxf, as the targets set them.
PARALLEL: Final = 8
# oras-py's pull fetches one blob after another.
ORAS_THREADS: Final = 1
MANIFEST_ACCEPT: Final = (
    "application/vnd.docker.distribution.manifest.v2+json, "
    "application/vnd.oci.image.manifest.v1+json"
)


@dataclass(frozen=True)
class Toolbox:
    """What building a command needs besides the case: the peers' python, mesos_uri's --jobs."""

    peers_python: Path | None
    jobs: int | None = None

    def command(self, tool: str, endpoint: Endpoint, image: Image, out: Path) -> list[str]:
        if tool == "mesos_uri":
            return self.mesos_uri(endpoint, image, out)
        if tool == "skopeo":
            source = f"docker://{endpoint.host}/{image.repo}:{TAG}"
            options = ["-q", "--src-tls-verify=false", "--src-no-creds"]
            return ["skopeo", "copy", *options, source, f"dir:{out}"]
        if tool in ("python-dxf", "oras-py"):
            return self.peer(tool, endpoint, image, out)
        if tool == "curl bound":
            return curl_bound(endpoint, image, out)
        raise ValueError(f"unknown tool {tool!r}")

    def mesos_uri(self, endpoint: Endpoint, image: Image, out: Path) -> list[str]:
        uri = endpoint.docker_uri(image.repo, TAG)
        argv = [sys.executable, "-m", "mesos_uri.fetch", uri, str(out)]
        return argv if self.jobs is None else [*argv, f"--jobs={self.jobs}"]

    def peer(self, tool: str, endpoint: Endpoint, image: Image, out: Path) -> list[str]:
        if self.peers_python is None:
            raise ValueError("the peers' virtualenv is not there")
        script, threads = {
            "python-dxf": ("dxf_pull.py", PARALLEL),
            "oras-py": ("oras_pull.py", ORAS_THREADS),
        }[tool]
        return [
            str(self.peers_python),
            str(SCRIPTS / "peers" / script),
            f"--host={endpoint.host}",
            f"--repo={image.repo}",
            f"--tag={TAG}",
            f"--out={out}",
            f"--threads={threads}",
        ]


def curl_bound(endpoint: Endpoint, image: Image, out: Path) -> list[str]:
    """A bash script: a token (token registry), the manifest, one curl over every blob."""
    out.mkdir()
    listing = out.with_name(out.name + ".list")
    listing.write_text(
        "".join(
            f'url = "{endpoint.blob_url(image.repo, digest)}"\noutput = "{out / digest}"\n'
            for digest in image.blobs
        )
    )
    script = ["set -eo pipefail", "auth=()"]
    server = endpoint.token_server
    if server is not None:
        query = f"service={server.service}&scope=repository:{image.repo}:pull"
        script += [
            f"token=$(curl -sf {shlex.quote(f'{server.realm}?{query}')} "
            '| sed -E \'s/.*"token": *"([^"]+)".*/\\1/\')',
            'auth=(-H "Authorization: Bearer $token")',
        ]
    manifest = shlex.quote(endpoint.manifest_url(image.repo, TAG))
    script += [
        f'curl -sf "${{auth[@]}}" -H {shlex.quote("Accept: " + MANIFEST_ACCEPT)} '
        f"-o {shlex.quote(str(out / 'manifest'))} {manifest}",
        f"exec curl --parallel --parallel-immediate --parallel-max {PARALLEL} -sf "
        f'"${{auth[@]}}" -K {shlex.quote(str(listing))}',
    ]
    return ["bash", "-c", "\n".join(script)]


def stderr_of(out: Path) -> Path:
    """Where a run into ``out`` keeps the tool's stderr."""
    return out.with_name(out.name + ".stderr")


def leftovers(out: Path) -> list[Path]:
    """Files next to ``out`` that a run wrote and must remove: the bound's list, stderr."""
    return [out.with_name(out.name + ".list"), stderr_of(out)]


def check_result(tool: str, image: Image, out: Path) -> str | None:
    """None when ``out`` holds what the tool should have written, else what is wrong."""
    if tool == "skopeo":
        # skopeo's dir: transport names blobs by their hex digest, next to manifest.json, version
        wanted = {d.partition(":")[2]: size for d, size in image.blobs.items()}
        wanted["manifest.json"] = len(image.manifest)
        extra_ok = {"version"}
    else:
        wanted = {"manifest": len(image.manifest), **image.blobs}
        extra_ok = set()
    try:
        present = {p.name: p.stat().st_size for p in out.iterdir()}
    except OSError as exc:
        return f"no result directory: {exc}"
    for name, size in wanted.items():
        if present.get(name) != size:
            return f"{name}: expected {size} bytes, found {present.get(name)}"
    strays = set(present) - set(wanted) - extra_ok
    if strays:
        return f"unexpected files {sorted(strays)}"
    return None
