"""`import moxing.pytorch as mox`: the shim's `mox.file`; nothing else of moxing.pytorch."""

from __future__ import annotations

from . import file
from ._unsupported import unsupported

__all__ = ["file"]
__getattr__ = unsupported("moxing.pytorch", "only moxing.pytorch.file")
