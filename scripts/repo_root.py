"""The scripts' one change to ``sys.path``: the repository root, so that they import the registry
harness as ``tests.support``. Python puts a script's own folder on the path, not the working
directory, so ``python scripts/demo.py`` would not find ``tests`` without it.

Import it before anything from ``tests``; it does nothing when the root is already there (as the
project's editable install puts it).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parent.parent

if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))
