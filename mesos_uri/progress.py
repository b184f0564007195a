"""What a person at a terminal sees while an image downloads: one line per layer, one in all.

The plugin reports to an observer (``BlobObserver``); ``TerminalProgress`` is the observer the CLI
uses when stderr is a terminal. It redraws at most a few times a second, so a fast download does
not spend its time printing.
"""

from __future__ import annotations

import time
from typing import Final, Protocol, TextIO

import attrs

__all__ = ["BlobObserver", "TerminalProgress"]

# Redraws per second at most: enough to look alive, cheap on 40 fast layers.
_REDRAW_INTERVAL: Final = 0.2
_MIB: Final = 1024 * 1024


class BlobObserver(Protocol):
    """Told about each blob of a fetch; every call is made from the fetch's event loop."""

    def started(self, digest: str, size: int) -> None: ...

    def received(self, digest: str, total: int) -> None: ...

    def finished(self, digest: str, *, downloaded: bool) -> None: ...


@attrs.define
class _Blob:
    size: int
    received: int = 0
    started: float = attrs.field(factory=time.monotonic)
    done: bool = False
    downloaded: bool = True


def _mib(count: int) -> str:
    return f"{count / _MIB:.1f} MiB"


class TerminalProgress:
    """Draws the blobs in progress and the overall count on a terminal, in place."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._blobs: dict[str, _Blob] = {}
        self._lines = 0
        self._last = 0.0

    def started(self, digest: str, size: int) -> None:
        self._blobs[digest] = _Blob(size)
        self._draw(force=True)

    def received(self, digest: str, total: int) -> None:
        self._blobs[digest].received = total
        self._draw()

    def finished(self, digest: str, *, downloaded: bool) -> None:
        blob = self._blobs.setdefault(digest, _Blob(-1))
        blob.done, blob.downloaded = True, downloaded
        self._draw(force=True)

    def close(self) -> None:
        """Leave the final picture on the screen and the cursor below it."""
        self._draw(force=True)
        self._lines = 0

    def _draw(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < _REDRAW_INTERVAL:
            return
        self._last = now
        lines = [self._line(digest, blob, now) for digest, blob in self._blobs.items()]
        done = sum(blob.done for blob in self._blobs.values())
        received = sum(blob.received for blob in self._blobs.values())
        lines.append(f"{done}/{len(self._blobs)} blobs, {_mib(received)}")
        # Move up over what was drawn last time, then rewrite every line.
        up = f"\x1b[{self._lines}F" if self._lines else ""
        self._stream.write(up + "".join(f"\x1b[2K{line}\n" for line in lines))
        self._stream.flush()
        self._lines = len(lines)

    @staticmethod
    def _line(digest: str, blob: _Blob, now: float) -> str:
        name = digest[:19]
        if blob.done:
            state = "downloaded" if blob.downloaded else "already present"
            return f"{name}  {state}"
        of = f" of {_mib(blob.size)}" if blob.size >= 0 else ""
        rate = blob.received / max(now - blob.started, 1e-3)
        return f"{name}  {_mib(blob.received)}{of}  {_mib(int(rate))}/s"
