"""Metrics printed to a rank's log (app.metrics_log), read from real stamped log files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from app.logs import LogWriter
from app.metrics import MetricPoint
from app.metrics_log import (
    MAX_NAMES,
    LogMetricsReader,
    RankMetricsReader,
    default_pairs,
)
from app.specs.spec import check_shape


def named(points: list[MetricPoint]) -> list[tuple[str, int, float]]:
    return [(p.name, p.step, p.value) for p in points]


@pytest.mark.parametrize(("line", "pairs", "step"), [
    ("Train-accuracy=0.98", [("Train-accuracy", 0.98)], None),
    ("loss: 0.31", [("loss", 0.31)], None),
    ("loss = 0.25.", [("loss", 0.25)], None),
    ("epoch 3 | val_loss 0.2", [("val_loss", 0.2)], 3),
    ("step=7 epoch=2 loss=1e-3", [("loss", 0.001)], 7),
    ("Train Epoch: 1 [0/60000 (0%)]\tLoss: 2.302585", [("Loss", 2.302585)], 1),
    ("test loss: 0.00017", [("test_loss", 0.00017)], None),
    ("| end of epoch   1 | valid loss  5.12 | valid ppl   167.30",
     [("valid_loss", 5.12), ("valid_ppl", 167.3)], 1),
    ("the loss: 0.3", [("loss", 0.3)], None),
    ("INFO:root:MASTER_PORT: 33073", [], None),
    ("data: 500 rows, 2 features, classes ['0', '1']", [], None),
    ("Loss: 0.000883 after 198 batches", [("Loss", 0.000883)], None),  # pytorch/examples
    ("loss: 0.3 at step 5", [("loss", 0.3)], 5),
    ("training: steps=200 lr=0.1 log_every=10", [("lr", 0.1), ("log_every", 10.0)], None),
    ("loss: 0.31 accuracy: 0.91", [("loss", 0.31), ("accuracy", 0.91)], None),
    ("Epoch 3/10 - loss: 0.3120 - accuracy: 0.9100",
     [("loss", 0.312), ("accuracy", 0.91)], 3),
    ("{'loss': 0.31, 'learning_rate': 5e-05, 'epoch': 2.0}",
     [("loss", 0.31), ("learning_rate", 5e-05)], 2),
    ("acc: 98.5% (best)", [("acc", 98.5)], None),
    ("[iter 200] train/loss=-0.5;", [("train/loss", -0.5)], 200),
    # Real lines of public scripts: pytorch/examples reinforce, dcgan (D(x) is a call's
    # look-alike and left out), LightGBM, XGBoost's train and cv (the mean before `+`).
    ("Episode 10\tLast reward: 13.00\tAverage reward: 18.72",
     [("Last_reward", 13.0), ("Average_reward", 18.72)], None),
    ("[0/25][3/16] Loss_D: 1.3817 Loss_G: 0.6931 D(x): 0.5011 D(G(z)): 0.4998 / 0.5002",
     [("Loss_D", 1.3817), ("Loss_G", 0.6931)], None),
    ("[1]\tvalid_0's l1: 0.43\tvalid_0's l2: 0.19",
     [("valid_0_l1", 0.43), ("valid_0_l2", 0.19)], None),
    ("[1]\ttrain-error:0.02130\ttest-error:0.02119",
     [("train-error", 0.0213), ("test-error", 0.02119)], None),
    ("[0]\ttrain-rmse:0.5 test-rmse:0.6", [("train-rmse", 0.5), ("test-rmse", 0.6)], None),
    ("[9]\ttrain-error:0.00123+0.00012\ttest-error:0.00123+0.00105",
     [("train-error", 0.00123), ("test-error", 0.00123)], None),
    ("lr:1e-3 loss: 0.3", [("lr", 0.001), ("loss", 0.3)], None),
    ("x = Foo(a=1) loss=0.3", [("loss", 0.3)], None),  # a call's repr is cut out, only it
    ("it's loss: 0.3", [("loss", 0.3)], None),
])
def test_default_rules_find(line: str, pairs: list[tuple[str, float]], step: int | None) -> None:
    assert default_pairs(line) == (pairs, step)


@pytest.mark.parametrize("line", [
    "2026-11-23T13:45:00.123Z 2026-11-23 13:45:00,123 started",  # timestamps
    "time: 12:30:45 eta: 0:01:23",
    "date=2026-11-23",
    "downloading https://example.com/data?part=1&size=3 to /data/x=1",  # URL, path
    "saving /ckpt/epoch=3-step=100.ckpt",
    "python train.py --lr=0.01 --epochs=3",  # flags
    "version: 1.2.3 torch==2.1.0",  # versions
    "model: resnet50 optimizer: adam",  # not numbers
    "elapsed=1.5s size=3MB",  # units
    "Accuracy: 9842/10000",  # a fraction
    "Using device cuda:0 host:8080",  # no space after the colon
    "rank=0 local_rank=0 world_size=2 pid=123 seed=42 port=29500",  # set-up
    "Namespace(lr=0.1, epochs=3)",  # argparse's echo
    "SignalException: Process 24283 got signal: 15",  # torchrun, stopped
    "loss=nan acc=inf",
    "epoch 3 | step 4",  # steps only
    # No space after the colon: only a decimal that ends there, named by a word.
    "at 12:30:45.5 eta:0:01:23.4 version:1.2.3 elapsed:1.5s mem:1.5GB sha:1a2b.3",
    "see /data/x:1.5 or C:\\runs\\a:1.5 or 10.0.0.1:8080",
    # Set-up inside a call's repr, anywhere in the line, nested too (Lightning, optuna,
    # a PyTorch model's print).
    "`Trainer(limit_train_batches=1)` was configured so 1 batch per epoch will be used.",
    "FrozenTrial(number=47, state=1, values=[0.97], params={'x': 0.5}, distributions={'x': "
    "FloatDistribution(high=10000000000.0, log=True, low=1e-10, step=None)}, trial_id=47, "
    "value=None)",
    "BatchNorm2d(64, eps=1e-05, momentum=0.1, affine=True)",
    "  (conv1): Conv2d(1, 32, kernel_size=(3, 3), stride=(1, 1))",
    "Namespace(lr=0.1, epochs=3",  # unclosed: to the end of the line
    # A verb is no name (a metric's name is before it, too far to tell).
    "The RMSE of prediction is: 0.445",
    "tokens per iteration will be: 768",
])
def test_default_rules_ignore(line: str) -> None:
    assert default_pairs(line) == ([], None)


def write_log(path: Path, text: str, own: str = "") -> None:
    with LogWriter(path) as writer:
        writer.write(text.encode())
        if own:
            writer.write_line(own)


def test_reader_follows_a_real_log_incrementally(tmp_path: Path) -> None:
    path = tmp_path / "rank-0.log"
    reader = LogMetricsReader(path)
    assert reader.read_new() == []  # no file yet
    writer = LogWriter(path)
    writer.write(b"loss: 0.5\nlr=0.1\nloss: 0.4\n[traindeck] loss: 99\nepoch 7 | lo")
    writer.write_line("[traindeck] acc=1")  # our own lines are never metrics
    first = reader.read_new()
    assert named(first) == [("loss", 0, 0.5), ("lr", 0, 0.1), ("loss", 1, 0.4)]
    assert all(p.wall_time and abs(p.wall_time - first[0].wall_time) < 60 for p in first)  # type: ignore[operator]
    writer.write(b"ss 0.3\nloss: 0.2\n")
    writer.close()
    # The partial line waited for its end; after stepped lines, a step-less line belongs
    # to the last step (a final value must not sort before the curve it ends).
    assert named(reader.read_new()) == [("loss", 7, 0.3), ("loss", 7, 0.2)]
    assert reader.read_new() == []


def test_reader_of_a_script_printing_its_metrics(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(
        "for epoch in range(3):\n"
        "    print(f'epoch {epoch} | train_loss {1 / (epoch + 1):.3f} | acc {epoch * 10}%')\n"
        "print('Train-accuracy=0.98')\n")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, check=True)
    write_log(tmp_path / "rank-0.log", out.stdout.decode())
    points = LogMetricsReader(tmp_path / "rank-0.log").read_new()
    assert named(points) == [
        ("train_loss", 0, 1.0), ("acc", 0, 0.0), ("train_loss", 1, 0.5), ("acc", 1, 10.0),
        ("train_loss", 2, 0.333), ("acc", 2, 20.0), ("Train-accuracy", 2, 0.98),
    ]


def test_user_patterns_replace_the_default(tmp_path: Path) -> None:
    path = tmp_path / "rank-0.log"
    write_log(path, "it 5 -> top1 81.5, top5 95.0 (loss=0.3)\nmetric acc@4 0.7\n")
    by_groups = LogMetricsReader(path, [r"it (?P<step>\d+) -> top1 (?P<top1>\S+), top5 "
                                        r"(?P<top5>[\d.]+)"])
    assert named(by_groups.read_new()) == [("top1", 5, 81.5), ("top5", 5, 95.0)]
    by_name = LogMetricsReader(path, [r"metric (?P<name>\w+)@(?P<step>\d) (?P<value>\S+)"])
    assert named(by_name.read_new()) == [("acc", 4, 0.7)]
    assert LogMetricsReader(path, []).read_new() == []  # off
    assert named(LogMetricsReader(path).read_new()) == [("loss", 0, 0.3)]  # the default


def test_names_are_bounded(tmp_path: Path) -> None:
    path = tmp_path / "rank-0.log"
    write_log(path, "".join(f"m{i}=1\n" for i in range(MAX_NAMES + 5)))
    reader = LogMetricsReader(path)
    assert len(reader.read_new()) == MAX_NAMES
    assert reader.dropped == 5


def test_rank_reader_prefers_json_lines(tmp_path: Path) -> None:
    jsonl = tmp_path / "metrics.jsonl"
    jsonl.write_text(json.dumps({"step": 10, "loss": 0.25}) + "\n")
    write_log(tmp_path / "rank-0.log", "loss: 0.3\nacc: 0.5\n")
    reader = RankMetricsReader(jsonl, tmp_path / "rank-0.log")
    assert named(reader.read_new()) == [("loss", 10, 0.25), ("acc", 0, 0.5)]
    off = RankMetricsReader(jsonl, tmp_path / "rank-0.log", patterns=[])
    assert named(off.read_new()) == [("loss", 10, 0.25)]
    assert named(RankMetricsReader(jsonl, None).read_new()) == [("loss", 10, 0.25)]


BASE = {"name": "job", "data": {"paths": ["/data"]}, "algorithm": {"preset": {"name": "p"}}}


def test_spec_log_patterns() -> None:
    spec = check_shape({**BASE, "metrics": {"log_patterns": [r"loss=(?P<loss>\S+)"]}}).spec
    assert spec is not None and spec.metrics is not None
    assert spec.metrics.log_patterns == [r"loss=(?P<loss>\S+)"]
    empty = check_shape({**BASE, "metrics": {"log_patterns": []}}).spec
    assert empty is not None and empty.to_dict()["metrics"] == {"log_patterns": []}
    plain = check_shape(BASE).spec
    assert plain is not None and "metrics" not in plain.to_dict()  # existing specs unchanged
    errors = check_shape({**BASE, "metrics": {"log_patterns": [
        r"(?P<loss>\S+)", "(", "no groups", r"(?P<name>\w+)", 5]}}).errors
    fields = {e.field: e.message for e in errors}
    assert set(fields) == {f"metrics.log_patterns[{i}]" for i in range(1, 5)}
    assert fields["metrics.log_patterns[1]"].startswith("not a valid regular expression")
    assert "no named group" in fields["metrics.log_patterns[2]"]
    assert "both (?P<name>...) and (?P<value>...)" in fields["metrics.log_patterns[3]"]
    assert [e.field for e in check_shape({**BASE, "metrics": {"unknown": 1}}).errors] == [
        "metrics.unknown"]


def test_run_parameters_echoed_in_the_log_are_not_metrics(tmp_path: Path) -> None:
    write_log(tmp_path / "rank-0.log", "training: lr=0.1 epochs=3\nstep 1 loss=0.5\n")
    reader = RankMetricsReader(tmp_path / "metrics.jsonl", tmp_path / "rank-0.log",
                               settings=["lr"])
    assert named(reader.read_new()) == [("loss", 1, 0.5)]
