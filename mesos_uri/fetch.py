"""``python -m mesos_uri.fetch [FLAGS] URI DIRECTORY``: one fetch from the command line.

Exit status: 0 fetched; 1 the fetch failed (one line ``Failed to fetch '<URI>': <reason>`` on
stderr); 2 the command line is wrong; 130/143 interrupted by SIGINT/SIGTERM (curl children killed,
temporary files removed).

Everything printed may hold text a registry chose (an error message, a header, a redirect target),
so every line goes through :func:`printable` on its way out, and the URI's password through
:class:`_Secrets`.
"""

from __future__ import annotations

import signal

# ruff: noqa: E402  (the imports below come after these handlers on purpose)
# ``python -m mesos_uri.fetch`` spends a quarter of a second importing what follows. A SIGINT or
# SIGTERM meanwhile is noted here, and main() acts on it, instead of meeting Python's defaults:
# a KeyboardInterrupt traceback from inside an import, or an end without a word.
_EARLY_SIGNALS: list[int] = []
if __name__ == "__main__":
    for _signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(_signum, lambda signum, frame: _EARLY_SIGNALS.append(signum))

import argparse
import asyncio
import contextlib
import json
import logging
import re
import socket
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from types import FrameType
from typing import Any, Final, NoReturn

import anyio
import attrs

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

__all__ = ["main", "printable"]

EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
PROGRAM: Final = "python -m mesos_uri.fetch"

# The longest line the CLI prints: room for any error of ours with its URI and a short excerpt
# of a registry's own message; a hostile registry's kilobytes of text end here.
MAX_LINE: Final = 1000
# Stands for a password in what the CLI prints.
_MASK: Final = "***"
# A password shorter than this is masked only where it stands in a URI's userinfo: masking every
# occurrence of a letter or two would make the text unreadable, not safer.
_MIN_BARE_SECRET: Final = 4
# The password of a ``scheme://user:password@host`` argument, found before any parsing.
_USERINFO_PASSWORD: Final = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#@:]*:([^/?#]*)@")
# Characters a terminal acts on instead of showing: C0 (ESC starts every escape sequence), DEL,
# C1, and the bidirectional overrides that reorder what is shown.
_CONTROL: Final = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)

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


def printable(text: str, *, limit: int = MAX_LINE) -> str:
    """``text`` as one line that a terminal shows as it is: every run of whitespace (line
    breaks and tabs included) becomes one space, every other control character (ESC, and so
    every escape sequence, BEL, NUL, DEL, C1, bidirectional overrides) is written as its
    ``\\xNN`` or ``\\uNNNN`` escape, and the line is cut to ``limit`` characters."""
    one_line = " ".join(text.split())
    shown = _CONTROL.sub(_escape, one_line)
    if len(shown) > limit:
        shown = shown[: limit - 3] + "..."
    return shown


def _escape(match: re.Match[str]) -> str:
    code = ord(match[0])
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


class _Secrets:
    """The URI's password, masked in everything the CLI prints (errors, logs, ``--json``)."""

    def __init__(self, uri_text: str) -> None:
        match = _USERINFO_PASSWORD.match(uri_text)
        self.password = match[1] if match else ""

    def mask(self, text: str) -> str:
        if not self.password:
            return text
        text = text.replace(f":{self.password}@", f":{_MASK}@")
        if len(self.password) >= _MIN_BARE_SECRET:
            text = text.replace(self.password, _MASK)
        return text

    def line(self, text: str) -> str:
        """``text`` masked and :func:`printable`: what may be printed."""
        return printable(self.mask(text))


class _Interrupted(BaseException):
    """The first SIGINT or SIGTERM, raised where the CLI stood before its fetch began."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class _SignalGate:
    """SIGINT and SIGTERM for the CLI's whole life.

    The first one stops the CLI: before the fetch it is raised as :class:`_Interrupted` where the
    CLI stands; during the fetch it cancels the fetch, whose cleanup (curl children killed and
    reaped, temporary files removed) then runs to its end. Every later one is ignored, so that
    a second Ctrl-C or a supervisor's repeated SIGTERM can interrupt neither that cleanup nor the
    exit, and the exit status stays the first signal's. Once the fetch has ended, signals are
    ignored too. (Python's own handler would raise KeyboardInterrupt wherever it lands, asyncio's
    would give way to the default as soon as its receiver closed, and the interpreter's shutdown
    puts every default back but SIG_IGN.)
    """

    def __init__(self) -> None:
        self.first: int | None = None
        self._cancel: Callable[[], object] | None = None
        self._ended = False
        # The wakeup fd's reading end: the signal numbers in the order they arrived.
        self._arrivals: socket.socket | None = None

    def install(self, early: Sequence[int] = ()) -> None:
        """Take SIGINT and SIGTERM over; ``early`` are those that came before (the first of
        them is raised now). Only the main thread may set handlers: elsewhere the caller keeps
        its own."""
        if _in_main_thread():
            self._arrivals, wakeup = socket.socketpair()
            for end in (self._arrivals, wakeup):
                end.setblocking(False)
            signal.set_wakeup_fd(wakeup.detach(), warn_on_full_buffer=False)
            sys.unraisablehook = _quiet_signal_races
            for signum in _SIGNALS:
                signal.signal(signum, self._received)
        if early and self.first is None:
            self.first = early[0]
            self.close()
            raise _Interrupted(early[0])

    def _received(self, signum: int, frame: FrameType | None) -> None:
        if self.first is not None or self._ended:
            return
        self.first = self._first_arrived(default=signum)
        self.close()
        if self._cancel is None:
            raise _Interrupted(self.first)
        self._cancel()

    def _first_arrived(self, *, default: int) -> int:
        """Python runs the handlers of signals that are pending together in numeric order
        (SIGINT before SIGTERM); the wakeup fd has them in the order they came."""
        try:
            arrived = self._arrivals.recv(4096) if self._arrivals is not None else b""
        except OSError:  # nothing to read
            arrived = b""
        return next((byte for byte in arrived if byte in _SIGNALS), default)

    @contextlib.contextmanager
    def fetching(self, cancel: Callable[[], object]) -> Iterator[None]:
        """While the fetch runs, the first signal calls ``cancel``, which must be safe to call
        from a signal handler, and raises nothing; once it has ended, signals are ignored."""
        self._cancel = cancel
        try:
            yield
        finally:
            self.close()

    def close(self) -> None:
        """Ignore both signals from now on."""
        self._ended = True
        if _in_main_thread():
            for signum in _SIGNALS:
                signal.signal(signum, signal.SIG_IGN)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _quiet_signal_races(unraisable: Any) -> None:
    """Python's report of a signal that arrived just before its handler became SIG_IGN: the
    ignoring was meant, and the report (a traceback) is noise; anything else is reported."""
    error = unraisable.exc_value
    if isinstance(error, OSError) and "ignored due to race condition" in str(error):
        return
    sys.__unraisablehook__(unraisable)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {printable(message)}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROGRAM,
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
    secrets: _Secrets


def _warn_if_world_readable(path: str, warn: Callable[[str], None]) -> None:
    """A credentials file is used as it is, but one that every user can read gets a warning."""
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


def _command(args: argparse.Namespace, secrets: _Secrets) -> _Command:
    _configure_logging(args.verbose, args.quiet, secrets)

    def warn(message: str) -> None:
        if not args.quiet:
            print(f"warning: {secrets.line(message)}", file=sys.stderr)

    if not args.directory:
        raise UsageError("DIRECTORY is empty: name a directory, '.' for the current one")
    uri = _uri_or_reference(args.uri, args.docker_registry)
    if uri.scheme == "docker-blob" and uri.query is not None:
        parse_digest(uri.query)
    if args.jobs < 1:
        raise UsageError(f"--jobs must be at least 1, not {args.jobs}")
    if args.retries < 0:
        raise UsageError(f"--retries must be 0 or more, not {args.retries}")
    config = args.docker_config
    if config is not None and not config.lstrip().startswith("{"):
        _warn_if_world_readable(config.removeprefix("file://"), warn)

    label = uri.path.strip("/")
    progress = terminal_progress(sys.stderr, quiet=args.quiet, verbose=args.verbose, label=label)
    flags = Flags(
        docker_config=config,
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
    # The durations given; one not given keeps its default, which Flags owns.
    durations: dict[str, Any] = {
        name: parse_duration(text).seconds
        for name, text in (
            ("docker_stall_timeout", args.docker_stall_timeout),
            ("curl_stall_timeout", args.curl_stall_timeout),
            ("connect_timeout", args.connect_timeout),
        )
        if text is not None
    }
    flags = attrs.evolve(flags, **durations)
    data = _read_data(args.data, warn)
    return _Command(uri, args.directory, flags, data, args.json, progress, secrets)


def _uri_or_reference(text: str, default_registry: str) -> URI:
    """A URI as given, or an image reference normalised as the Mesos agent normalises it (in
    ``default_registry`` when it names no registry of its own)."""
    if "://" in text:
        return parse_uri(text)
    reference = validate_reference(text)
    return attrs.evolve(normalize(reference, default_registry), scheme="docker")


class _PrintableFormatter(logging.Formatter):
    """Log records as the CLI prints everything: one line each, password masked, printable."""

    def __init__(self, secrets: _Secrets) -> None:
        super().__init__("%(asctime)s %(name)s %(levelname)s %(message)s")
        self._secrets = secrets

    def format(self, record: logging.LogRecord) -> str:
        return self._secrets.line(super().format(record))


def _configure_logging(verbose: int, quiet: bool, secrets: _Secrets) -> None:
    if verbose and not quiet:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_PrintableFormatter(secrets))
        logging.basicConfig(
            level=logging.DEBUG if verbose > 1 else logging.INFO, handlers=[handler]
        )


async def _run(
    fetcher: Fetcher, command: _Command, gate: _SignalGate
) -> tuple[FetchSummary | None, FetchError | None]:
    """The fetch, cancelled by the first SIGINT/SIGTERM; (summary, failure), both None when
    it was cancelled."""
    loop = asyncio.get_running_loop()
    summary: FetchSummary | None = None
    failure: FetchError | None = None
    with anyio.CancelScope() as scope:
        # Called in a signal handler: call_soon_threadsafe also wakes a loop blocked in select.
        with gate.fetching(lambda: loop.call_soon_threadsafe(scope.cancel)):
            try:
                summary = await fetcher.fetch(command.uri, command.directory, command.data)
            except FetchError as exc:
                failure = exc
    return summary, failure


def main(argv: Sequence[str] | None = None) -> int:
    """The CLI. It owns SIGINT and SIGTERM from its first line to the process's end: run it as
    the program, not from a process that has other plans for those signals."""
    gate = _SignalGate()
    try:
        try:
            return _main(argv, gate)
        finally:
            gate.close()
    except _Interrupted as stop:  # came as _main returned: nothing was left to stop
        return _interrupted(stop.signum, None, _Secrets(""))


def _main(argv: Sequence[str] | None, gate: _SignalGate) -> int:
    uri: URI | None = None
    secrets = _Secrets("")
    try:
        gate.install(_EARLY_SIGNALS)
        args = _parser().parse_args(argv)
        secrets = _Secrets(args.uri)
        try:
            command = _command(args, secrets)
            uri = command.uri
            fetcher = create(command.flags)
            fetcher.plugin_for(command.uri)  # an unknown scheme is a usage error, exit 2
        except FetchError as exc:
            print(f"{PROGRAM}: error: {secrets.line(str(exc))}", file=sys.stderr)
            return EXIT_USAGE
        summary, failure = anyio.run(_run, fetcher, command, gate, backend="asyncio")
    except _Interrupted as stop:
        return _interrupted(stop.signum, uri, secrets)
    if command.progress is not None:
        command.progress.close(summary=failure is None and gate.first is None)
    if gate.first is not None:
        return _interrupted(gate.first, uri, secrets)
    if failure is not None:
        print(secrets.line(str(failure)), file=sys.stderr)
        return EXIT_FAILED
    if command.json and summary is not None:
        print(json.dumps(_masked(attrs.asdict(summary), secrets), sort_keys=True))
    return 0


def _interrupted(signum: int, uri: URI | None, secrets: _Secrets) -> int:
    name = signal.Signals(signum).name
    if uri is None:
        message = f"{PROGRAM}: interrupted by {name}"
    else:
        message = f"Fetching '{uri.redacted()}' was interrupted by {name}"
    print(secrets.line(message), file=sys.stderr)
    return 128 + signum


def _masked(value: Any, secrets: _Secrets) -> Any:
    """``value`` (what ``attrs.asdict`` gives) with the password masked in every string."""
    if isinstance(value, str):
        return secrets.mask(value)
    if isinstance(value, dict):
        return {key: _masked(item, secrets) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(item, secrets) for item in value]
    return value


if __name__ == "__main__":
    sys.exit(main())
