"""`import moxing.framework as mox`: the shim's `mox.file`; nothing else of moxing.framework."""

from __future__ import annotations

from . import file
from ._unsupported import unsupported

__all__ = ["file"]
__getattr__ = unsupported("moxing.framework", "only moxing.framework.file")
