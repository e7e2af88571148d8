"""Logistic regression: a Traindeck preset algorithm that needs only the standard library.

Traindeck calls it the ModelArts way::

    python3 train.py --data_url=<data dir> --train_url=<output dir> [--name=value ...]

Data: every ``*.csv`` file under ``--data_url`` (or that file itself). The last column
is the label (any text or number), the others are numeric features; a header row is
recognised and skipped. Rows that do not fit are counted and skipped.

Two classes or more: the model is multinomial logistic regression (softmax) trained by
full-batch gradient descent on standardised features, with optional L2 penalty. A share
of the rows (``--test_ratio``) is held out; the final metrics are measured on it
(macro-averaged over classes when there are more than two; with two classes the
positive class is the last label in sorted order).

Outputs in ``--train_url``: ``model.json`` and ``metrics.json`` (accuracy, precision,
recall, f1, loss). Every ``--log_every`` steps one JSON line goes to the file named by
``TRAINDECK_METRICS_FILE`` when it is set. SIGTERM stops at the next step (exit 143).
In a multi-node run only rank 0 trains; the other ranks have nothing to do.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import random
import signal
import sys
import time

EXIT_BAD_INPUT = 2
EXIT_STOPPED = 143
MAX_FILE_NAME = 255


class Stop:
    """Set by the SIGTERM handler, checked between steps."""

    requested = False


def _on_sigterm(_signum: int, _frame: object) -> None:
    Stop.requested = True


def log(message: str) -> None:
    print(message, flush=True)


def fail(message: str) -> None:
    print(f"logistic-regression: error: {message}", file=sys.stderr, flush=True)
    sys.exit(EXIT_BAD_INPUT)


# ----------------------------------------------------------------------------- arguments


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="logistic-regression", allow_abbrev=False)
    parser.add_argument("--data_url", required=True, help="folder of CSV files, or one file")
    parser.add_argument("--train_url", required=True, help="folder for model and metrics")
    parser.add_argument("--train_steps", type=int, default=200)
    parser.add_argument("--lr", type=float, default=0.5)
    parser.add_argument("--l2", type=float, default=0.0)
    parser.add_argument("--test_ratio", type=float, default=0.2)
    parser.add_argument("--log_every", type=int, default=10)
    parser.add_argument("--seed", type=int, default=42)
    args, unknown = parser.parse_known_args(argv)
    for item in unknown:
        print(f"logistic-regression: ignoring unknown argument {item!r}", file=sys.stderr)
    if args.train_steps < 1:
        fail("--train_steps must be at least 1")
    if not (math.isfinite(args.lr) and args.lr > 0):
        fail("--lr must be a positive number")
    if not (math.isfinite(args.l2) and args.l2 >= 0):
        fail("--l2 must be zero or positive")
    if not 0.0 <= args.test_ratio < 1.0:
        fail("--test_ratio must be at least 0 and below 1")
    if args.log_every < 1:
        fail("--log_every must be at least 1")
    return args


# ----------------------------------------------------------------------------- data


def csv_files(root: str) -> list[str]:
    """Every usable CSV file under `root` (symbolic links to folders are followed)."""
    if os.path.isfile(root):
        return [root]
    if not os.path.isdir(root):
        fail(f"--data_url {root} is not a file or folder")
    found: list[str] = []
    seen: set[str] = set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:  # a link loop
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.lower().endswith(".csv") and not name.startswith("."):
                if len(name) > MAX_FILE_NAME:
                    log(f"skipping {name[:40]}...: file name longer than {MAX_FILE_NAME}")
                    continue
                found.append(os.path.join(folder, name))
    return found


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _label(text: str) -> str:
    """Labels `1`, `1.0` and ` 1 ` are one class."""
    text = text.strip()
    value = _number(text)
    if value is not None and value.is_integer():
        return str(int(value))
    return text


def load_rows(files: list[str]) -> tuple[list[list[float]], list[str], int]:
    """Features, labels and the number of skipped rows of every file."""
    features: list[list[float]] = []
    labels: list[str] = []
    width: int | None = None
    skipped = 0
    for path in files:
        with open(path, newline="", encoding="utf-8-sig", errors="replace") as handle:
            first = True
            for row in csv.reader(handle):
                if not row or all(not cell.strip() for cell in row):
                    continue
                values = [_number(cell) for cell in row[:-1]]
                if first:
                    first = False
                    if any(v is None for v in values):  # a header
                        continue
                if len(row) < 2 or any(v is None for v in values) or not row[-1].strip():
                    skipped += 1
                    continue
                if width is None:
                    width = len(row)
                if len(row) != width:
                    skipped += 1
                    continue
                features.append([float(v) for v in values])  # type: ignore[arg-type]
                labels.append(_label(row[-1]))
    return features, labels, skipped


def class_order(labels: list[str]) -> list[str]:
    """Classes sorted numerically when they are all numbers, else as text."""
    classes = set(labels)
    if all(_number(c) is not None for c in classes):
        return sorted(classes, key=lambda c: float(c))
    return sorted(classes)


def standardise(rows: list[list[float]]) -> tuple[list[float], list[float]]:
    """Per-feature mean and spread (1 where a feature is constant)."""
    count = len(rows)
    mean = [sum(col) / count for col in zip(*rows, strict=True)]
    spread = []
    for j, col in enumerate(zip(*rows, strict=True)):
        var = sum((x - mean[j]) ** 2 for x in col) / count
        spread.append(math.sqrt(var) if var > 1e-24 else 1.0)
    return mean, spread


# ----------------------------------------------------------------------------- model


def softmax(scores: list[float]) -> list[float]:
    top = max(scores)
    exps = [math.exp(s - top) for s in scores]
    total = sum(exps)
    return [e / total for e in exps]


class Softmax:
    """Multinomial logistic regression on standardised features."""

    def __init__(self, n_features: int, n_classes: int) -> None:
        self.weights = [[0.0] * n_features for _ in range(n_classes)]
        self.bias = [0.0] * n_classes

    def probabilities(self, x: list[float]) -> list[float]:
        return softmax([sum(w * v for w, v in zip(row, x, strict=True)) + b
                        for row, b in zip(self.weights, self.bias, strict=True)])

    def step(self, xs: list[list[float]], ys: list[int], lr: float, l2: float) -> float:
        """One gradient-descent step over every row; returns the loss before it."""
        n_classes, n_features = len(self.bias), len(self.weights[0])
        grad_w = [[0.0] * n_features for _ in range(n_classes)]
        grad_b = [0.0] * n_classes
        loss = 0.0
        for x, y in zip(xs, ys, strict=True):
            probs = self.probabilities(x)
            loss -= math.log(max(probs[y], 1e-15))
            for k in range(n_classes):
                diff = probs[k] - (1.0 if k == y else 0.0)
                grad_b[k] += diff
                row = grad_w[k]
                for j in range(n_features):
                    row[j] += diff * x[j]
        count = len(xs)
        for k in range(n_classes):
            self.bias[k] -= lr * grad_b[k] / count
            row = self.weights[k]
            for j in range(n_features):
                row[j] -= lr * (grad_w[k][j] / count + l2 * row[j])
        penalty = 0.5 * l2 * sum(w * w for row in self.weights for w in row)
        return loss / count + penalty


def evaluate(model: Softmax, xs: list[list[float]], ys: list[int], n_classes: int
             ) -> dict[str, float]:
    """Accuracy, precision, recall, F1 (binary, or macro) and cross-entropy loss."""
    predicted: list[int] = []
    loss = 0.0
    for x, y in zip(xs, ys, strict=True):
        probs = model.probabilities(x)
        loss -= math.log(max(probs[y], 1e-15))
        predicted.append(max(range(n_classes), key=probs.__getitem__))
    return scores(ys, predicted, n_classes) | {"loss": loss / max(1, len(xs))}


def scores(truth: list[int], predicted: list[int], n_classes: int) -> dict[str, float]:
    """Classification scores; with two classes the last one is the positive class."""
    correct = sum(t == p for t, p in zip(truth, predicted, strict=True))
    per_class = []
    for k in range(n_classes):
        tp = sum(t == k and p == k for t, p in zip(truth, predicted, strict=True))
        fp = sum(t != k and p == k for t, p in zip(truth, predicted, strict=True))
        fn = sum(t == k and p != k for t, p in zip(truth, predicted, strict=True))
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class.append((precision, recall, f1))
    chosen = per_class[-1:] if n_classes == 2 else per_class
    return {
        "accuracy": correct / max(1, len(truth)),
        "precision": sum(c[0] for c in chosen) / len(chosen),
        "recall": sum(c[1] for c in chosen) / len(chosen),
        "f1": sum(c[2] for c in chosen) / len(chosen),
    }


# ----------------------------------------------------------------------------- outputs


def write_json(path: str, data: object) -> None:
    """Write JSON atomically: readers never see half a file."""
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")
    os.replace(tmp, path)


class MetricsLog:
    """Appends one JSON object a line to TRAINDECK_METRICS_FILE (when set)."""

    def __init__(self) -> None:
        path = os.environ.get("TRAINDECK_METRICS_FILE")
        self.handle = open(path, "a", encoding="utf-8") if path else None  # noqa: SIM115

    def write(self, record: dict[str, float]) -> None:
        if self.handle is not None:
            self.handle.write(json.dumps({**record, "time": time.time()}) + "\n")
            self.handle.flush()


def split(count: int, ratio: float, seed: int) -> tuple[list[int], list[int]]:
    """Shuffled train and test row indices; tiny data sets are evaluated on themselves."""
    order = list(range(count))
    random.Random(seed).shuffle(order)
    n_test = round(count * ratio)
    if n_test < 1 or count - n_test < 1:
        return order, order
    return order[n_test:], order[:n_test]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    if int(os.environ.get("RANK", "0") or 0) != 0:
        log("logistic-regression trains on rank 0 only; this rank has nothing to do")
        return 0
    files = csv_files(args.data_url)
    if not files:
        fail(f"no CSV files in {args.data_url}")
    rows, labels, skipped = load_rows(files)
    if skipped:
        log(f"skipped {skipped} row(s) that were not numeric features plus a label")
    classes = class_order(labels)
    if len(classes) < 2:
        fail(f"need at least two classes in the last column; found {len(classes)}")
    index = {c: i for i, c in enumerate(classes)}
    targets = [index[label] for label in labels]
    train_idx, test_idx = split(len(rows), args.test_ratio, args.seed)
    mean, spread = standardise([rows[i] for i in train_idx])

    def scaled(i: int) -> list[float]:
        return [(v - m) / s for v, m, s in zip(rows[i], mean, spread, strict=True)]

    train_x, train_y = [scaled(i) for i in train_idx], [targets[i] for i in train_idx]
    test_x, test_y = [scaled(i) for i in test_idx], [targets[i] for i in test_idx]
    log(f"{len(rows)} rows from {len(files)} file(s), {len(mean)} feature(s), "
        f"{len(classes)} classes; {len(train_x)} train / {len(test_x)} test")

    model = Softmax(len(mean), len(classes))
    metrics_log = MetricsLog()
    train_loss = 0.0
    for step in range(1, args.train_steps + 1):
        if Stop.requested:
            log(f"stopped at step {step} (SIGTERM)")
            return EXIT_STOPPED
        train_loss = model.step(train_x, train_y, args.lr, args.l2)
        if step % args.log_every == 0 or step == args.train_steps:
            held_out = evaluate(model, test_x, test_y, len(classes))
            metrics_log.write({"step": step, "train_loss": train_loss,
                               "loss": held_out["loss"], "accuracy": held_out["accuracy"]})
            log(f"step {step}: train_loss={train_loss:.4f} loss={held_out['loss']:.4f} "
                f"accuracy={held_out['accuracy']:.4f}")

    final = evaluate(model, test_x, test_y, len(classes)) | {"train_loss": train_loss}
    os.makedirs(args.train_url, exist_ok=True)
    write_json(os.path.join(args.train_url, "model.json"), {
        "algorithm": "logistic-regression", "classes": classes,
        "weights": model.weights, "bias": model.bias,
        "feature_mean": mean, "feature_scale": spread,
    })
    write_json(os.path.join(args.train_url, "metrics.json"), final)
    log("final: " + " ".join(f"{k}={v:.4f}" for k, v in final.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
