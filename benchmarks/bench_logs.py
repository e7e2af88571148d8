"""Benchmark app.logs against plain baselines and print a table.

* LogWriter: 1,000,000 short lines fed in 64 KiB chunks, versus writing the same bytes to a
  file raw in the same chunks.
* tail(): the last 1,000 lines of a 1 GB log file, versus a ``tail -n 1000`` subprocess.

Files are made under the system temporary folder and deleted afterwards. Nothing is
asserted: this is for reading, not for CI. Run with ``.venv/bin/python benchmarks/bench_logs.py``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# Run as a plain script from anywhere, without installing the project.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.logs import LogWriter, tail

CHUNK = 64 * 1024
LINES = 1_000_000
TAIL_LINES = 1000
BIG_FILE_BYTES = 1024**3


def best_of(runs: int, fn: Callable[[], None]) -> float:
    """Fastest wall time of several runs, in seconds (the least disturbed one)."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def chunks_of(data: bytes) -> list[bytes]:
    return [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]


def bench_writer(folder: Path) -> list[tuple[str, str, str]]:
    data = b"".join(b"epoch %d step %d loss 0.%06d\n" % (i // 1000, i, i) for i in range(LINES))
    chunks = chunks_of(data)
    out = folder / "writer.log"

    def stamped() -> None:
        out.unlink(missing_ok=True)
        with LogWriter(out) as writer:
            for chunk in chunks:
                writer.write(chunk)

    def raw() -> None:
        out.unlink(missing_ok=True)
        with open(out, "ab", buffering=0) as f:
            for chunk in chunks:
                f.write(chunk)

    t_writer = best_of(3, stamped)
    t_raw = best_of(3, raw)
    size = f"{len(data) / 1e6:.0f} MB"
    return [
        ("LogWriter.write, stamped", f"{LINES / t_writer:,.0f} lines/s",
         f"{size} in {t_writer:.3f} s"),
        ("baseline: raw file write", f"{LINES / t_raw:,.0f} lines/s", f"{size} in {t_raw:.3f} s"),
    ]


def make_big_log(path: Path, size: int = BIG_FILE_BYTES) -> None:
    """A log file of `size` bytes (rounded up to 8 MiB blocks) of stamped lines."""
    line = b"2026-11-23T13:45:00.123Z epoch 12 step 123456 loss 0.123456 acc 0.9\n"
    block = line * (min(size, 8 * 1024 * 1024) // len(line))
    with open(path, "wb") as f:
        written = 0
        while written < size:
            f.write(block)
            written += len(block)


def bench_tail(folder: Path) -> list[tuple[str, str, str]]:
    path = folder / "big.log"
    make_big_log(path)
    try:
        size = f"{path.stat().st_size / 1e9:.2f} GB file"
        t_tail = best_of(20, lambda: tail(path, TAIL_LINES))

        def tail_cmd() -> None:
            subprocess.run(["tail", "-n", str(TAIL_LINES), str(path)], check=True,
                           stdout=subprocess.DEVNULL)

        t_cmd = best_of(20, tail_cmd) if shutil.which("tail") else float("nan")
    finally:
        path.unlink()
    return [
        (f"tail(path, {TAIL_LINES})", f"{t_tail * 1000:.2f} ms", size),
        (f"baseline: tail -n {TAIL_LINES} (subprocess)", f"{t_cmd * 1000:.2f} ms", size),
    ]


def main() -> None:
    """Run both benchmarks and print the results as a table."""
    with tempfile.TemporaryDirectory(prefix="traindeck-bench-") as tmp:
        rows = bench_writer(Path(tmp)) + bench_tail(Path(tmp))
    headers = ("benchmark", "result", "notes")
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(3)]
    print(f"cpu cores: {os.cpu_count()}, python {sys.version.split()[0]}")
    for row in [headers, tuple("-" * w for w in widths), *rows]:
        print(" | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
