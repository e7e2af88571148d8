"""Compatibility shims that Traindeck can put on a run's `PYTHONPATH`.

This folder holds packages named as the ones real training scripts import (today only
`moxing`, Huawei ModelArts' file API). They run inside the user's interpreter, maybe in a
container image that has nothing but Python, so they import only the standard library at
import time and nothing from `app`. The folder can be mounted read-only into a container.
"""

from __future__ import annotations

from pathlib import Path


def shim_path() -> Path:
    """The folder to put first on a run's `PYTHONPATH` so that `import moxing` finds the shim."""
    return Path(__file__).resolve().parent
