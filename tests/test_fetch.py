"""What the CLI prints is one printable line, whatever text a registry put into it."""

from __future__ import annotations

import re
from typing import Final

from hypothesis import given
from hypothesis import strategies as st

from mesos_uri._console import MAX_LINE, printable

# What a terminal acts on instead of showing: C0, DEL, C1, bidirectional overrides.
UNSHOWN: Final = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def test_plain_text_is_printed_as_it_is() -> None:
    text = "Failed to fetch 'docker://r.example:5000/lab/app?latest#https': 404 Not Found"
    assert printable(text) == text


def test_lines_and_runs_of_whitespace_become_one_space() -> None:
    assert printable("curl: (7) refused\n") == "curl: (7) refused"
    assert printable("one\r\ntwo\n\n\tthree\u2028four  five") == "one two three four five"


def test_escape_sequences_and_other_controls_are_shown_as_escapes() -> None:
    hostile = "\x1b]0;pwned\x07\x1b[2J\x00\x08\x7f\x9b31m\u202eevil"
    assert printable(hostile) == ("\\x1b]0;pwned\\x07\\x1b[2J\\x00\\x08\\x7f\\x9b31m\\u202eevil")


def test_a_long_text_is_cut_to_the_limit() -> None:
    assert printable("A" * 10_000) == "A" * (MAX_LINE - 3) + "..."
    assert printable("\x1b" * 1000, limit=20) == "\\x1b" * 4 + "\\..."


@given(st.text())
def test_anything_comes_out_as_one_short_printable_line(text: str) -> None:
    shown = printable(text)
    assert len(shown) <= MAX_LINE
    assert UNSHOWN.search(shown) is None
    assert shown == " ".join(shown.split())
