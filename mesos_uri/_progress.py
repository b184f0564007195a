"""What a person at a terminal sees while an image downloads.

The plugin reports each blob to a ``BlobObserver``. The CLI's, ``TerminalProgress``, redraws a
live area at the bottom of the terminal in place (an overall line, then as many transfers as
fit); ``close`` replaces it with a summary line, or with nothing when an error is printed.

It stays in place because the cursor rests at the end of its last line, no line is as wide as
the terminal and there are never more lines than rows: a redraw moves up the lines it drew,
erases to the end of the screen and writes the new picture. The size is read at every redraw (a
terminal that re-wraps drawn lines when made narrower still breaks the count: lines are kept
short). Everything drawn is printable ASCII, the only text whose width all terminals agree on.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from typing import Final, Protocol, TextIO

import attrs

__all__ = ["BlobObserver", "TerminalProgress", "terminal_progress"]

# Redraws per second at most: enough to look alive, cheap on 40 fast layers.
_REDRAW_INTERVAL: Final = 0.2
# Rows left free: on a full screen the live area scrolls up, and this keeps the command in view.
_MARGIN_ROWS: Final = 1
# What a stream that cannot say its size is taken to be: the classic terminal.
_FALLBACK_COLUMNS: Final = 80
_FALLBACK_ROWS: Final = 24
# "sha256:" and 12 hexadecimal digits: the length ``docker pull`` shows a layer by.
_DIGEST_SHOWN: Final = 19
_UNITS: Final = ("KiB", "MiB", "GiB", "TiB")

# The only escape sequences written: cursor up N lines, erase from the cursor to the screen's end.
_CURSOR_UP: Final = "\x1b[{}A"
_ERASE_DOWN: Final = "\x1b[J"

_NOT_PRINTABLE: Final = re.compile(r"[^\x20-\x7e]")


class BlobObserver(Protocol):
    """Called from the fetch's event loop. ``received`` (a running total) may come before
    ``started`` or not at all; ``finished`` comes without ``started`` for a blob present."""

    def started(self, digest: str, size: int) -> None: ...

    def received(self, digest: str, total: int) -> None: ...

    def finished(self, digest: str, *, downloaded: bool) -> None: ...


def terminal_progress(stream: TextIO, *, quiet: bool, verbose: int) -> TerminalProgress | None:
    """The display for ``stream``, or ``None``: only a terminal gets one (a file or a pipe would
    keep every redraw), and neither quiet nor verbose logging (its lines would be overwritten)."""
    if quiet or verbose or not stream.isatty():
        return None
    return TerminalProgress(stream)


@attrs.define
class _Blob:
    seen: float
    size: int = -1
    received: int = 0
    done: bool = False
    downloaded: bool = False


class TerminalProgress:
    """Once closed, or once the stream has failed, it ignores every call: a display must never
    be why a fetch fails. Tests pass a ``clock`` that steps time past the redraw interval."""

    def __init__(
        self, stream: TextIO, *, label: str = "", clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._stream = stream
        self.label = label  # what the summary names: the repository or the file, once known
        self._clock = clock
        self._created = clock()
        self._blobs: dict[str, _Blob] = {}
        self._drawn = 0
        self._last_draw: float | None = None
        self._closed = False

    def started(self, digest: str, size: int) -> None:
        self._blob(digest).size = size
        self._draw()

    def received(self, digest: str, total: int) -> None:
        self._blob(digest).received = total
        self._draw()

    def finished(self, digest: str, *, downloaded: bool) -> None:
        blob = self._blob(digest)
        blob.done, blob.downloaded = True, downloaded
        if downloaded and blob.size > blob.received:
            # Verified means all of it arrived, whether or not each chunk was reported.
            blob.received = blob.size
        self._draw()

    def note(self, line: str) -> None:
        """Write ``line`` (a warning) above the live area, which is drawn again after it."""
        if self._closed:
            return
        self._write(self._erase() + self._fit(line, self._size()[0]) + "\n")
        self._last_draw = None
        self._draw()

    def close(self, *, summary: bool = True) -> None:
        """Erase the live area; write the summary line, if there were blobs, unless told not to
        (a failed fetch)."""
        if self._closed:
            return
        text = self._erase()
        if summary and self._blobs:
            text += self._fit(self._summary(), self._size()[0]) + "\n"
        self._write(text)
        self._closed = True

    def _blob(self, digest: str) -> _Blob:
        return self._blobs.setdefault(digest, _Blob(self._clock()))

    def _draw(self) -> None:
        now = self._clock()
        if self._closed or (
            self._last_draw is not None and now - self._last_draw < _REDRAW_INTERVAL
        ):
            return
        self._last_draw = now
        columns, rows = self._size()
        lines = [self._fit(line, columns) for line in self._picture(now, rows)]
        self._write(self._erase() + "\n".join(lines))
        self._drawn = len(lines)

    def _erase(self) -> str:
        """Back to the start of the live area's first line, and everything below erased."""
        if not self._drawn:
            return ""
        up = _CURSOR_UP.format(self._drawn - 1) if self._drawn > 1 else ""
        self._drawn = 0
        return "\r" + up + _ERASE_DOWN

    def _picture(self, now: float, rows: int) -> list[str]:
        room = max(rows - _MARGIN_ROWS, 1)
        active = [(digest, blob) for digest, blob in self._blobs.items() if not blob.done]
        shown = active if len(active) < room else active[: max(room - 2, 0)]
        lines = [self._overall(now)]
        lines += [_transfer_line(digest, blob, now) for digest, blob in shown]
        if len(shown) < len(active) and len(lines) < room:
            lines.append(f"... and {len(active) - len(shown)} more")
        return lines

    def _overall(self, now: float) -> str:
        blobs = self._blobs.values()
        done = sum(blob.done for blob in blobs)
        received = sum(blob.received for blob in blobs)
        known = sum(blob.size for blob in blobs if blob.size >= 0)
        first = next(iter(blobs), None)  # the first seen: a dict keeps its order
        since = now - first.seen if first is not None else 0.0
        return (
            f"{done}/{len(self._blobs)} blobs  {_bytes(received)} of {_bytes(known)}"
            f"  {_rate(received, since)}"
        )

    def _summary(self) -> str:
        blobs = self._blobs.values()
        downloaded = sum(blob.received for blob in blobs)
        present = sum(blob.done and not blob.downloaded for blob in blobs)
        count = len(self._blobs)
        text = f"{count} blob{'' if count == 1 else 's'}, {_bytes(downloaded)}"
        text += f" in {self._clock() - self._created:.1f} s"
        if present:
            text += f" ({present} already present)"
        return f"{self.label}: {text}" if self.label else text

    def _size(self) -> tuple[int, int]:
        """The terminal's (columns, rows) now; a stream that cannot say gets the classic size."""
        try:
            size = os.get_terminal_size(self._stream.fileno())
        except (AttributeError, OSError, ValueError):
            return _FALLBACK_COLUMNS, _FALLBACK_ROWS
        # A pseudo-terminal nobody has sized reports 0 by 0.
        return size.columns or _FALLBACK_COLUMNS, size.lines or _FALLBACK_ROWS

    @staticmethod
    def _fit(line: str, columns: int) -> str:
        """Printable ASCII, one column short of the width, so the cursor never wraps."""
        return _NOT_PRINTABLE.sub("?", line)[: max(columns - 1, 1)]

    def _write(self, text: str) -> None:
        if not text:
            return
        try:
            self._stream.write(text)
            self._stream.flush()
        except (OSError, ValueError):
            # A terminal that went away (or a closed stream) ends the display, not the fetch.
            self._closed = True


def _transfer_line(digest: str, blob: _Blob, now: float) -> str:
    of = f" of {_bytes(blob.size)}" if blob.size >= 0 else ""
    return (
        f"{digest[:_DIGEST_SHOWN]}  {_bytes(blob.received)}{of}"
        f"  {_rate(blob.received, now - blob.seen)}"
    )


def _bytes(count: int) -> str:
    value, unit = float(count), "B"
    for bigger in _UNITS:
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{count} B" if unit == "B" else f"{value:.1f} {unit}"


def _rate(count: int, seconds: float) -> str:
    # Under a tenth of a second the rate says more about the clock than the network.
    return f"{_bytes(int(count / seconds))}/s" if seconds >= 0.1 else "-"
