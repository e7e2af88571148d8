"""The module `__getattr__` that turns every name the shim lacks into a clear error."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def unsupported(module: str, covered: str = "") -> Callable[[str], Any]:
    """A module-level `__getattr__` for `module`: a missing public name raises
    NotImplementedError saying that Traindeck's shim does not support it."""

    def __getattr__(name: str) -> Any:
        if name.startswith("__"):  # hasattr() probes by tools and the import system
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        covers = f" (it covers {covered})" if covered else ""
        raise NotImplementedError(
            f"{module}.{name} is not supported by Traindeck's moxing shim{covers}")

    return __getattr__
