"""MLP classifier: a Traindeck preset algorithm on PyTorch.

Traindeck calls it the ModelArts way::

    python train.py --data_url=<data dir> --train_url=<output dir> [--name=value ...]

Data: every ``*.csv`` file under ``--data_url`` (or that file itself). The last column
is the label (any text or number), the others are numeric features; a header row is
recognised and skipped. Rows that do not fit are counted and skipped.

The model is a multi-layer perceptron on standardised features, trained with mini-batches
and cross-entropy. A share of the rows (``--test_ratio``) is held out for the metrics
(macro-averaged over classes when there are more than two; with two classes the
positive class is the last label in sorted order).

Outputs in ``--train_url``: ``model.pt`` (weights plus what is needed to use them),
``metrics.json`` (accuracy, precision, recall, f1, loss) and, when TensorBoard's writer
is importable, event files under ``tensorboard/``. One JSON line per epoch goes to the
file named by ``TRAINDECK_METRICS_FILE``. With ``WORLD_SIZE`` > 1 the ranks train one
model together (DistributedDataParallel; gloo on CPU, NCCL on GPUs); rank 0 writes.
SIGTERM stops at the next batch (exit 143).
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

import torch
from torch import nn

EXIT_BAD_INPUT = 2
EXIT_STOPPED = 143
MAX_FILE_NAME = 255
ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}


class Stop:
    """Set by the SIGTERM handler, checked between batches."""

    requested = False


def _on_sigterm(_signum: int, _frame: object) -> None:
    Stop.requested = True


def log(message: str) -> None:
    print(message, flush=True)


def fail(message: str) -> None:
    print(f"mlp-classifier: error: {message}", file=sys.stderr, flush=True)
    sys.exit(EXIT_BAD_INPUT)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="mlp-classifier", allow_abbrev=False)
    parser.add_argument("--data_url", required=True, help="folder of CSV files, or one file")
    parser.add_argument("--train_url", required=True, help="folder for model and metrics")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--activation", choices=sorted(ACTIVATIONS), default="relu")
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
    parser.add_argument("--weight_decay", type=float, default=0.0)
    parser.add_argument("--test_ratio", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--tensorboard", choices=["true", "false"], default="true")
    args, unknown = parser.parse_known_args(argv)
    for item in unknown:
        print(f"mlp-classifier: ignoring unknown argument {item!r}", file=sys.stderr)
    for name in ("epochs", "hidden", "layers", "batch_size"):
        if getattr(args, name) < 1:
            fail(f"--{name} must be at least 1")
    if not (math.isfinite(args.lr) and args.lr > 0):
        fail("--lr must be a positive number")
    if not 0.0 <= args.dropout < 1.0:
        fail("--dropout must be at least 0 and below 1")
    if not 0.0 <= args.test_ratio < 1.0:
        fail("--test_ratio must be at least 0 and below 1")
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
        if real in seen:
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
    text = text.strip()
    value = _number(text)
    return str(int(value)) if value is not None and value.is_integer() else text


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
                width = width or len(row)
                if len(row) != width:
                    skipped += 1
                    continue
                features.append([float(v or 0.0) for v in values])
                labels.append(_label(row[-1]))
    return features, labels, skipped


def class_order(labels: list[str]) -> list[str]:
    classes = set(labels)
    if all(_number(c) is not None for c in classes):
        return sorted(classes, key=lambda c: float(c))
    return sorted(classes)


def split(count: int, ratio: float, seed: int) -> tuple[list[int], list[int]]:
    order = list(range(count))
    random.Random(seed).shuffle(order)
    n_test = round(count * ratio)
    if n_test < 1 or count - n_test < 1:
        return order, order
    return order[n_test:], order[:n_test]


# ----------------------------------------------------------------------------- model


def build_model(n_in: int, n_out: int, args: argparse.Namespace) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = n_in
    for _ in range(args.layers):
        layers += [nn.Linear(width, args.hidden), ACTIVATIONS[args.activation]()]
        if args.dropout > 0:
            layers.append(nn.Dropout(args.dropout))
        width = args.hidden
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


def scores(truth: list[int], predicted: list[int], n_classes: int) -> dict[str, float]:
    """Classification scores; with two classes the last one is the positive class."""
    pairs = list(zip(truth, predicted, strict=True))
    per_class = []
    for k in range(n_classes):
        tp = sum(t == k and p == k for t, p in pairs)
        fp = sum(t != k and p == k for t, p in pairs)
        fn = sum(t == k and p != k for t, p in pairs)
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class.append((precision, recall, f1))
    chosen = per_class[-1:] if n_classes == 2 else per_class
    return {
        "accuracy": sum(t == p for t, p in pairs) / max(1, len(pairs)),
        "precision": sum(c[0] for c in chosen) / len(chosen),
        "recall": sum(c[1] for c in chosen) / len(chosen),
        "f1": sum(c[2] for c in chosen) / len(chosen),
    }


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, n_classes: int
             ) -> dict[str, float]:
    model.eval()
    logits = model(x)
    loss = float(nn.functional.cross_entropy(logits, y))
    predicted = logits.argmax(dim=1).tolist()
    model.train()
    return scores(y.tolist(), predicted, n_classes) | {"loss": loss}


# ----------------------------------------------------------------------------- outputs


def write_json(path: str, data: object) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")
    os.replace(tmp, path)


class Reporter:
    """Rank 0's metric sinks: the JSON-lines file and, if possible, TensorBoard."""

    def __init__(self, train_url: str, tensorboard: bool) -> None:
        path = os.environ.get("TRAINDECK_METRICS_FILE")
        self.jsonl = open(path, "a", encoding="utf-8") if path else None  # noqa: SIM115
        self.board = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                log("TensorBoard is not installed: no event files are written")
            else:
                self.board = SummaryWriter(os.path.join(train_url, "tensorboard"))

    def write(self, step: int, record: dict[str, float]) -> None:
        if self.jsonl is not None:
            self.jsonl.write(json.dumps({"step": step, **record, "time": time.time()}) + "\n")
            self.jsonl.flush()
        if self.board is not None:
            for name, value in record.items():
                self.board.add_scalar(name, value, step)
            self.board.flush()

    def close(self) -> None:
        if self.jsonl is not None:
            self.jsonl.close()
        if self.board is not None:
            self.board.close()


# ----------------------------------------------------------------------------- training


def pick_device(choice: str) -> torch.device:
    if choice == "cuda" and not torch.cuda.is_available():
        fail("--device=cuda but no CUDA device is visible")
    if choice == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0") or 0))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    rank = int(os.environ.get("RANK", "0") or 0)
    device = pick_device(args.device)
    if world > 1:
        import torch.distributed as dist

        dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                rank=rank, world_size=world)
    torch.manual_seed(args.seed)

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
    x_all = torch.tensor(rows, dtype=torch.float32)
    y_all = torch.tensor([index[label] for label in labels], dtype=torch.long)
    train_idx, test_idx = split(len(rows), args.test_ratio, args.seed)
    x_train, y_train = x_all[train_idx], y_all[train_idx]
    mean = x_train.mean(dim=0)
    scale = x_train.std(dim=0, unbiased=False).clamp_min(1e-12)
    x_train = ((x_train - mean) / scale).to(device)
    y_train = y_train.to(device)
    x_test = ((x_all[test_idx] - mean) / scale).to(device)
    y_test = y_all[test_idx].to(device)
    if world > 1:
        # Every rank gets an equal share so that all take the same number of steps.
        share = len(train_idx) // world
        if share < 1:
            fail(f"{len(train_idx)} training rows cannot be shared by {world} ranks")
        x_train = x_train[rank * share:(rank + 1) * share]
        y_train = y_train[rank * share:(rank + 1) * share]
    log(f"rank {rank}/{world}: {len(rows)} rows from {len(files)} file(s), {x_all.shape[1]} "
        f"feature(s), {len(classes)} classes; {len(x_train)} train / {len(x_test)} test "
        f"on {device}")

    plain = build_model(x_all.shape[1], len(classes), args).to(device)
    # Ranks evaluate on the plain module: a DDP forward outside training would sync.
    model: nn.Module = nn.parallel.DistributedDataParallel(plain) if world > 1 else plain
    if args.optimizer == "adam":
        optimiser: torch.optim.Optimizer = torch.optim.Adam(
            model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    else:
        optimiser = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9,
                                    weight_decay=args.weight_decay)
    reporter = Reporter(args.train_url, args.tensorboard == "true") if rank == 0 else None
    generator = torch.Generator().manual_seed(args.seed)
    train_loss = 0.0
    for epoch in range(1, args.epochs + 1):
        order = torch.randperm(len(x_train), generator=generator).to(device)
        total, batches = 0.0, 0
        for start in range(0, len(order), args.batch_size):
            if Stop.requested:
                log(f"stopped in epoch {epoch} (SIGTERM)")
                return EXIT_STOPPED
            batch = order[start:start + args.batch_size]
            optimiser.zero_grad()
            loss = nn.functional.cross_entropy(model(x_train[batch]), y_train[batch])
            loss.backward()
            optimiser.step()
            total, batches = total + loss.item(), batches + 1
        train_loss = total / max(1, batches)
        if reporter is not None:
            held_out = evaluate(plain, x_test, y_test, len(classes))
            reporter.write(epoch, {"train_loss": train_loss, "loss": held_out["loss"],
                                   "accuracy": held_out["accuracy"]})
            log(f"epoch {epoch}: train_loss={train_loss:.4f} loss={held_out['loss']:.4f} "
                f"accuracy={held_out['accuracy']:.4f}")

    if reporter is not None:
        reporter.close()
        final = evaluate(plain, x_test, y_test, len(classes)) | {"train_loss": train_loss}
        os.makedirs(args.train_url, exist_ok=True)
        torch.save({
            "algorithm": "mlp-classifier", "state_dict": plain.state_dict(),
            "classes": classes, "feature_mean": mean.tolist(), "feature_scale": scale.tolist(),
            "hidden": args.hidden, "layers": args.layers, "activation": args.activation,
            "dropout": args.dropout,
        }, os.path.join(args.train_url, "model.pt"))
        write_json(os.path.join(args.train_url, "metrics.json"), final)
        log("final: " + " ".join(f"{k}={v:.4f}" for k, v in final.items()))
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
