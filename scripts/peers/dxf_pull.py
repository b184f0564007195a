#!/usr/bin/env python3
"""A pull by python-dxf, the Python registry client people pick: one session, N threads.

python-dxf keeps one ``requests`` session (keep-alive connections) while its ``DXF`` object is
open as a context manager; the manifest comes first, which gets the token, then every blob is
pulled by a pool of ``--threads`` threads sharing the session and the token. ``pull_blob``
verifies each blob's digest itself while the bytes are read.

Token auth: python-dxf's own ``authenticate`` refuses a plain-HTTP registry and rewrites the
realm to https, and the benchmark's registries speak plain HTTP. The ``auth`` callback below
makes the same request ``authenticate`` makes (GET realm with service and scope, anonymous),
to the realm as the registry gave it, and hands the token to python-dxf.
"""

from __future__ import annotations

import re
import sys
from concurrent.futures import ThreadPoolExecutor

import requests
from dxf import DXF, DXFBase
from pullcommon import arguments, blobs_of, save_blob, save_manifest

# key="value" pairs of a Bearer challenge (RFC 6750); the registry quotes every value.
_PARAM = re.compile(r'(\w+)="([^"]*)"')


def token_auth(dxf: DXFBase, response: requests.Response) -> None:
    challenge = response.headers.get("www-authenticate", "")
    scheme, _, rest = challenge.partition(" ")
    if scheme.lower() != "bearer":
        raise SystemExit(f"dxf_pull: cannot answer the challenge {challenge!r}")
    params = dict(_PARAM.findall(rest))
    query = {k: params[k] for k in ("service", "scope") if k in params}
    answer = requests.get(params["realm"], params=query, timeout=60)
    answer.raise_for_status()
    body = answer.json()
    dxf.token = body.get("access_token") or body["token"]


def main() -> int:
    args = arguments("Pull an image with python-dxf and verify every digest.")
    args.out.mkdir(parents=True, exist_ok=True)
    with DXF(args.host, args.repo, auth=token_auth, insecure=True, timeout=60) as dxf:
        _, response = dxf.get_manifest_and_response(args.tag)
        save_manifest(args.out, response.content, response.headers.get("Docker-Content-Digest"))

        def pull(digest: str) -> None:
            chunks = dxf.pull_blob(digest)
            assert not isinstance(chunks, tuple)  # a tuple only when asked for the size too
            save_blob(args.out, digest, chunks, verify=False)

        with ThreadPoolExecutor(max_workers=args.threads) as pool:
            for _ in pool.map(pull, blobs_of(response.content)):
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
