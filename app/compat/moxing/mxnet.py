"""`import moxing.mxnet as mox`: the shim's `mox.file`; nothing else of moxing.mxnet."""

from __future__ import annotations

from . import file
from ._unsupported import unsupported

__all__ = ["file"]
__getattr__ = unsupported("moxing.mxnet", "only moxing.mxnet.file")
