"""``python -m mesos_uri.fetch [FLAGS] URI DIRECTORY`` (or ``mesos-uri-fetch``): one fetch.

The command line is read before anything heavy is imported, so that a mistake is reported at
once, and the process ends as soon as its output is flushed and its children are reaped.
"""

from __future__ import annotations

import signal

# ruff: noqa: E402  (the imports below come after these handlers on purpose)
# A SIGINT or SIGTERM while the modules below load is noted here, and main() acts on it,
# instead of meeting Python's defaults: a KeyboardInterrupt traceback from inside an import.
_EARLY_SIGNALS: list[int] = []
if __name__ == "__main__":
    for _signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(_signum, lambda signum, frame: _EARLY_SIGNALS.append(signum))

import argparse
import difflib
import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final, NoReturn

from mesos_uri._console import Interrupted, PrintableFormatter, Secrets, SignalGate, printable
from mesos_uri._docker import DEFAULT_CERTS_DIR, DEFAULT_REGISTRY_URL
from mesos_uri.errors import FetchError, UsageError

if TYPE_CHECKING:
    from mesos_uri._progress import TerminalProgress
    from mesos_uri._uri import URI
    from mesos_uri.fetcher import Fetcher, FetchSummary, Flags

__all__ = ["main", "run"]

EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
CONSOLE_SCRIPT: Final = "mesos-uri-fetch"
MODULE: Final = "python -m mesos_uri.fetch"

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

Every blob is verified against its digest before it appears as DIRECTORY/<digest>. Flags may be
spelt with dashes too (--docker-registry).

Exit status: 0 fetched; 1 the fetch failed (one line on stderr saying why); 2 the command line is
wrong; 130 or 143 interrupted by SIGINT or SIGTERM.
"""


def _program() -> str:
    """The name the user typed: the console script's, or the module's."""
    return CONSOLE_SCRIPT if os.path.basename(sys.argv[0]) == CONSOLE_SCRIPT else MODULE


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {printable(message)}\n")


class _Version(argparse.Action):
    """``--version``; the installed package is only asked when the flag is given."""

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        from importlib.metadata import version

        parser.exit(0, f"{parser.prog} {version('mesos_uri')}\n")


# Each flag's help, by its last name, in the order --help lists them.
_HELP: Final = {
    "uri": "what to fetch: a URI (forms above) or an image reference",
    "directory": "created if missing",
    "--docker_registry": "registry for image references that name none, as the agent's flag "
    f"(default {DEFAULT_REGISTRY_URL})",
    "--https_registry": "image references naming this registry use https on any port (the agent's "
    "rule is plain http for localhost and 127.0.0.1 on ports but 443) (repeatable)",
    "--docker_config": "default registry credentials: a docker config.json (or old .dockercfg) as "
    "a file, or inline when it starts with '{'",
    "--data": "per-fetch docker config, read from PATH or from stdin with '-'; its entries win "
    "over --docker_config (never pass secrets in argv: every user can read it)",
    "--docker_stall_timeout": "abort (and retry) a registry transfer that moves no bytes for this "
    "long; 0secs turns the check off (default 1mins, as the agent's --fetcher_stall_timeout)",
    "--curl_stall_timeout": "the same for http(s)/ftp(s) URIs (default 1mins)",
    "--connect_timeout": "give up connecting to a server after this long (default 30secs)",
    "--max_blob_size": "the most bytes a blob of undeclared size may have (a docker-blob URI; a "
    "schema 1 layer); a larger one is stopped (default: no limit)",
    "--retries": "retries of a transient failure (refused or dropped connection, stall, 408, 429, "
    "5xx) with exponential backoff; 0 means one attempt (default 4)",
    "--registry_mirror": "a mirror or pull-through cache, tried before the registry (repeatable, "
    "in order); without REGISTRY= it mirrors Docker Hub, as dockerd's registry-mirrors",
    "--cacert": "CA bundle to verify registries with (repeatable; per host, or for every host)",
    "--certs_dir": "Docker's per-host TLS directory: DIR/HOST[:PORT]/*.crt (CA), *.cert + *.key "
    f"(client certificate for mutual TLS) (default {DEFAULT_CERTS_DIR})",
    "--insecure_registry": "allow plain HTTP or unverified TLS for this registry only (repeatable)",
    "--platform": "platform to pick from an image index, e.g. linux/arm64 (default: this host's)",
    "--jobs": "blob downloads at once (default 8)",
    "--json": "print one JSON summary on stdout: image, platform, manifest digest, every blob "
    "with its size, time and whether it was downloaded or already present",
    "--quiet": "no progress display and no warnings: on success nothing is printed but what "
    "--json asks for",
    "--verbose": "log each step on stderr (-vv: each HTTP exchange too); credentials are never "
    "logged",
    "--version": "print the version and exit",
}


def _parser() -> _Parser:
    parser = _Parser(
        prog=_program(),
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )

    def add(*names: str, **options: Any) -> None:
        parser.add_argument(*names, help=_HELP[names[-1]], **options)

    repeatable: dict[str, Any] = {"action": "append", "default": []}
    add("uri", metavar="URI|IMAGE")
    add("directory", metavar="DIRECTORY")
    add("--docker_registry", metavar="URL", default=DEFAULT_REGISTRY_URL)
    add("--https_registry", metavar="HOST[:PORT]", **repeatable)
    add("--docker_config", metavar="JSON|PATH")
    add("--data", metavar="PATH|-")
    add("--docker_stall_timeout", metavar="DURATION")
    add("--curl_stall_timeout", metavar="DURATION")
    add("--connect_timeout", metavar="DURATION")
    add("--max_blob_size", metavar="BYTES", type=int)
    add("--retries", metavar="N", type=int)
    add("--registry_mirror", metavar="[REGISTRY=]URL", **repeatable)
    add("--cacert", metavar="[HOST[:PORT]=]PEM", **repeatable)
    add("--certs_dir", metavar="DIR", default=DEFAULT_CERTS_DIR)
    add("--insecure_registry", metavar="HOST[:PORT]", **repeatable)
    add("--platform", metavar="OS/ARCH[/VARIANT]")
    add("--jobs", metavar="N", type=int)
    add("--json", action="store_true")
    add("-q", "--quiet", action="store_true")
    add("-v", "--verbose", action="count", default=0)
    add("--version", action=_Version, nargs=0)
    return parser


def _spelled_out(parser: _Parser, argv: Sequence[str]) -> list[str]:
    """``argv`` with dashed flags (``--docker-registry``) spelt as declared, and an unknown flag
    refused with the closest known one, before argparse would take it for a positional."""
    known = [name for name in parser._option_string_actions if name.startswith("--")]
    spelled: list[str] = []
    for position, arg in enumerate(argv):
        if arg == "--":
            return spelled + list(argv[position:])
        name, equals, value = arg.partition("=")
        if arg.startswith("--") and name not in known:
            underscored = "--" + name[2:].replace("-", "_")
            if underscored not in known:
                close = difflib.get_close_matches(underscored, known, n=1, cutoff=0.6)
                hint = f": did you mean {close[0]}?" if close else " (--help lists them)"
                parser.error(f"unknown flag '{name}'{hint}")
            arg = underscored + equals + value
        spelled.append(arg)
    return spelled


def _start_early(args: argparse.Namespace) -> None:
    """Start the first request of a ``docker://`` or ``docker-manifest://`` fetch (its
    manifest's, which needs nothing but the URI) before the rest of the program is imported:
    on a real network that hides much of Python's start-up behind the round trips.

    Only where the plugin's first request is certain to be this one, with these headers: no
    credentials, no mirrors, no TLS settings of the operator's.
    """
    text = args.uri
    if (
        not text.startswith(("docker://", "docker-manifest://"))
        or args.docker_config is not None
        or args.data is not None
        or args.registry_mirror
        or args.insecure_registry
        or args.cacert
    ):
        return
    from mesos_uri import _curl as curl
    from mesos_uri._docker import ACCEPT, certs_subdir
    from mesos_uri._uri import manifest_url, parse_uri, registry_base
    from mesos_uri._urls import Origin

    try:
        uri = parse_uri(text)
        base = registry_base(uri)
        seconds = _seconds(args, "docker_stall_timeout", "connect_timeout")
    except ValueError:  # a UsageError too
        return  # the same mistake is reported where the command is checked
    if (
        base.startswith("https:")
        and args.certs_dir
        and os.path.exists(os.path.join(args.certs_dir, certs_subdir(Origin.of(base))))
    ):
        return
    curl.start_early(
        manifest_url(base, uri.path, uri.query or ""),
        headers={"Accept": ACCEPT},
        timeouts=curl.Timeouts(
            stall=seconds.get("docker_stall_timeout", curl.DEFAULT_STALL_TIMEOUT),
            connect=seconds.get("connect_timeout", curl.DEFAULT_CONNECT_TIMEOUT),
        ),
    )


def _seconds(args: argparse.Namespace, *names: str) -> dict[str, float]:
    """Those of the duration flags ``names`` that were given, in seconds."""
    from mesos_uri._flags import parse_duration

    given = {name: getattr(args, name) for name in names}
    return {name: parse_duration(text).seconds for name, text in given.items() if text is not None}


def _command(args: argparse.Namespace, secrets: Secrets) -> tuple[Flags, TerminalProgress | None]:
    """The options, validated once (a mistake is a UsageError: exit 2), and the display."""
    from mesos_uri._docker.endpoints import Endpoints, parse_host_value, parse_mirror
    from mesos_uri._docker.platform import parse_platform
    from mesos_uri._progress import terminal_progress
    from mesos_uri._retry import DEFAULT_RETRIES
    from mesos_uri.fetcher import DEFAULT_JOBS, Flags

    progress = terminal_progress(sys.stderr, quiet=args.quiet, verbose=args.verbose)
    if args.verbose and not args.quiet:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(PrintableFormatter(secrets))
        level = logging.DEBUG if args.verbose > 1 else logging.INFO
        logging.basicConfig(level=level, handlers=[handler])
    elif not args.quiet:
        logging.getLogger("mesos_uri").addHandler(_Warnings(secrets, progress))
    durations = _seconds(args, "docker_stall_timeout", "curl_stall_timeout", "connect_timeout")
    platform = parse_platform(args.platform) if args.platform else None
    endpoints = Endpoints(
        mirrors=tuple(parse_mirror(text) for text in args.registry_mirror),
        cacerts=tuple(parse_host_value(text, flag="cacert") for text in args.cacert),
        insecure=frozenset(args.insecure_registry),
        certs_dir=args.certs_dir or None,
    )
    flags = Flags(
        docker_config=args.docker_config,
        docker_registry=args.docker_registry,
        https_registries=frozenset(args.https_registry),
        max_blob_size=args.max_blob_size,
        platform=platform,
        endpoints=endpoints,
        observer=progress,
        # Not given: the options class's own defaults.
        jobs=DEFAULT_JOBS if args.jobs is None else args.jobs,
        retries=DEFAULT_RETRIES if args.retries is None else args.retries,
        **durations,
    )
    return flags, progress


def _read_data(value: str | None) -> str | None:
    """``--data``: a config file, or stdin for ``-``; read as ``--docker_config`` is."""
    if value is None:
        return None
    if value == "-":
        if sys.stdin is None:
            raise UsageError("--data -: stdin is closed; pass the docker config on it")
        try:
            return sys.stdin.buffer.read().decode()
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"Failed to read --data from stdin: {exc}") from exc
    from mesos_uri._flags import config_text

    return config_text(value)


class _Warnings(logging.Handler):
    """Warnings without ``-v``: one line each, above the progress display when there is one."""

    def __init__(self, secrets: Secrets, progress: TerminalProgress | None) -> None:
        super().__init__(logging.WARNING)
        self._secrets = secrets
        self._progress = progress

    def emit(self, record: logging.LogRecord) -> None:
        line = "warning: " + self._secrets.line(record.getMessage())
        if self._progress is not None:
            self._progress.note(line)
        else:
            print(line, file=sys.stderr)


async def _run(
    fetcher: Fetcher, uri: URI, directory: str, data: str | None, gate: SignalGate
) -> FetchSummary | FetchError | None:
    """The fetch's summary or failure; None when the first SIGINT/SIGTERM cancelled it."""
    import asyncio

    import anyio

    loop = asyncio.get_running_loop()
    # The cancel runs in a signal handler: call_soon_threadsafe also wakes a loop in select.
    with (
        anyio.CancelScope() as scope,
        gate.fetching(lambda: loop.call_soon_threadsafe(scope.cancel)),
    ):
        try:
            return await fetcher.fetch(uri, directory, data)
        except FetchError as exc:
            return exc
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """The CLI. It owns SIGINT and SIGTERM from its first line to the process's end: run it as
    the program, not from a process that has other plans for those signals."""
    gate = SignalGate()
    try:
        try:
            return _main(argv, gate)
        finally:
            gate.close()
            if "mesos_uri._curl" in sys.modules:
                sys.modules["mesos_uri._curl"].stop_early()
    except Interrupted as stop:  # came as _main returned: nothing was left to stop
        return _interrupted(stop.signum, None, Secrets(""))


def run() -> NoReturn:
    """The program's entry: :func:`main`, then an exit that skips the interpreter's teardown
    once the output is flushed (every child is reaped and every file closed by then)."""
    code = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or EXIT_FAILED  # the output could not be written: not a success
    os._exit(code)


def _main(argv: Sequence[str] | None, gate: SignalGate) -> int:
    uri: URI | None = None
    secrets = Secrets("")
    progress = None
    try:
        gate.install(_EARLY_SIGNALS)
        parser = _parser()
        args = parser.parse_args(_spelled_out(parser, sys.argv[1:] if argv is None else argv))
        if not args.directory:
            parser.error("DIRECTORY is empty: name a directory, '.' for the current one")
        _start_early(args)
        secrets = Secrets(args.uri)
        try:
            flags, progress = _command(args, secrets)
            from mesos_uri.fetcher import create

            fetcher = create(flags)
            uri = fetcher.parse(args.uri)
            fetcher.plugin_for(uri)  # an unknown scheme is a usage error, exit 2
            if uri.scheme == "docker-blob" and uri.query is not None:
                from mesos_uri._docker.digest import parse_digest

                parse_digest(uri.query)  # it names a file: a bad one is a usage error
            if progress is not None:
                progress.label = uri.path.strip("/") if uri.is_docker else uri.path

            data = _read_data(args.data)
            if data is not None and uri.is_docker:
                from mesos_uri._docker.plugin import parse_docker_config

                parse_docker_config(data)  # malformed: a usage error, as --docker_config's is
        except FetchError as exc:
            print(f"{parser.prog}: error: {secrets.line(str(exc))}", file=sys.stderr)
            return EXIT_USAGE
        import anyio

        outcome = anyio.run(_run, fetcher, uri, args.directory, data, gate, backend="asyncio")
    except Interrupted as stop:
        if progress is not None:
            progress.close(summary=False)
        return _interrupted(stop.signum, uri, secrets)
    if progress is not None:
        progress.close(summary=not isinstance(outcome, FetchError) and gate.first is None)
    if gate.first is not None:
        return _interrupted(gate.first, uri, secrets)
    if isinstance(outcome, FetchError):
        print(secrets.line(str(outcome)), file=sys.stderr)
        return EXIT_FAILED
    if args.json and outcome is not None:
        import json

        import attrs

        def masked(instance: object, field: object, value: Any) -> Any:
            return secrets.mask(value) if isinstance(value, str) else value

        print(json.dumps(attrs.asdict(outcome, value_serializer=masked), sort_keys=True))
    return 0


def _interrupted(signum: int, uri: URI | None, secrets: Secrets) -> int:
    who = f"{_program()}:" if uri is None else f"Fetching '{uri.redacted()}' was"
    message = f"{who} interrupted by {signal.Signals(signum).name}"
    print(secrets.line(message), file=sys.stderr)
    return 128 + signum


if __name__ == "__main__":
    run()
