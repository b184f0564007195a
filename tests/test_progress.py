"""The terminal progress display: in place, within the terminal's height, every byte counted.

The display is driven on a real pseudo-terminal, and what arrives on the other side is played on
``_Screen``, a small terminal that understands the sequences the display may send and fails on
anything else. The screen keeps its scrollback, so a redraw that spills is seen as a line of the
display that scrolled off the top.
"""

from __future__ import annotations

import fcntl
import io
import os
import re
import select
import struct
import termios
from collections.abc import Iterator

import pytest

from mesos_uri._progress import TerminalProgress, terminal_progress

MIB = 1024 * 1024
ROWS, COLUMNS = 24, 80
# Long enough for the terminal to hand over what was written to it, short of a hung test.
READ_TIMEOUT = 5.0

_SEQUENCE = re.compile(r"\x1b\[(\d*)([AJ])")


def _digest(number: int) -> str:
    return f"sha256:{number:064x}"


def _shown(number: int) -> str:
    """How a transfer line names a blob."""
    return _digest(number)[:19]


class _Clock:
    """Time that moves only when the test says, so every redraw is where the test puts it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class _Screen:
    """A terminal of ``rows`` by ``columns``: printable ASCII, CR, LF, cursor up and erase down.

    Anything else sent to it fails the test. A line feed on the last row scrolls the top row into
    ``scrollback``; a character written past the last column wraps (counted in ``wraps``).
    """

    def __init__(self, rows: int, columns: int) -> None:
        self.rows, self.columns = rows, columns
        self.grid = [[" "] * columns for _ in range(rows)]
        self.row = self.column = 0
        self.pending_wrap = False
        self.scrollback: list[str] = []
        self.wraps = 0

    def feed(self, text: str) -> None:
        at = 0
        while at < len(text):
            char = text[at]
            if char == "\x1b":
                match = _SEQUENCE.match(text, at)
                assert match, f"unexpected escape sequence {text[at : at + 8]!r}"
                self._sequence(match[1], match[2])
                at = match.end()
                continue
            if char == "\r":
                self.column, self.pending_wrap = 0, False
            elif char == "\n":
                self._line_feed()
            else:
                assert " " <= char <= "~", f"{char!r} reached the terminal"
                self._put(char)
            at += 1

    def resize(self, rows: int, columns: int) -> None:
        """As xterm does: rows above the cursor go to the scrollback first, lines are cut."""
        while self.row > rows - 1:
            self.scrollback.append(self._line(0))
            del self.grid[0]
            self.row -= 1
        self.grid = self.grid[:rows] + [[" "] * columns for _ in range(rows - len(self.grid))]
        self.grid = [(line + [" "] * columns)[:columns] for line in self.grid]
        self.rows, self.columns = rows, columns
        self.column, self.pending_wrap = min(self.column, columns - 1), False

    def lines(self) -> list[str]:
        return [self._line(row) for row in range(self.rows)]

    def _sequence(self, parameter: str, final: str) -> None:
        if final == "A":
            self.row = max(self.row - int(parameter or "1"), 0)
        else:
            assert parameter in ("", "0"), f"erase {parameter!r} is not erase-below"
            self.grid[self.row][self.column :] = [" "] * (self.columns - self.column)
            for row in range(self.row + 1, self.rows):
                self.grid[row] = [" "] * self.columns
        self.pending_wrap = False

    def _put(self, char: str) -> None:
        if self.pending_wrap:
            self.wraps += 1
            self.column = 0
            self._line_feed()
        self.grid[self.row][self.column] = char
        if self.column == self.columns - 1:
            self.pending_wrap = True
        else:
            self.column += 1

    def _line_feed(self) -> None:
        self.pending_wrap = False
        if self.row < self.rows - 1:
            self.row += 1
            return
        self.scrollback.append(self._line(0))
        del self.grid[0]
        self.grid.append([" "] * self.columns)

    def _line(self, row: int) -> str:
        return "".join(self.grid[row]).rstrip()


class _TerminalStream(io.TextIOWrapper):
    """Stderr as it is on a terminal; ``expected`` counts the bytes the other side should read
    (the terminal turns each newline into CR LF)."""

    def __init__(self, fd: int) -> None:
        super().__init__(io.FileIO(fd, "w"), encoding="utf-8", write_through=True)
        self.expected = 0

    def write(self, text: str, /) -> int:
        self.expected += len(text.encode()) + text.count("\n")
        return super().write(text)


class _Terminal:
    """A pseudo-terminal: the display writes to ``stream``, and ``screen`` shows the result."""

    def __init__(self, rows: int, columns: int) -> None:
        self.master, slave = os.openpty()
        modes = termios.tcgetattr(slave)
        modes[1] |= termios.OPOST | termios.ONLCR
        termios.tcsetattr(slave, termios.TCSANOW, modes)
        self.stream = _TerminalStream(slave)
        self.screen = _Screen(rows, columns)
        self._set_size(rows, columns)
        self.read = 0
        # What each drain brought: one observer call's redraw, if it made one.
        self.redraws: list[str] = []

    def resize(self, rows: int, columns: int) -> None:
        self.drain()
        self._set_size(rows, columns)
        self.screen.resize(rows, columns)

    def drain(self) -> None:
        data = bytearray()
        while self.read < self.stream.expected:
            ready, _, _ = select.select([self.master], [], [], READ_TIMEOUT)
            assert ready, "the terminal never got what was written to it"
            chunk = os.read(self.master, 65536)
            data += chunk
            self.read += len(chunk)
        assert self.read == self.stream.expected
        if data:
            text = data.decode("ascii")
            self.redraws.append(text)
            self.screen.feed(text)

    def close(self) -> None:
        self.stream.close()
        os.close(self.master)

    def _set_size(self, rows: int, columns: int) -> None:
        fcntl.ioctl(
            self.stream.fileno(), termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0)
        )


@pytest.fixture
def terminal() -> Iterator[_Terminal]:
    opened = _Terminal(ROWS, COLUMNS)
    yield opened
    opened.close()


def _shell_history(screen: _Screen, lines: int) -> list[str]:
    """Fill the screen as a shell would have left it: ``lines`` lines, the last one the
    command, and the cursor on the line below."""
    history = [f"shell line {number}" for number in range(lines - 1)]
    history.append("$ mesos-uri-fetch busybox /tmp/busybox")
    screen.feed("".join(f"{line}\r\n" for line in history))
    return history


def _lines_written(redraw: str) -> int:
    """Lines a redraw occupies: it starts on the live area's first line and ends on its last."""
    return redraw.count("\n") + 1


# -- on a pseudo-terminal ---------------------------------------------------------------------


def test_forty_one_layers_stay_within_twenty_four_rows(terminal: _Terminal) -> None:
    screen = terminal.screen
    history = _shell_history(screen, ROWS - 1)
    assert screen.row == ROWS - 1
    clock = _Clock()
    progress = TerminalProgress(terminal.stream, label="library/busybox", clock=clock)

    def tick() -> None:
        # A quarter of a second between calls: every call may redraw.
        clock.now += 0.25

    present, fetched = range(2), range(2, 41)
    for number in present:
        tick()
        progress.finished(_digest(number), downloaded=False)
        terminal.drain()
    for number in fetched:
        tick()
        progress.started(_digest(number), MIB)
        terminal.drain()
    for number in fetched:
        tick()
        progress.received(_digest(number), MIB // 2)
        terminal.drain()

    # 39 transfers and 23 rows to draw in: the overall line, 21 transfers, and the rest counted.
    lines = screen.lines()
    assert lines[0] == history[-1]
    assert lines[1].startswith("2/41 blobs  19.5 MiB of 39.0 MiB  ")
    assert [line[:19] for line in lines[2:23]] == [_shown(number) for number in range(2, 23)]
    assert lines[2].startswith(f"{_shown(2)}  512.0 KiB of 1.0 MiB  ")
    assert lines[23] == "... and 18 more"
    assert screen.row == ROWS - 1

    for number in fetched:
        tick()
        progress.received(_digest(number), MIB)
        terminal.drain()
        tick()
        progress.finished(_digest(number), downloaded=True)
        terminal.drain()
    # Finished blobs leave the live area: only the overall line is left.
    assert screen.lines()[1].startswith("41/41 blobs  39.0 MiB of 39.0 MiB  ")
    assert screen.lines()[2:] == [""] * (ROWS - 2)

    tick()
    progress.close()
    terminal.drain()

    assert max(_lines_written(redraw) for redraw in terminal.redraws) == ROWS - 1
    # Only the shell's own lines scrolled away; the command that started the fetch is in view.
    assert screen.scrollback == history[:-1]
    # 159 calls a quarter of a second apart.
    assert screen.lines() == [
        history[-1],
        "library/busybox: 41 blobs, 39.0 MiB in 39.8 s (2 already present)",
    ] + [""] * (ROWS - 2)
    assert (screen.row, screen.column) == (2, 0)
    assert screen.wraps == 0


def test_a_terminal_made_smaller_gets_a_smaller_picture(terminal: _Terminal) -> None:
    screen = terminal.screen
    clock = _Clock()
    progress = TerminalProgress(terminal.stream, label="library/busybox", clock=clock)
    for number in range(41):
        clock.now += 0.25
        progress.started(_digest(number), MIB)
        terminal.drain()
    assert _lines_written(terminal.redraws[-1]) == ROWS - 1

    terminal.resize(10, 40)
    # The terminal itself pushed the lines above the cursor away; nothing written may add to them.
    pushed = len(screen.scrollback)
    before = len(terminal.redraws)
    for number in range(41):
        clock.now += 0.25
        progress.received(_digest(number), MIB // 4)
        terminal.drain()
    assert [_lines_written(redraw) for redraw in terminal.redraws[before:]] == [9] * 41
    assert screen.lines()[8] == "... and 34 more"
    assert all(len(line) <= 39 for line in screen.lines())

    clock.now += 0.25
    progress.close(summary=False)
    terminal.drain()
    assert len(screen.scrollback) == pushed
    assert screen.lines() == [""] * 10
    assert (screen.row, screen.column) == (0, 0)
    assert screen.wraps == 0


def test_the_summary_is_cut_to_the_width(terminal: _Terminal) -> None:
    terminal.resize(ROWS, 30)
    progress = TerminalProgress(terminal.stream, label="registry.example/team/app", clock=_Clock())
    progress.finished(_digest(1), downloaded=False)
    progress.close()
    terminal.drain()
    # 29 columns of 30, and the trailing space is one of them.
    assert terminal.screen.lines()[0] == "registry.example/team/app: 1"
    assert (terminal.screen.row, terminal.screen.column) == (1, 0)
    assert terminal.screen.wraps == 0


def test_a_one_row_terminal_gets_the_overall_line_only(terminal: _Terminal) -> None:
    terminal.resize(1, COLUMNS)
    clock = _Clock()
    progress = TerminalProgress(terminal.stream, clock=clock)
    for number in range(5):
        clock.now += 0.25
        progress.started(_digest(number), MIB)
        terminal.drain()
    assert [_lines_written(redraw) for redraw in terminal.redraws] == [1] * 5
    assert terminal.screen.lines()[0].startswith("0/5 blobs  0 B of 5.0 MiB")
    assert terminal.screen.scrollback == []


# -- what is counted --------------------------------------------------------------------------


def _last_picture(output: str) -> list[str]:
    """The live area as the last redraw left it."""
    return output.rpartition("\x1b[J")[2].split("\n")


def test_small_blobs_that_report_bytes_are_in_the_totals() -> None:
    out, clock = io.StringIO(), _Clock()
    progress = TerminalProgress(out, label="app", clock=clock)
    sizes = {1: 200, 2: 300, 3: 250, 4: 150}
    for number, size in sizes.items():
        clock.now += 0.25
        progress.started(_digest(number), size)
    for number, size in sizes.items():
        clock.now += 0.25
        progress.received(_digest(number), size - 50)
    assert _last_picture(out.getvalue())[0].startswith("0/4 blobs  700 B of 900 B  ")
    assert f"{_shown(3)}  200 B of 250 B  " in out.getvalue()
    for number, size in sizes.items():
        clock.now += 0.25
        progress.received(_digest(number), size)
        clock.now += 0.25
        progress.finished(_digest(number), downloaded=True)
    # 900 bytes in the 3.75 s since the first blob started.
    assert _last_picture(out.getvalue()) == ["4/4 blobs  900 B of 900 B  240 B/s"]
    progress.close()
    assert out.getvalue().endswith("\x1b[Japp: 4 blobs, 900 B in 4.0 s\n")


def test_bytes_reported_before_started_are_kept() -> None:
    out, clock = io.StringIO(), _Clock()
    progress = TerminalProgress(out, clock=clock)
    progress.received(_digest(1), 150)
    clock.now += 0.25
    progress.started(_digest(1), 200)
    assert _last_picture(out.getvalue())[:2] == [
        "0/1 blobs  150 B of 200 B  600 B/s",
        f"{_shown(1)}  150 B of 200 B  600 B/s",
    ]


def test_a_verified_download_counts_its_size_even_unreported() -> None:
    out, clock = io.StringIO(), _Clock()
    progress = TerminalProgress(out, clock=clock)
    progress.started(_digest(1), 300)
    progress.finished(_digest(1), downloaded=True)
    progress.finished(_digest(2), downloaded=False)
    progress.close()
    assert out.getvalue().endswith("2 blobs, 300 B in 0.0 s (1 already present)\n")


def test_sizes_are_given_in_binary_units() -> None:
    out, clock = io.StringIO(), _Clock()
    progress = TerminalProgress(out, clock=clock)
    for number, size in enumerate([1023, 1024, 3 * MIB // 2, 5 * 1024 * MIB]):
        clock.now += 0.25
        progress.started(_digest(number), size)
    picture = _last_picture(out.getvalue())
    assert [line.split("  ")[1] for line in picture[1:]] == [
        "0 B of 1023 B",
        "0 B of 1.0 KiB",
        "0 B of 1.5 MiB",
        "0 B of 5.0 GiB",
    ]


# -- when it draws ----------------------------------------------------------------------------


class _Writes(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def write(self, text: str, /) -> int:
        self.calls += 1
        return super().write(text)


def test_redraws_are_at_most_five_a_second_and_the_summary_is_still_right() -> None:
    out, clock = _Writes(), _Clock()
    progress = TerminalProgress(out, clock=clock)
    for number in range(41):
        progress.started(_digest(number), 1000)
        progress.received(_digest(number), 1000)
        progress.finished(_digest(number), downloaded=True)
    assert out.calls == 1
    clock.now += 0.19
    progress.received(_digest(0), 1000)
    assert out.calls == 1
    clock.now += 0.02
    progress.received(_digest(0), 1000)
    assert out.calls == 2
    progress.close()
    assert out.calls == 3
    assert out.getvalue().endswith("\x1b[J41 blobs, 40.0 KiB in 0.2 s\n")


def test_close_is_final() -> None:
    out, clock = _Writes(), _Clock()
    progress = TerminalProgress(out, clock=clock)
    progress.started(_digest(1), 10)
    progress.close()
    progress.close()
    clock.now += 1
    progress.received(_digest(1), 10)
    assert out.calls == 2


def test_nothing_to_summarise_writes_nothing() -> None:
    out = _Writes()
    TerminalProgress(out).close()
    assert out.calls == 0


def test_a_terminal_that_went_away_does_not_fail_the_fetch() -> None:
    class Gone(io.StringIO):
        calls = 0

        def write(self, text: str, /) -> int:
            self.calls += 1
            raise OSError(5, "Input/output error")

    out, clock = Gone(), _Clock()
    progress = TerminalProgress(out, clock=clock)
    progress.started(_digest(1), 10)
    clock.now += 1
    progress.received(_digest(1), 10)
    progress.close()
    assert out.calls == 1


# -- whether there is a display ---------------------------------------------------------------


def test_a_terminal_gets_a_display(terminal: _Terminal) -> None:
    display = terminal_progress(terminal.stream, quiet=False, verbose=0)
    assert isinstance(display, TerminalProgress)


@pytest.mark.parametrize(("quiet", "verbose"), [(True, 0), (False, 1), (False, 2)])
def test_quiet_or_verbose_gets_none_even_on_a_terminal(
    terminal: _Terminal, quiet: bool, verbose: int
) -> None:
    assert terminal_progress(terminal.stream, quiet=quiet, verbose=verbose) is None


def test_a_pipe_or_a_file_gets_none() -> None:
    read, write = os.pipe()
    with os.fdopen(read) as _, os.fdopen(write, "w") as pipe:
        assert terminal_progress(pipe, quiet=False, verbose=0) is None
    assert terminal_progress(io.StringIO(), quiet=False, verbose=0) is None


# -- what reaches the terminal ----------------------------------------------------------------


def test_control_characters_never_reach_the_terminal(terminal: _Terminal) -> None:
    clock = _Clock()
    hostile = "\x1b]0;owned\x07\x1b[2J\u202e\r\n\x00\x7f\x9b"
    progress = TerminalProgress(terminal.stream, label=f"app{hostile}", clock=clock)
    progress.started(f"sha256:{hostile}", 10)
    terminal.drain()
    clock.now += 1
    progress.close()
    terminal.drain()
    # _Screen fails on any character or sequence it does not know; here is what it shows.
    assert terminal.screen.lines()[0] == "app?]0;owned??[2J??????: 1 blob, 0 B in 1.0 s"
    written = "".join(terminal.redraws)
    assert set(_SEQUENCE.sub("", written)) <= {chr(code) for code in range(0x20, 0x7F)} | {
        "\r",
        "\n",
    }
    assert "sha256:?]0;owned??[" in written
