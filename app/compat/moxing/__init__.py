"""Traindeck's moxing shim: the `mox.file` API of Huawei ModelArts' `moxing` package.

Covers `mox.file` on local paths and on `s3://` / `obs://` URLs (through boto3 when the
interpreter has it). Anything else (`mox.file.set_auth`, `mox.run`, ...) raises
NotImplementedError naming it. Import it the ModelArts ways: `import moxing as mox`,
`import moxing.tensorflow as mox`, `import moxing.pytorch as mox`, `import moxing.mxnet as mox`.
"""

from __future__ import annotations

from . import file
from ._unsupported import unsupported

__version__ = "0.0.0+traindeck"
__all__ = ["file"]
__getattr__ = unsupported("moxing", "only moxing.file")
