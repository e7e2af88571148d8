"""Write a small, deterministic two-class dataset as CSV (standard library only).

Two gaussian blobs in two dimensions; the last column is the label (0 or 1).
The same seed and row count always produce byte-identical output, so the file
shipped at ``sample_jobs/data/blobs/train.csv`` can be regenerated with::

    python3 sample_jobs/logreg/make_data.py
"""

from __future__ import annotations

import argparse
import os
import random
import sys

DEFAULT_ROWS = 500
DEFAULT_SEED = 7
# Centres of the two blobs and their spread. The centres are about 4.2
# standard deviations apart, so a linear model reaches roughly 98% accuracy.
CENTRES = ((-1.5, -1.5), (1.5, 1.5))
SPREAD = 1.0
HEADER = ("x1", "x2", "label")

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.normpath(os.path.join(HERE, "..", "data", "blobs", "train.csv"))


def make_blobs(
    rows: int = DEFAULT_ROWS, seed: int = DEFAULT_SEED
) -> list[tuple[float, float, int]]:
    """Return ``rows`` samples ``(x1, x2, label)``, alternating the two classes."""
    if rows < 2:
        raise ValueError("rows must be at least 2")
    rng = random.Random(seed)
    samples = []
    for i in range(rows):
        label = i % 2
        cx, cy = CENTRES[label]
        x1 = round(rng.gauss(cx, SPREAD), 6)
        x2 = round(rng.gauss(cy, SPREAD), 6)
        samples.append((x1, x2, label))
    rng.shuffle(samples)
    return samples


def to_csv_text(samples: list[tuple[float, float, int]]) -> str:
    lines = [",".join(HEADER)]
    lines.extend(f"{x1:.6f},{x2:.6f},{label}" for x1, x2, label in samples)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--out", default=DEFAULT_OUT, help="CSV file to write")
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    if args.rows < 2:
        parser.error("--rows must be at least 2")

    text = to_csv_text(make_blobs(args.rows, args.seed))
    parent = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(parent, exist_ok=True)
    with open(args.out, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)
    print(f"wrote {args.rows} rows to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
