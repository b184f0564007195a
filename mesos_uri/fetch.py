"""``python -m mesos_uri.fetch [FLAGS] URI DIRECTORY``: one fetch from the command line.

Exit status: 0 fetched; 1 the fetch failed (one line ``Failed to fetch '<URI>': <reason>`` on
stderr); 2 the command line is wrong; 130/143 interrupted by SIGINT/SIGTERM (curl children killed,
temporary files removed).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Final, NoReturn

import anyio
import attrs

from mesos_uri.curl import DEFAULT_CONNECT_TIMEOUT, DEFAULT_STALL_TIMEOUT
from mesos_uri.docker.digest import parse_digest
from mesos_uri.docker.endpoints import (
    DEFAULT_CERTS_DIR,
    Endpoints,
    parse_host_value,
    parse_mirror,
)
from mesos_uri.docker.platform import parse_platform
from mesos_uri.docker.reference import DEFAULT_REGISTRY_URL, normalize, validate_reference
from mesos_uri.errors import FetchError, UsageError
from mesos_uri.fetcher import DEFAULT_JOBS, Fetcher, FetchSummary, Flags, create
from mesos_uri.flags import parse_duration, world_readable
from mesos_uri.progress import TerminalProgress, terminal_progress
from mesos_uri.retry import DEFAULT_RETRIES
from mesos_uri.uri import URI, parse_uri

__all__ = ["main"]

EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2

_DESCRIPTION = """\
Fetch a URI into DIRECTORY, as the Apache Mesos URI fetcher does.

URI forms (or an image reference: busybox, ghcr.io/org/app:tag, registry:5000/team/app@sha256:...,
normalised as the Mesos agent does; --docker_registry names the registry when it has none):
  docker://HOST[:PORT]/REPO?TAG-OR-DIGEST[#http|https]   manifest and every blob
  docker-manifest://HOST[:PORT]/REPO?TAG-OR-DIGEST[#...]  DIRECTORY/manifest only
  docker-blob://HOST[:PORT]/REPO?DIGEST[#...]             DIRECTORY/<digest> only
  http(s)://HOST[:PORT]/PATH, ftp(s)://...                DIRECTORY/<basename>
  file:///PATH                                            DIRECTORY/<basename>
The fragment chooses the registry's transport (default https). An image index or manifest list is
resolved to the platform of --platform (default: this host's); DIRECTORY/index then holds the index.

Every blob is verified against its digest before it appears as DIRECTORY/<digest>.

Exit status: 0 fetched; 1 the fetch failed (one line on stderr saying why); 2 the command line is
wrong; 130 or 143 interrupted by SIGINT or SIGTERM.
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m mesos_uri.fetch",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument(
        "uri", metavar="URI|IMAGE", help="what to fetch: a URI (forms above) or an image reference"
    )
    parser.add_argument("directory", metavar="DIRECTORY", help="created if missing")
    parser.add_argument(
        "--docker_registry",
        metavar="URL",
        default=DEFAULT_REGISTRY_URL,
        help="registry for image references that name none, as the agent's flag "
        f"(default {DEFAULT_REGISTRY_URL})",
    )
    parser.add_argument(
        "--docker_config",
        metavar="JSON|/PATH|file://PATH",
        help="default registry credentials: a docker config.json (or old .dockercfg), inline "
        "or as a file",
    )
    parser.add_argument(
        "--data",
        metavar="PATH|-",
        help="per-fetch docker config, read from PATH or from stdin with '-'; its entries win "
        "over --docker_config (never pass secrets in argv: every user can read it)",
    )
    parser.add_argument(
        "--docker_stall_timeout",
        metavar="DURATION",
        help="abort a registry transfer that moves no bytes for this long, e.g. 30secs, 1mins",
    )
    parser.add_argument(
        "--curl_stall_timeout",
        metavar="DURATION",
        help="the same for http(s)/ftp(s) URIs",
    )
    parser.add_argument(
        "--connect_timeout",
        metavar="DURATION",
        help="give up connecting to a server after this long (default 30secs)",
    )
    parser.add_argument(
        "--retries",
        metavar="N",
        type=int,
        default=DEFAULT_RETRIES,
        help="retries of a transient failure (refused or dropped connection, stall, 408, 429, "
        f"5xx) with exponential backoff; 0 means one attempt (default {DEFAULT_RETRIES})",
    )
    parser.add_argument(
        "--registry_mirror",
        metavar="[REGISTRY=]URL",
        action="append",
        default=[],
        help="a mirror or pull-through cache, tried before the registry (repeatable, in order); "
        "without REGISTRY= it mirrors Docker Hub, as dockerd's registry-mirrors",
    )
    parser.add_argument(
        "--cacert",
        metavar="[HOST[:PORT]=]PEM",
        action="append",
        default=[],
        help="CA bundle to verify registries with (repeatable; per host, or for every host)",
    )
    parser.add_argument(
        "--certs_dir",
        metavar="DIR",
        default=DEFAULT_CERTS_DIR,
        help="Docker's per-host TLS directory: DIR/HOST[:PORT]/*.crt (CA), *.cert + *.key "
        f"(client certificate for mutual TLS) (default {DEFAULT_CERTS_DIR})",
    )
    parser.add_argument(
        "--insecure_registry",
        metavar="HOST[:PORT]",
        action="append",
        default=[],
        help="allow plain HTTP or unverified TLS for this registry only (repeatable)",
    )
    parser.add_argument(
        "--platform",
        metavar="OS/ARCH[/VARIANT]",
        help="platform to pick from an image index, e.g. linux/arm64 (default: this host's)",
    )
    parser.add_argument(
        "--jobs",
        metavar="N",
        type=int,
        default=DEFAULT_JOBS,
        help=f"blob downloads at once (default {DEFAULT_JOBS})",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON summary on stdout: image, platform, manifest digest, every blob "
        "with its size, time and whether it was downloaded or already present",
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="print nothing at all on success (no progress, no warnings)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log what happens on stderr (-vv for debug detail); credentials are never logged",
    )
    return parser


@attrs.frozen
class _Command:
    uri: URI
    directory: str
    flags: Flags
    data: str | None
    json: bool
    progress: TerminalProgress | None


def _warn_if_world_readable(path: str, warn: Callable[[str], None]) -> None:
    """Credentials files are used as they are, but a file others can read is said (issue #4)."""
    if world_readable(path):
        warn(f"'{path}' holds credentials and is readable by every user (chmod 600 it)")


def _read_data(value: str | None, warn: Callable[[str], None]) -> str | None:
    if value is None:
        return None
    if value == "-":
        return sys.stdin.read()
    _warn_if_world_readable(value, warn)
    try:
        with open(value, encoding="utf-8") as handle:
            return handle.read()
    except OSError as exc:
        raise UsageError(f"Failed to read '{value}': {exc.strerror or exc}") from exc


def _command(argv: Sequence[str] | None) -> _Command:
    args = _parser().parse_args(argv)
    _configure_logging(args.verbose, args.quiet)

    def warn(message: str) -> None:
        if not args.quiet:
            print(f"warning: {message}", file=sys.stderr)

    uri = _uri_or_reference(args.uri, args.docker_registry)
    if uri.scheme == "docker-blob" and uri.query is not None:
        parse_digest(uri.query)
    if args.jobs < 1:
        raise UsageError(f"--jobs must be at least 1, not {args.jobs}")
    if args.retries < 0:
        raise UsageError(f"--retries must be 0 or more, not {args.retries}")
    config = args.docker_config
    if config is not None and config.startswith(("/", "file://")):
        _warn_if_world_readable(config.removeprefix("file://"), warn)

    def seconds(value: str | None, default: float) -> float:
        return default if value is None else parse_duration(value).seconds

    label = uri.path.strip("/")
    progress = terminal_progress(sys.stderr, quiet=args.quiet, verbose=args.verbose, label=label)
    flags = Flags(
        docker_config=config,
        docker_stall_timeout=seconds(args.docker_stall_timeout, DEFAULT_STALL_TIMEOUT),
        curl_stall_timeout=seconds(args.curl_stall_timeout, DEFAULT_STALL_TIMEOUT),
        connect_timeout=seconds(args.connect_timeout, DEFAULT_CONNECT_TIMEOUT),
        jobs=args.jobs,
        retries=args.retries,
        observer=progress,
        endpoints=Endpoints(
            mirrors=tuple(parse_mirror(text) for text in args.registry_mirror),
            cacerts=tuple(parse_host_value(text, flag="cacert") for text in args.cacert),
            insecure=frozenset(host.lower() for host in args.insecure_registry),
            certs_dir=args.certs_dir or None,
        ),
        platform=parse_platform(args.platform) if args.platform else None,
    )
    data = _read_data(args.data, warn)
    return _Command(uri, args.directory, flags, data, args.json, progress)


def _uri_or_reference(text: str, default_registry: str) -> URI:
    """A URI as given, or an image reference normalised as the agent does (SPEC.md §1.3)."""
    if "://" in text:
        return parse_uri(text)
    reference = validate_reference(text)
    return attrs.evolve(normalize(reference, default_registry), scheme="docker")


def _configure_logging(verbose: int, quiet: bool) -> None:
    if verbose and not quiet:
        logging.basicConfig(
            level=logging.DEBUG if verbose > 1 else logging.INFO,
            format="%(asctime)s %(name)s %(levelname)s %(message)s",
            stream=sys.stderr,
        )


async def _run(fetcher: Fetcher, command: _Command) -> tuple[FetchSummary | None, int | None]:
    """Fetch, or stop cleanly on SIGINT/SIGTERM; returns (summary, signal number)."""
    received: list[int] = []
    summary: FetchSummary | None = None
    failure: FetchError | None = None
    async with anyio.create_task_group() as group:

        async def watch() -> None:
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for signum in signals:
                    received.append(signum)
                    group.cancel_scope.cancel()
                    return

        group.start_soon(watch)
        try:
            summary = await fetcher.fetch(command.uri, command.directory, command.data)
        except FetchError as exc:
            failure = exc
        group.cancel_scope.cancel()
    if received:
        return None, received[0]
    if failure is not None:
        raise failure
    return summary, None


def main(argv: Sequence[str] | None = None) -> int:
    try:
        command = _command(argv)
        fetcher = create(command.flags)
        fetcher.plugin_for(command.uri)  # an unknown scheme is a usage error, exit 2
    except FetchError as exc:
        print(f"python -m mesos_uri.fetch: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    try:
        summary, signum = anyio.run(_run, fetcher, command)
    except FetchError as exc:
        if command.progress is not None:
            command.progress.close(summary=False)
        print(_one_line(exc), file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        summary, signum = None, signal.SIGINT
    if command.progress is not None:
        command.progress.close(summary=signum is None)
    if signum is not None:
        name = signal.Signals(signum).name
        uri = command.uri.redacted()
        print(f"Fetching '{uri}' was interrupted by {name}", file=sys.stderr)
        return 128 + signum
    if command.json and summary is not None:
        print(json.dumps(attrs.asdict(summary), sort_keys=True))
    return 0


def _one_line(exc: BaseException) -> str:
    """Errors carry curl's stderr and decoder dumps; the CLI promises a single line."""
    return " ".join(line.strip() for line in str(exc).strip().splitlines() if line.strip())


if __name__ == "__main__":
    sys.exit(main())
