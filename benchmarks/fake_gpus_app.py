"""`traindeck` (the TUI) on a machine with the test suite's fake NVML: two idle A100s.

The idle case opens the GPUs screen in it (the `U` key) to see that a screen polling
the GPUs writes nothing to the terminal while nothing changes. The GPUs are the test
double of `tests/fake_nvml.py`, since no GPU exists where the benchmark runs; the
inventory, the board and the screen are the real ones.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    """Run the app with `pynvml` answered by the fake NVML."""
    sys.path.insert(0, str(ROOT / "tests"))
    sys.path.insert(0, str(ROOT))
    from fake_nvml import two_gpus

    sys.modules["pynvml"] = two_gpus().module()
    from app.cli.main import main as traindeck

    return traindeck([])


if __name__ == "__main__":
    raise SystemExit(main())
