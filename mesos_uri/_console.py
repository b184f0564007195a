"""What the command line owns: the sanitised lines it prints, and SIGINT and SIGTERM.

Every line printed may hold text a registry chose (an error message, a header, a redirect target):
it goes through :func:`printable`, and the URI's password through :class:`Secrets`.
"""

from __future__ import annotations

import contextlib
import logging
import re
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from types import FrameType
from typing import Any, Final

__all__ = ["Interrupted", "PrintableFormatter", "Secrets", "SignalGate", "printable"]

# The longest line the CLI prints: any error of ours with an excerpt of a registry's message.
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


def printable(text: str, *, limit: int = MAX_LINE) -> str:
    """``text`` as one line that a terminal shows as it is: runs of whitespace become one space,
    other controls their ``\\xNN`` or ``\\uNNNN`` escape, and the line is cut to ``limit``."""
    shown = _CONTROL.sub(_escape, " ".join(text.split()))
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def _escape(match: re.Match[str]) -> str:
    code = ord(match[0])
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


class Secrets:
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


class Interrupted(BaseException):
    """The first SIGINT or SIGTERM, raised where the CLI stood before its fetch began."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class SignalGate:
    """SIGINT and SIGTERM for the CLI's whole life. The first one is raised as
    :class:`Interrupted` before the fetch, and cancels it during (its cleanup, curl children
    reaped and temporary files removed, runs to its end). Later ones, and any after the fetch, are
    ignored: a second Ctrl-C or a supervisor's repeated SIGTERM interrupts neither cleanup nor
    exit, and the exit status stays the first signal's. (Python's handler would raise wherever it
    lands, asyncio's gives way to the default once its receiver closes, and the interpreter's
    shutdown puts every default back but SIG_IGN.)"""

    def __init__(self) -> None:
        self.first: int | None = None
        self._cancel: Callable[[], object] | None = None
        self._ended = False
        # The wakeup fd's reading end: the signal numbers in the order they arrived.
        self._arrivals: socket.socket | None = None

    def install(self, early: Sequence[int] = ()) -> None:
        """Take SIGINT and SIGTERM over (only the main thread can; elsewhere the caller keeps its
        own); the first of ``early``, those that came before, is raised now."""
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
            raise Interrupted(early[0])

    def _received(self, signum: int, frame: FrameType | None) -> None:
        if self._ended:  # after the first signal too: it closed the gate
            return
        self.first = self._first_arrived(default=signum)
        self.close()
        if self._cancel is None:
            raise Interrupted(self.first)
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
        """While the fetch runs, the first signal calls ``cancel`` (which must be safe to call
        from a signal handler) instead of raising; once it has ended, signals are ignored."""
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
    """Drop Python's report (a traceback) of a signal that arrived just before its handler
    became SIG_IGN, as ignoring it was meant; report anything else."""
    error = unraisable.exc_value
    if not (isinstance(error, OSError) and "ignored due to race condition" in str(error)):
        sys.__unraisablehook__(unraisable)


class PrintableFormatter(logging.Formatter):
    """Log records as the CLI prints everything: one line each, password masked, printable."""

    def __init__(self, secrets: Secrets) -> None:
        super().__init__("%(asctime)s %(name)s %(levelname)s %(message)s")
        self._secrets = secrets

    def format(self, record: logging.LogRecord) -> str:
        return self._secrets.line(super().format(record))
