#!/usr/bin/env python3
"""A pull by oras-py (the ORAS project's Python client), the way its own ``pull`` goes.

``oras.provider.Registry`` keeps one ``requests`` session; its ``do_request`` answers a 401 by
asking the realm for an anonymous token (plain HTTP is allowed with ``insecure=True``) and sends
that token on every later request. ``pull`` fetches the manifest, then the layers one after
another with ``get_blob(..., stream=True)`` in 8 KiB chunks, and checks no digest; this script
does the same for the config and every layer, ``--threads`` at a time (1, as ``pull``, unless
told), and verifies each digest as the bytes are written. The manifest is asked for with
``do_request`` rather than ``get_manifest``, which parses it and drops the bytes to verify.
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor

import oras.provider  # type: ignore[import-untyped]
from pullcommon import MANIFEST_TYPES, arguments, blobs_of, save_blob, save_manifest

# What oras-py's download_blob reads at a time.
ORAS_CHUNK = 8192


def main() -> int:
    args = arguments("Pull an image with oras-py and verify every digest.")
    args.out.mkdir(parents=True, exist_ok=True)
    client = oras.provider.Registry(hostname=args.host, insecure=True)
    container = client.get_container(f"{args.host}/{args.repo}:{args.tag}")
    client.auth.load_configs(container)
    response = client.do_request(
        f"{client.prefix}://{container.manifest_url()}",
        "GET",
        headers={"Accept": ", ".join(MANIFEST_TYPES)},
    )
    response.raise_for_status()
    save_manifest(args.out, response.content, response.headers.get("Docker-Content-Digest"))

    def pull(digest: str) -> None:
        with client.get_blob(container, digest, stream=True) as blob:
            blob.raise_for_status()
            save_blob(args.out, digest, blob.iter_content(ORAS_CHUNK), verify=True)

    with ThreadPoolExecutor(max_workers=args.threads) as pool:
        for _ in pool.map(pull, blobs_of(response.content)):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
