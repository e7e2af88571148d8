"""PyTorch MLP classifier for CSV data, on one process or many (torch.distributed).

A Traindeck boot file. Traindeck calls it as::

    python train.py --data_url=<data dir> --train_url=<output dir> --name=value ...

Data: every ``*.csv`` file in ``--data_url``; the last column is the label, the
others are numeric features; a header row is detected and skipped. Without CSV
data a two-blob dataset is generated in memory.

Distributed runs use the torchrun environment (MASTER_ADDR, MASTER_PORT, RANK,
WORLD_SIZE, LOCAL_RANK). With WORLD_SIZE > 1 the script joins a process group
(nccl on GPU, gloo on CPU, env:// rendezvous), wraps the model in
DistributedDataParallel and shards the training set with DistributedSampler.
Only rank 0 writes ``metrics.json``, ``model.pt``, TensorBoard scalars
(``<train_url>/tb/``, when tensorboard is installed) and the lines of
``TRAINDECK_METRICS_FILE``.
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

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.distributed import DistributedSampler

EXIT_BAD_INPUT = 2
EXIT_SIGTERM = 143

RANK = int(os.environ.get("RANK", "0") or 0)
WORLD_SIZE = int(os.environ.get("WORLD_SIZE", "1") or 1)
LOCAL_RANK = int(os.environ.get("LOCAL_RANK", str(RANK)) or 0)
CHIEF = RANK == 0
_stop_signal: list[int] = []


def on_sigterm(signum, _frame):
    _stop_signal.append(signum)


def say(message: str) -> None:
    print(f"rank {RANK}/{WORLD_SIZE} {message}", flush=True)


def warn(message: str) -> None:
    print(f"rank {RANK}/{WORLD_SIZE} train.py: {message}", file=sys.stderr, flush=True)


def fail(message: str, code: int = EXIT_BAD_INPUT) -> None:
    warn(f"error: {message}")
    sys.exit(code)


# --------------------------------------------------------------------------- args


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    # allow_abbrev=False: unknown parameters are reported, never prefix-matched.
    parser = argparse.ArgumentParser(description="PyTorch MLP sample job.", allow_abbrev=False)
    parser.add_argument("--data_url", default=None, help="folder holding *.csv files")
    parser.add_argument("--train_url", default="./output", help="folder for model and metrics")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--val_fraction", type=float, default=0.2)
    args, unknown = parser.parse_known_args(argv)
    for item in unknown:
        warn(f"warning: ignoring unknown parameter {item!r}")
    if args.epochs < 0:
        parser.error("--epochs must be >= 0")
    if args.hidden < 1 or args.batch_size < 1:
        parser.error("--hidden and --batch_size must be >= 1")
    if not math.isfinite(args.lr) or args.lr <= 0:
        parser.error("--lr must be a positive number")
    if not 0.0 < args.val_fraction < 1.0:
        parser.error("--val_fraction must be between 0 and 1")
    return args


# --------------------------------------------------------------------------- data


def is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def read_csv_files(paths: list[str]) -> tuple[list[list[float]], list[str]]:
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
                    fail(f"{path}:{line_no}: need at least one feature and a label")
                if width is None:
                    width = len(row)
                elif len(row) != width:
                    fail(f"{path}:{line_no}: expected {width} columns, found {len(row)}")
                if not all(is_number(cell) for cell in row[:-1]):
                    if line_no == 1:
                        continue  # header row
                    fail(f"{path}:{line_no}: non-numeric feature value")
                features.append([float(cell) for cell in row[:-1]])
                labels.append(row[-1])
    return features, labels


def generated_blobs(rows: int = 500, seed: int = 7) -> tuple[list[list[float]], list[str]]:
    rng = random.Random(seed)
    centres = ((-1.5, -1.5), (1.5, 1.5))
    features, labels = [], []
    for i in range(rows):
        cx, cy = centres[i % 2]
        features.append([rng.gauss(cx, 1.0), rng.gauss(cy, 1.0)])
        labels.append(str(i % 2))
    return features, labels


def load_data(data_url: str | None) -> tuple[list[list[float]], list[str], str]:
    paths: list[str] = []
    if data_url:
        if os.path.isfile(data_url):
            paths = [data_url]
        elif os.path.isdir(data_url):
            pattern = os.path.join(glob.escape(data_url), "**", "*.csv")
            paths = sorted(glob.glob(pattern, recursive=True))
        else:
            fail(f"--data_url {data_url!r} does not exist")
    if paths:
        features, labels = read_csv_files(paths)
        if not features:
            fail(f"no data rows in {', '.join(paths)}")
        return features, labels, f"{len(paths)} CSV file(s) under {data_url}"
    if data_url:
        warn(f"warning: no *.csv files under {data_url!r}; using generated blobs")
    features, labels = generated_blobs()
    return features, labels, "generated blobs"


def sort_classes(labels: list[str]) -> list[str]:
    unique = set(labels)
    if all(is_number(label) for label in unique):
        return sorted(unique, key=float)
    return sorted(unique)


# --------------------------------------------------------------------------- metrics


def classification_metrics(preds: torch.Tensor, target: torch.Tensor, n_classes: int) -> dict:
    """Accuracy plus precision/recall/F1 (positive class 1 when binary, macro otherwise)."""
    positives = [1] if n_classes == 2 else list(range(n_classes))
    precisions, recalls, f1s = [], [], []
    for c in positives:
        tp = int(((preds == c) & (target == c)).sum())
        fp = int(((preds == c) & (target != c)).sum())
        fn = int(((preds != c) & (target == c)).sum())
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        precisions.append(precision)
        recalls.append(recall)
        f1s.append(f1)
    return {
        "accuracy": int((preds == target).sum()) / max(1, len(target)),
        "precision": sum(precisions) / len(precisions),
        "recall": sum(recalls) / len(recalls),
        "f1": sum(f1s) / len(f1s),
    }


class MetricsSink:
    def __init__(self, path: str | None):
        self.fh = None
        if path:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            self.fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the run

    def write(self, record: dict) -> None:
        if self.fh is not None:
            self.fh.write(json.dumps(record, sort_keys=True) + "\n")
            self.fh.flush()

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()
            self.fh = None


def open_tensorboard(train_url: str):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        say("note: tensorboard is not installed; skipping TensorBoard scalars")
        return None
    log_dir = os.path.join(train_url, "tb")
    say(f"TensorBoard scalars -> {log_dir}")
    return SummaryWriter(log_dir=log_dir)


# --------------------------------------------------------------------------- training


def pick_device() -> torch.device:
    if torch.cuda.is_available():
        index = LOCAL_RANK % torch.cuda.device_count()
        torch.cuda.set_device(index)
        return torch.device("cuda", index)
    return torch.device("cpu")


def check_stop(where: str) -> None:
    if _stop_signal:
        say(f"received SIGTERM at {where}; stopping")
        sys.exit(EXIT_SIGTERM)


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, on_sigterm)
    args = parse_args(argv)
    started = time.monotonic()
    device = pick_device()
    distributed = WORLD_SIZE > 1
    say(
        f"torch_mlp job={os.environ.get('TRAINDECK_JOB', '-')} "
        f"version={os.environ.get('TRAINDECK_VERSION', '-')} torch {torch.__version__} "
        f"device {device} CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '-')}"
    )
    if distributed:
        backend = "nccl" if device.type == "cuda" else "gloo"
        say(
            f"joining process group: backend={backend} "
            f"master={os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')} "
            f"node_rank={os.environ.get('NODE_RANK', '-')} local_rank={LOCAL_RANK}"
        )
        dist.init_process_group(
            backend=backend, init_method="env://", rank=RANK, world_size=WORLD_SIZE
        )

    torch.manual_seed(args.seed)
    raw_features, raw_labels, source = load_data(args.data_url)
    classes = sort_classes(raw_labels)
    if len(classes) < 2:
        fail(f"need at least two label values, found {classes}")
    index_of = {c: i for i, c in enumerate(classes)}
    x_all = torch.tensor(raw_features, dtype=torch.float32)
    y_all = torch.tensor([index_of[label] for label in raw_labels], dtype=torch.long)

    # The same seeded split on every rank, so the held-out set is identical.
    order = list(range(len(y_all)))
    random.Random(args.seed).shuffle(order)
    n_val = min(len(order) - 1, max(1, round(len(order) * args.val_fraction)))
    val_idx = torch.tensor(order[:n_val])
    train_idx = torch.tensor(order[n_val:])
    mean = x_all[train_idx].mean(dim=0)
    std = x_all[train_idx].std(dim=0, unbiased=False).clamp_min(1e-8)
    x_all = (x_all - mean) / std
    x_train, y_train = x_all[train_idx], y_all[train_idx]
    x_val, y_val = x_all[val_idx].to(device), y_all[val_idx].to(device)
    say(
        f"data: {len(y_all)} rows, {x_all.shape[1]} features, classes {classes} from {source}; "
        f"train {len(y_train)} / held-out {len(y_val)}"
    )

    train_set = TensorDataset(x_train, y_train)
    if distributed:
        sampler = DistributedSampler(
            train_set, num_replicas=WORLD_SIZE, rank=RANK, shuffle=True, seed=args.seed
        )
        loader = DataLoader(train_set, batch_size=args.batch_size, sampler=sampler)
    else:
        sampler = None
        gen = torch.Generator().manual_seed(args.seed)
        loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True, generator=gen)
    say(f"this rank trains on {len(sampler) if sampler else len(train_set)} samples per epoch")

    net = nn.Sequential(
        nn.Linear(x_all.shape[1], args.hidden),
        nn.ReLU(),
        nn.Linear(args.hidden, args.hidden),
        nn.ReLU(),
        nn.Linear(args.hidden, len(classes)),
    ).to(device)
    model: nn.Module = net
    if distributed:
        model = DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None
        )
    optimiser = torch.optim.Adam(model.parameters(), lr=args.lr)
    loss_fn = nn.CrossEntropyLoss()

    sink = MetricsSink(os.environ.get("TRAINDECK_METRICS_FILE") if CHIEF else None)
    writer = open_tensorboard(args.train_url) if CHIEF else None
    say(
        f"training: epochs={args.epochs} lr={args.lr} hidden={args.hidden} "
        f"batch_size={args.batch_size}"
    )
    step = 0
    train_loss = float("nan")
    try:
        for epoch in range(1, args.epochs + 1):
            if sampler is not None:
                sampler.set_epoch(epoch)
            model.train()
            totals = torch.zeros(2, dtype=torch.float64, device=device)  # loss sum, samples
            for xb, yb in loader:
                check_stop(f"epoch {epoch} step {step}")
                xb, yb = xb.to(device), yb.to(device)
                optimiser.zero_grad()
                loss = loss_fn(model(xb), yb)
                loss.backward()
                optimiser.step()
                step += 1
                totals[0] += loss.detach().double() * len(yb)
                totals[1] += len(yb)
            if distributed:
                dist.all_reduce(totals)
            train_loss = float(totals[0] / totals[1]) if totals[1] > 0 else float("nan")

            net.eval()
            with torch.no_grad():
                val_logits = net(x_val)
                val_loss = float(loss_fn(val_logits, y_val))
                val_acc = int((val_logits.argmax(dim=1) == y_val).sum()) / len(y_val)
            say(
                f"epoch {epoch}/{args.epochs} step {step} loss={train_loss:.4f} "
                f"val_loss={val_loss:.4f} val_accuracy={val_acc:.4f}"
            )
            sink.write(
                {
                    "step": step,
                    "epoch": epoch,
                    "loss": train_loss,
                    "val_loss": val_loss,
                    "accuracy": val_acc,
                }
            )
            if writer is not None:
                writer.add_scalar("loss/train", train_loss, step)
                writer.add_scalar("loss/val", val_loss, step)
                writer.add_scalar("accuracy/val", val_acc, step)
                writer.flush()
        check_stop("end of training")

        net.eval()
        with torch.no_grad():
            val_logits = net(x_val)
            final = classification_metrics(
                val_logits.argmax(dim=1).cpu(), y_val.cpu(), len(classes)
            )
            final["val_loss"] = float(loss_fn(val_logits, y_val))
        final["loss"] = train_loss
        final["epochs"] = args.epochs
        final["steps"] = step
        final["world_size"] = WORLD_SIZE
        say(
            "held-out: "
            + " ".join(f"{k}={final[k]:.4f}" for k in ("accuracy", "precision", "recall", "f1"))
            + f" loss={train_loss:.4f}"
        )

        if CHIEF:
            os.makedirs(args.train_url, exist_ok=True)
            torch.save(
                {
                    "state_dict": net.state_dict(),
                    "classes": classes,
                    "mean": mean,
                    "std": std,
                    "hidden": args.hidden,
                },
                os.path.join(args.train_url, "model.pt"),
            )
            tmp = os.path.join(args.train_url, "metrics.json.tmp")
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(final, fh, indent=2, sort_keys=True)
                fh.write("\n")
            os.replace(tmp, os.path.join(args.train_url, "metrics.json"))
            say(f"wrote model.pt and metrics.json to {args.train_url}")
    finally:
        sink.close()
        if writer is not None:
            writer.close()

    if distributed:
        dist.barrier()
        dist.destroy_process_group()
    say(f"done in {time.monotonic() - started:.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
