"""The package's layers (docs/ARCHITECTURE.md): a module imports from its own layer and those
below it, so that a generic module (the curl wrapper, the decoder, the store) never comes to
depend on the docker plugin or the facade."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Final

import pytest

PACKAGE: Final = Path(__file__).resolve().parent.parent / "mesos_uri"

LAYERS: Final = {
    "errors": 1,
    "_json": 1,
    "_console": 1,
    "_progress": 1,
    "_urls": 2,
    "_http": 2,
    "_www_authenticate": 2,
    "_curl": 2,
    "_transfers": 2,
    "_store": 2,
    "_retry": 2,
    "_uri": 2,
    "_flags": 2,
    "fetcher": 3,
    "_plugins": 3,
    "_docker": 4,
    "fetch": 5,
    "__main__": 5,
    "__init__": 5,
}
# The facade builds its plugins, and parses image references, only when asked: importing it
# loads neither, so these upward imports sit inside functions (or under TYPE_CHECKING).
UPWARD_ON_PURPOSE: Final = {
    ("fetcher", "_docker"),
    ("fetcher", "_plugins"),
}


def module_of(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def imported(path: Path) -> set[str]:
    """The package's modules that ``path`` imports, anywhere in it."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "mesos_uri":
                names = [f"mesos_uri.{alias.name}" for alias in node.names]
            else:
                names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "mesos_uri" and len(parts) > 1:
                found.add(parts[1])
    return found


SOURCES: Final = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer() -> None:
    assert {module_of(path) for path in SOURCES} == set(LAYERS)


@pytest.mark.parametrize("path", SOURCES, ids=lambda path: str(path.relative_to(PACKAGE)))
def test_a_module_imports_nothing_from_a_layer_above_it(path: Path) -> None:
    module = module_of(path)
    upward = {
        name
        for name in imported(path)
        if LAYERS[name] > LAYERS[module] and (module, name) not in UPWARD_ON_PURPOSE
    }
    assert not upward, f"{path.name} (layer {LAYERS[module]}) imports {sorted(upward)}"


def loaded_by(module: str, *prefixes: str) -> list[str]:
    """The modules starting with one of ``prefixes`` that importing ``module`` loads."""
    code = (
        f"import sys, {module}\nprint(sorted(m for m in sys.modules if m.startswith({prefixes!r})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    loaded: list[str] = ast.literal_eval(result.stdout.strip())
    return loaded


def test_importing_the_facade_loads_no_plugin() -> None:
    assert loaded_by("mesos_uri.fetcher", "mesos_uri._docker.", "mesos_uri._plugins") == []


def test_the_command_line_module_loads_neither_the_facade_nor_attrs_nor_anyio() -> None:
    """What ``python -m mesos_uri.fetch`` imports before it reads its arguments (and starts its
    first request) is only what that needs; the rest loads while curl waits on the network."""
    assert (
        loaded_by("mesos_uri.fetch", "mesos_uri.fetcher", "mesos_uri._uri", "attr", "anyio") == []
    )


# Where each name of the package's surface comes from, but the error tree (mesos_uri.errors):
# the facade and the URI model, which ``import mesos_uri`` leaves unloaded until first use.
LAZY_EXPORTS: Final = {
    "URI": "mesos_uri._uri",
    "parse_uri": "mesos_uri._uri",
    "BlobResult": "mesos_uri.fetcher",
    "Fetcher": "mesos_uri.fetcher",
    "FetchSummary": "mesos_uri.fetcher",
    "Flags": "mesos_uri.fetcher",
    "create": "mesos_uri.fetcher",
}

# Run in a fresh interpreter: what ``import mesos_uri`` loaded, then, name by name, whether each
# exported name is the very object of the module it comes from, and what using it loaded.
_SURFACE_PROBE: Final = """
import importlib, json, sys
lazy = json.loads(sys.argv[1])
import mesos_uri
report = {"at_import": sorted(set(lazy.values()) & set(sys.modules)), "names": {}}
from mesos_uri import errors
for name in mesos_uri.__all__:
    source = lazy.get(name, "mesos_uri.errors")
    value = getattr(mesos_uri, name)
    loaded = source in sys.modules
    same = value is getattr(importlib.import_module(source), name)
    report["names"][name] = [source, loaded, same]
report["all"] = list(mesos_uri.__all__)
report["errors"] = list(errors.__all__)
report["dir"] = dir(mesos_uri)
try:
    mesos_uri.no_such_name
except AttributeError:
    report["missing"] = "AttributeError"
else:
    report["missing"] = "found"
print(json.dumps(report))
"""


def test_the_package_exports_its_surface_on_first_use() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _SURFACE_PROBE, json.dumps(LAZY_EXPORTS)],
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(result.stdout)
    # Importing the package loads neither the facade nor the URI model...
    assert report["at_import"] == []
    # ...its surface is the facade, the URI model and the whole error tree...
    assert sorted(report["all"]) == sorted({*LAZY_EXPORTS, *report["errors"]})
    assert set(report["all"]) <= set(report["dir"])
    # ...and each name is the object of the module it comes from, loaded when first used.
    assert set(report["names"]) == set(report["all"])
    for name, (source, loaded, same) in report["names"].items():
        assert loaded, f"{source} is not loaded once mesos_uri.{name} was used"
        assert same, f"mesos_uri.{name} is not {source}.{name}"
    assert report["missing"] == "AttributeError"
