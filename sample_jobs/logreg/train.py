"""Logistic regression trained by full-batch gradient descent (standard library only).

A Traindeck boot file. Traindeck calls it as::

    python3 train.py --data_url=<data dir> --train_url=<output dir> --name=value ...

Data: every ``*.csv`` file in ``--data_url`` (or ``--data_url`` itself when it is a
CSV file); the last column is the label, the others are numeric features, and a
header row is detected and skipped. Without CSV data the script generates the
two-blob dataset from ``make_data.py`` in memory.

Two classes give one binary model; more classes are trained one-vs-rest and
scored with macro-averaged precision, recall and F1.

Outputs in ``--train_url``: ``model.json`` (weights and feature scaling) and
``metrics.json`` (final held-out accuracy, precision, recall, f1 and loss).
When ``TRAINDECK_METRICS_FILE`` is set, one JSON object per logged step is
appended to it. SIGTERM stops the run at the next step boundary with exit 143.
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import math
import os
import random
import signal
import sys
import time

EXIT_INJECTED_FAILURE = 3
EXIT_SIGTERM = 143
EXIT_BAD_INPUT = 2
EPS = 1e-12


class StopRequested:
    """Set by the SIGTERM handler; checked between steps and while sleeping."""

    signum: int | None = None


def on_sigterm(signum, _frame):
    StopRequested.signum = signum


def say(message: str) -> None:
    print(message, flush=True)


def warn(message: str) -> None:
    print(f"train.py: {message}", file=sys.stderr, flush=True)


def fail(message: str, code: int) -> None:
    warn(f"error: {message}")
    sys.exit(code)


def check_stop(step: int) -> None:
    if StopRequested.signum is not None:
        say(f"received SIGTERM at step {step}; stopping without writing outputs")
        sys.exit(EXIT_SIGTERM)


def interruptible_sleep(seconds: float, step: int) -> None:
    deadline = time.monotonic() + seconds
    while True:
        check_stop(step)
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, 0.05))


# --------------------------------------------------------------------------- args


def build_parser() -> argparse.ArgumentParser:
    # allow_abbrev=False: an unknown parameter such as --train=1 must be reported
    # as unknown, not matched to --train_steps or --train_url.
    parser = argparse.ArgumentParser(
        description="Logistic regression sample job.", allow_abbrev=False
    )
    parser.add_argument("--data_url", default=None, help="folder holding *.csv files")
    parser.add_argument("--train_url", default="./output", help="folder for model and metrics")
    parser.add_argument("--train_steps", type=int, default=200)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--log_every", type=int, default=10)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--val_fraction", type=float, default=0.2)
    parser.add_argument("--fail_at_step", type=int, default=-1)
    parser.add_argument("--sleep_per_step", type=float, default=0.0)
    return parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    for item in unknown:
        warn(f"warning: ignoring unknown parameter {item!r}")
    if args.train_steps < 0:
        parser.error("--train_steps must be >= 0")
    if args.log_every < 1:
        parser.error("--log_every must be >= 1")
    if not math.isfinite(args.lr) or args.lr <= 0:
        parser.error("--lr must be a positive number")
    if not 0.0 < args.val_fraction < 1.0:
        parser.error("--val_fraction must be between 0 and 1")
    if not math.isfinite(args.sleep_per_step) or args.sleep_per_step < 0:
        parser.error("--sleep_per_step must be >= 0")
    return args


# --------------------------------------------------------------------------- data


def find_csv_files(data_url: str) -> list[str]:
    if os.path.isfile(data_url):
        return [data_url]
    if not os.path.isdir(data_url):
        fail(f"--data_url {data_url!r} does not exist", EXIT_BAD_INPUT)
    pattern = os.path.join(glob.escape(data_url), "**", "*.csv")
    return sorted(glob.glob(pattern, recursive=True))


def is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def read_csv_rows(paths: list[str]) -> tuple[list[str], list[list[float]], list[str]]:
    """Return (feature names, feature rows, label strings) from all files."""
    names: list[str] = []
    features: list[list[float]] = []
    labels: list[str] = []
    width = None
    for path in paths:
        with open(path, encoding="utf-8", newline="") as fh:
            for line_no, row in enumerate(csv.reader(fh), start=1):
                row = [cell.strip() for cell in row]
                if not row or all(cell == "" for cell in row):
                    continue
                if len(row) < 2:
                    fail(f"{path}:{line_no}: need at least one feature and a label", EXIT_BAD_INPUT)
                if width is None:
                    width = len(row)
                elif len(row) != width:
                    fail(
                        f"{path}:{line_no}: expected {width} columns, found {len(row)}",
                        EXIT_BAD_INPUT,
                    )
                if not all(is_number(cell) for cell in row[:-1]):
                    if line_no == 1:  # header row
                        names = names or row[:-1]
                        continue
                    fail(f"{path}:{line_no}: non-numeric feature value", EXIT_BAD_INPUT)
                features.append([float(cell) for cell in row[:-1]])
                labels.append(row[-1])
    if width is not None and not names:
        names = [f"x{i + 1}" for i in range(width - 1)]
    return names, features, labels


def load_data(data_url: str | None) -> tuple[list[str], list[list[float]], list[str], str]:
    paths = find_csv_files(data_url) if data_url else []
    if paths:
        names, features, labels = read_csv_rows(paths)
        if not features:
            fail(f"no data rows in {', '.join(paths)}", EXIT_BAD_INPUT)
        return names, features, labels, f"{len(paths)} CSV file(s) under {data_url}"
    if data_url:
        warn(f"warning: no *.csv files under {data_url!r}; using the built-in blobs dataset")
    from make_data import make_blobs  # sibling file in the code folder

    samples = make_blobs()
    features = [[x1, x2] for x1, x2, _ in samples]
    labels = [str(label) for _, _, label in samples]
    return ["x1", "x2"], features, labels, "built-in blobs dataset"


def sort_classes(labels: list[str]) -> list[str]:
    unique = set(labels)
    if all(is_number(label) for label in unique):
        return sorted(unique, key=float)
    return sorted(unique)


def split(n: int, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    order = list(range(n))
    random.Random(seed).shuffle(order)
    n_val = min(n - 1, max(1, round(n * val_fraction)))
    return order[n_val:], order[:n_val]


def standardise(rows: list[list[float]]) -> tuple[list[float], list[float]]:
    dims = len(rows[0])
    mean = [sum(r[j] for r in rows) / len(rows) for j in range(dims)]
    std = []
    for j in range(dims):
        var = sum((r[j] - mean[j]) ** 2 for r in rows) / len(rows)
        std.append(math.sqrt(var) if var > 0 else 1.0)
    return mean, std


def scale(rows: list[list[float]], mean: list[float], std: list[float]) -> list[list[float]]:
    return [[(v - m) / s for v, m, s in zip(r, mean, std, strict=True)] for r in rows]


# --------------------------------------------------------------------------- model


def sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


class Model:
    """One linear scorer per target: one for binary data, one per class otherwise."""

    def __init__(self, n_features: int, classes: list[str]):
        self.classes = classes
        self.binary = len(classes) == 2
        n_models = 1 if self.binary else len(classes)
        self.weights = [[0.0] * n_features for _ in range(n_models)]
        self.bias = [0.0] * n_models

    def targets(self, label_index: int) -> list[float]:
        if self.binary:
            return [float(label_index == 1)]
        return [float(label_index == k) for k in range(len(self.classes))]

    def probabilities(self, x: list[float]) -> list[float]:
        return [
            sigmoid(sum(w * v for w, v in zip(ws, x, strict=True)) + b)
            for ws, b in zip(self.weights, self.bias, strict=True)
        ]

    def predict(self, x: list[float]) -> int:
        probs = self.probabilities(x)
        if self.binary:
            return int(probs[0] >= 0.5)
        return max(range(len(probs)), key=probs.__getitem__)

    def step(self, xs: list[list[float]], ys: list[int], lr: float) -> float:
        """One gradient-descent step on the whole batch; returns the loss before it."""
        n_models = len(self.bias)
        n_features = len(self.weights[0])
        grad_w = [[0.0] * n_features for _ in range(n_models)]
        grad_b = [0.0] * n_models
        loss = 0.0
        for x, y in zip(xs, ys, strict=True):
            probs = self.probabilities(x)
            for k, (p, t) in enumerate(zip(probs, self.targets(y), strict=True)):
                loss -= t * math.log(max(p, EPS)) + (1.0 - t) * math.log(max(1.0 - p, EPS))
                err = p - t
                grad_b[k] += err
                row = grad_w[k]
                for j, v in enumerate(x):
                    row[j] += err * v
        n = len(xs)
        for k in range(n_models):
            self.bias[k] -= lr * grad_b[k] / n
            for j in range(n_features):
                self.weights[k][j] -= lr * grad_w[k][j] / n
        return loss / (n * n_models)

    def loss(self, xs: list[list[float]], ys: list[int]) -> float:
        total = 0.0
        for x, y in zip(xs, ys, strict=True):
            for p, t in zip(self.probabilities(x), self.targets(y), strict=True):
                total -= t * math.log(max(p, EPS)) + (1.0 - t) * math.log(max(1.0 - p, EPS))
        return total / (len(xs) * len(self.bias))


def accuracy(model: Model, xs: list[list[float]], ys: list[int]) -> float:
    return sum(model.predict(x) == y for x, y in zip(xs, ys, strict=True)) / len(ys)


def classification_metrics(model: Model, xs: list[list[float]], ys: list[int]) -> dict:
    preds = [model.predict(x) for x in xs]
    n_classes = len(model.classes)
    positives = [1] if model.binary else list(range(n_classes))
    precisions, recalls, f1s = [], [], []
    for c in positives:
        tp = sum(p == c and y == c for p, y in zip(preds, ys, strict=True))
        fp = sum(p == c and y != c for p, y in zip(preds, ys, strict=True))
        fn = sum(p != c and y == c for p, y in zip(preds, ys, strict=True))
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        precisions.append(precision)
        recalls.append(recall)
        f1s.append(f1)
    return {
        "accuracy": sum(p == y for p, y in zip(preds, ys, strict=True)) / len(ys),
        "precision": sum(precisions) / len(precisions),
        "recall": sum(recalls) / len(recalls),
        "f1": sum(f1s) / len(f1s),
    }


# --------------------------------------------------------------------------- outputs


class MetricsSink:
    """Appends one JSON object per line to TRAINDECK_METRICS_FILE, if set."""

    def __init__(self, path: str | None):
        self.fh = None
        if path:
            parent = os.path.dirname(os.path.abspath(path))
            os.makedirs(parent, exist_ok=True)
            self.fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the run

    def write(self, record: dict) -> None:
        if self.fh is not None:
            self.fh.write(json.dumps(record, sort_keys=True) + "\n")
            self.fh.flush()

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()
            self.fh = None


def write_json(path: str, payload: dict) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(payload, fh, indent=2, sort_keys=True)
        fh.write("\n")
    os.replace(tmp, path)


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, on_sigterm)
    args = parse_args(argv)
    started = time.monotonic()

    rank = int(os.environ.get("RANK", "0") or 0)
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    chief = rank == 0
    say(
        f"logreg job={os.environ.get('TRAINDECK_JOB', '-')} "
        f"version={os.environ.get('TRAINDECK_VERSION', '-')} rank {rank}/{world} "
        f"python {sys.version.split()[0]}"
    )
    if world > 1:
        say(f"rank {rank}/{world}: this sample trains on one process; only rank 0 writes outputs")

    names, raw_features, raw_labels, source = load_data(args.data_url)
    classes = sort_classes(raw_labels)
    if len(classes) < 2:
        fail(f"need at least two label values, found {classes}", EXIT_BAD_INPUT)
    index_of = {c: i for i, c in enumerate(classes)}
    labels = [index_of[label] for label in raw_labels]
    train_idx, val_idx = split(len(labels), args.val_fraction, args.seed)
    say(
        f"data: {len(labels)} rows, {len(names)} features, classes {classes} from {source}; "
        f"train {len(train_idx)} / held-out {len(val_idx)}"
    )

    mean, std = standardise([raw_features[i] for i in train_idx])
    x_train = scale([raw_features[i] for i in train_idx], mean, std)
    y_train = [labels[i] for i in train_idx]
    x_val = scale([raw_features[i] for i in val_idx], mean, std)
    y_val = [labels[i] for i in val_idx]

    model = Model(len(names), classes)
    sink = MetricsSink(os.environ.get("TRAINDECK_METRICS_FILE") if chief else None)
    say(f"training: steps={args.train_steps} lr={args.lr} log_every={args.log_every}")

    try:
        if args.fail_at_step == 0:
            fail("injected failure at step 0 (fail_at_step=0)", EXIT_INJECTED_FAILURE)
        for step in range(1, args.train_steps + 1):
            check_stop(step - 1)
            model.step(x_train, y_train, args.lr)
            if step % args.log_every == 0 or step == args.train_steps:
                loss = model.loss(x_train, y_train)
                train_acc = accuracy(model, x_train, y_train)
                val_acc = accuracy(model, x_val, y_val)
                say(
                    f"step {step}/{args.train_steps} loss={loss:.4f} "
                    f"accuracy={train_acc:.4f} val_accuracy={val_acc:.4f}"
                )
                sink.write(
                    {"step": step, "loss": loss, "accuracy": train_acc, "val_accuracy": val_acc}
                )
            if step == args.fail_at_step:
                fail(
                    f"injected failure at step {step} (fail_at_step={args.fail_at_step})",
                    EXIT_INJECTED_FAILURE,
                )
            if args.sleep_per_step > 0:
                interruptible_sleep(args.sleep_per_step, step)
        check_stop(args.train_steps)
    finally:
        sink.close()

    final = classification_metrics(model, x_val, y_val)
    final["loss"] = model.loss(x_train, y_train)
    final["val_loss"] = model.loss(x_val, y_val)
    final["train_steps"] = args.train_steps
    final["train_samples"] = len(y_train)
    final["val_samples"] = len(y_val)
    say(
        "held-out: "
        + " ".join(f"{k}={final[k]:.4f}" for k in ("accuracy", "precision", "recall", "f1"))
        + f" loss={final['loss']:.4f}"
    )

    if chief:
        os.makedirs(args.train_url, exist_ok=True)
        write_json(
            os.path.join(args.train_url, "model.json"),
            {
                "type": "logistic_regression",
                "scheme": "binary" if model.binary else "one-vs-rest",
                "classes": classes,
                "features": names,
                "mean": mean,
                "std": std,
                "weights": model.weights,
                "bias": model.bias,
            },
        )
        write_json(os.path.join(args.train_url, "metrics.json"), final)
        say(f"wrote model.json and metrics.json to {args.train_url}")
    say(f"done in {time.monotonic() - started:.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
