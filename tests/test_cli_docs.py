"""``--help`` and README.md tell the same story: the same flags, metavars and defaults, and an
example of every URI form."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import attrs
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
README = REPO_ROOT / "README.md"
PROGRAM = "python -m mesos_uri.fetch"
# argparse's own flag, which the README need not list.
HELP_FLAGS = frozenset({"-h", "--help"})

# "  -q, --quiet   text" / "  --cacert [HOST[:PORT]=]PEM   text": an option's first help line.
_OPTION = re.compile(r"^  (?:(-\w), )?(--[\w-]+)(?: ([^ ]+))?(?:  +(.*))?$")
_DEFAULT = re.compile(r"\(default:? ([^),]+)")
_CODE = re.compile(r"`([^`]*)`")
# A scheme as the docs write it, "http(s)" included.
_SCHEME = re.compile(r"(?<![\w(-])([a-z][a-z-]*(?:\(s\))?)://")


@attrs.frozen
class Option:
    long: str
    short: str | None
    metavar: str | None
    text: str


@attrs.frozen
class Row:
    """A README table row: its cells, with ``\\|`` unescaped."""

    cells: tuple[str, ...]

    def code(self, column: int) -> list[str]:
        return _CODE.findall(self.cells[column])


def _help() -> str:
    done = subprocess.run(
        [sys.executable, "-m", "mesos_uri.fetch", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "COLUMNS": "200"},
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _options(help_text: str) -> dict[str, Option]:
    """The options section of ``--help``, by long flag (help text unwrapped)."""
    section = help_text.split("\noptions:\n", 1)[1]
    found: dict[str, Option] = {}
    current: dict[str, str | None] | None = None
    lines: list[str] = []

    def close() -> None:
        if current is not None:
            long = current["long"]
            assert long is not None
            found[long] = Option(long, current["short"], current["metavar"], " ".join(lines))

    for line in section.splitlines():
        match = _OPTION.match(line)
        if match:
            close()
            short, long, metavar, text = match.groups()
            current = {"long": long, "short": short, "metavar": metavar}
            lines = [text or ""]
        elif line.startswith("   "):
            lines.append(line.strip())
        elif line.strip():
            break
    close()
    return found


def _tables(markdown: str) -> dict[str, list[Row]]:
    """README tables by the first cell of their header row."""
    tables: dict[str, list[Row]] = {}
    rows: list[Row] | None = None
    for line in markdown.splitlines():
        if not line.startswith("|"):
            rows = None
            continue
        cells = tuple(
            cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", line)[1:-1]
        )
        if rows is None:
            rows = tables.setdefault(cells[0], [])
        elif not set("".join(cells)) <= set("-: "):  # not the |---| line
            rows.append(Row(cells))
    return tables


def _examples(markdown: str) -> list[list[str]]:
    """The arguments of every ``python -m mesos_uri.fetch`` line in the README's code blocks."""
    found = []
    for line in markdown.splitlines():
        if line.startswith(PROGRAM + " "):
            command = line[len(PROGRAM) :].split(" #", 1)[0].split(" < ", 1)[0]
            found.append(shlex.split(command))
    return found


@pytest.fixture(scope="module")
def help_text() -> str:
    return _help()


@pytest.fixture(scope="module")
def options(help_text: str) -> dict[str, Option]:
    found = _options(help_text)
    assert "--docker_config" in found  # the parse found the options at all
    return {flag: option for flag, option in found.items() if flag not in HELP_FLAGS}


@pytest.fixture(scope="module")
def readme() -> str:
    return README.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def flag_rows(readme: str) -> dict[str, Row]:
    """README's flag table, by long flag."""
    rows: dict[str, Row] = {}
    for row in _tables(readme)["flag"]:
        longs = [code.split("=", 1)[0] for code in row.code(0) if code.startswith("--")]
        assert len(longs) == 1, f"a flag row names one long flag: {row.cells[0]}"
        rows[longs[0]] = row
    return rows


def test_every_flag_in_help_is_in_the_readme_table_and_back(
    options: dict[str, Option], flag_rows: dict[str, Row]
) -> None:
    assert sorted(flag_rows) == sorted(options)


def test_short_forms_and_metavars_agree(
    options: dict[str, Option], flag_rows: dict[str, Row]
) -> None:
    for flag, option in options.items():
        if flag not in flag_rows:
            continue  # the first test names it
        spans = flag_rows[flag].code(0)
        shorts = [span for span in spans if re.fullmatch(r"-\w", span)]
        assert shorts == ([option.short] if option.short else []), flag
        documented = next(span for span in spans if span.startswith(flag))
        expected = flag if option.metavar is None else f"{flag}={option.metavar}"
        assert documented == expected, flag


def test_every_flag_has_an_example_using_it(flag_rows: dict[str, Row]) -> None:
    for flag, row in flag_rows.items():
        names = {flag, *(span for span in row.code(0) if re.fullmatch(r"-\w", span))}
        examples = row.code(2)
        assert any(example.split("=", 1)[0].split(" ", 1)[0] in names for example in examples), (
            f"{flag}: no example in {row.cells[2]!r}"
        )


def test_defaults_in_help_are_in_the_readme(
    options: dict[str, Option], flag_rows: dict[str, Row]
) -> None:
    for flag, option in options.items():
        if flag not in flag_rows:
            continue  # the first test names it
        text = flag_rows[flag].cells[1].replace("`", "")
        for default in _DEFAULT.findall(option.text):
            assert re.search(rf"default:? {re.escape(default.strip())}", text), (
                f"{flag}: --help says default {default!r}, README: {text!r}"
            )


def _forms(text: str) -> set[str]:
    return set(_SCHEME.findall(text))


def _schemes(form: str) -> set[str]:
    """``http(s)`` stands for ``http`` and ``https``."""
    if form.endswith("(s)"):
        return {form[:-3], form[:-3] + "s"}
    return {form}


def test_readme_lists_the_uri_forms_of_help(help_text: str, readme: str) -> None:
    block = help_text.split("URI forms", 1)[1].split("\n\n", 1)[0]
    table = {form for row in _tables(readme)["URI"] for form in _forms(row.cells[0])}
    assert _forms(block) == table
    assert "image reference" in block


def test_readme_shows_an_example_of_every_uri_form(options: dict[str, Option], readme: str) -> None:
    valued = {flag for flag, option in options.items() if option.metavar is not None}
    uris = []
    for arguments in _examples(readme):
        positional = []
        skip = False
        for argument in arguments:
            if skip:
                skip = False
            elif argument.startswith("-"):
                skip = "=" not in argument and argument in valued
            else:
                positional.append(argument)
        assert len(positional) == 2, f"an example is URI DIRECTORY: {arguments}"
        uris.append(positional[0])
    shown = {uri.split("://", 1)[0] for uri in uris if "://" in uri}
    for row in _tables(readme)["URI"]:
        for form in _forms(row.cells[0]):
            assert _schemes(form) & shown, f"no example of {form}:// in README"
    references = [uri for uri in uris if "://" not in uri]
    assert any("/" not in reference for reference in references), "no short reference (busybox)"
    assert any("@sha256:" in reference for reference in references), "no reference by digest"
