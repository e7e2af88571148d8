"""`import moxing.tensorflow as mox`: the shim's `mox.file`; nothing else of moxing.tensorflow."""

from __future__ import annotations

from . import file
from ._unsupported import unsupported

__all__ = ["file"]
__getattr__ = unsupported("moxing.tensorflow", "only moxing.tensorflow.file")
