"""The TUI on the GPUs screen, on a machine with the test suite's fake NVML: two idle A100s.

The idle case runs it to see that a screen polling the GPUs writes nothing to the
terminal while nothing changes. The GPUs are the test double of `tests/fake_nvml.py`,
since no GPU exists where the benchmark runs; the app, the inventory, the board and the
screen are the real ones. The GPUs screen is opened as soon as the database is (a key
typed before would only be told that the database is still opening), and the ready line
(`app.tui.ready`) is written once it shows its first read of the GPUs, not the job list.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    """Run the app with `pynvml` answered by the fake NVML, on the GPUs screen."""
    sys.path.insert(0, str(ROOT / "tests"))
    sys.path.insert(0, str(ROOT))
    from fake_nvml import two_gpus

    sys.modules["pynvml"] = two_gpus().module()
    from app.tui.ready import READY_FILE_ENV, report_ready

    ready_file = os.environ.pop(READY_FILE_ENV, None)  # the job list's line is not ours
    from app.tui.app import TraindeckApp
    from app.tui.screens.gpus import GpusScreen

    class OnTheGpusScreen(TraindeckApp):
        def _after_context(self, ctx: Any) -> None:
            super()._after_context(ctx)
            self.action_open_view("gpus")
            self._waiting = self.set_interval(0.05, self._gpus_shown)

        def _gpus_shown(self) -> None:
            if isinstance(self.screen, GpusScreen) and self.screen.board is not None:
                self._waiting.stop()
                if ready_file:
                    os.environ[READY_FILE_ENV] = ready_file
                    self.call_after_refresh(report_ready, self)

    app = OnTheGpusScreen()
    app.run()
    app.leave()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
