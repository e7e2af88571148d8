"""Tests for app.metrics on real files: JSON lines, metrics.json and TensorBoard events."""

from __future__ import annotations

import json
import logging
import math
import subprocess
import sys
from pathlib import Path

import pytest

from app import metrics
from app.metrics import (
    JsonlMetricsReader,
    MetricPoint,
    best_indices,
    final_values,
    metric_goal,
    ordered_metric_names,
    read_final_metrics,
    read_summary_file,
    read_summary_file_checked,
    read_tensorboard_scalars,
    tensorboard_available,
)


def by_name(points: list[MetricPoint]) -> dict[str, list[tuple[int, float]]]:
    out: dict[str, list[tuple[int, float]]] = {}
    for p in points:
        out.setdefault(p.name, []).append((p.step, p.value))
    return out


def test_jsonl_incremental_with_partial_and_malformed_lines(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    reader = JsonlMetricsReader(path)
    assert reader.read_new() == []  # missing file
    with open(path, "ab", buffering=0) as f:
        f.write(b'{"step": 10, "accuracy": 0.91, "loss": 0.3, "time": 1700000000.5}\n{"step"')
        assert reader.read_new() == [
            MetricPoint("accuracy", 10, 0.91, 1700000000.5),
            MetricPoint("loss", 10, 0.3, 1700000000.5),
        ]
        assert reader.read_new() == []
        f.write(b': 20, "loss": 0.2}\r\nnot json\n[1, 2]\n\n{"loss": 0.1,\n')
        assert reader.read_new() == [MetricPoint("loss", 20, 0.2, None)]
        f.write(b'{"step": "ten", "loss": 1}\n{"step": 2.5, "loss": 1}\n\xff\xfe\n')
        assert reader.read_new() == []
        f.write(b'{"step": 30.0, "loss": 0.05, "wall_time": 5, "time": 9}\n')
        assert reader.read_new() == [MetricPoint("loss", 30, 0.05, 5.0)]


def test_jsonl_values_flattening_and_auto_step(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    records = [
        {"val": {"loss": 1, "acc": 0.5, "deep": {"x": 2}}, "lr": 0.01},
        {"done": True, "name": "run", "nan": math.nan, "inf": math.inf, "ok": 3,
         "list": [1, 2], "nothing": None},
        {"event": "checkpoint"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    points = JsonlMetricsReader(path).read_new()
    assert by_name(points) == {
        "val/loss": [(0, 1.0)], "val/acc": [(0, 0.5)], "val/deep/x": [(0, 2.0)],
        "lr": [(0, 0.01)], "ok": [(1, 3.0)],
    }
    assert all(isinstance(p.value, float) for p in points)


def test_jsonl_reads_in_bounded_steps_and_restarts_on_truncation(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps({"step": i, "loss": i / 10}) + "\n" for i in range(50)))
    reader = JsonlMetricsReader(path)
    got: list[MetricPoint] = []
    while batch := reader.read_new(max_bytes=64):
        got.extend(batch)
    assert [p.step for p in got] == list(range(50))
    path.write_text('{"loss": 9}\n')  # a new run overwrote the file
    assert reader.read_new() == [MetricPoint("loss", 0, 9.0, None)]


def test_summary_file_good_nested_and_non_numbers(tmp_path: Path) -> None:
    (tmp_path / "metrics.json").write_text(json.dumps({
        "accuracy": 0.9, "f1": 1, "flag": True, "note": "x", "bad": math.nan,
        "val": {"loss": 0.25, "tags": ["a"]},
    }))
    assert read_summary_file(tmp_path) == {"accuracy": 0.9, "f1": 1.0, "val/loss": 0.25}
    assert read_summary_file_checked(tmp_path)[1] is None


def test_summary_file_missing_and_corrupt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert read_summary_file(tmp_path) == {}
    assert read_summary_file_checked(tmp_path) == ({}, None)
    summary = tmp_path / "metrics.json"
    summary.write_text('{"accuracy": 0.9')
    with caplog.at_level(logging.WARNING, logger="app.metrics"):
        assert read_summary_file(tmp_path) == {}
    assert "not valid JSON" in caplog.text
    values, problem = read_summary_file_checked(tmp_path)
    assert values == {} and problem and "metrics.json" in problem
    summary.write_text("[0.9]")
    assert read_summary_file_checked(tmp_path)[1] == f"{summary} holds a JSON list, not an object"
    summary.write_bytes(b"\xff\xfe")
    assert read_summary_file(tmp_path) == {}


def test_modelarts_metric_json_and_precedence(tmp_path: Path) -> None:
    # As ModelArts' own examples write it.
    (tmp_path / "metric.json").write_text(
        '{"total_metric": {"total_metric_meta": {}, "total_reserved_data": {}, '
        '"total_metric_values": {"accuracy": 0.9, "f1_score": 0.8}}}\n')
    assert read_summary_file_checked(tmp_path) == ({"accuracy": 0.9, "f1_score": 0.8}, None)
    (tmp_path / "metrics.json").write_text('{"accuracy": 0.95, "loss": 0.1}')
    assert read_summary_file(tmp_path) == {"accuracy": 0.95, "f1_score": 0.8, "loss": 0.1}
    (tmp_path / "metric.json").write_text('{"recall": 0.7, "other": {"x": 1}}')  # any shape
    assert read_summary_file(tmp_path) == {
        "recall": 0.7, "other/x": 1.0, "accuracy": 0.95, "loss": 0.1}
    (tmp_path / "metric.json").write_text("{")
    values, problem = read_summary_file_checked(tmp_path)
    assert values == {"accuracy": 0.95, "loss": 0.1}
    assert problem and "metric.json is not valid JSON" in problem


needs_tensorboard = pytest.mark.skipif(
    not tensorboard_available(), reason="tensorboard is not installed"
)


@needs_tensorboard
def test_tensorboard_round_trip_tf2_tensor_form(tmp_path: Path) -> None:
    from tensorboard.summary import Writer

    writer = Writer(str(tmp_path / "tb"))
    for step in range(3):
        writer.add_scalar("loss/train", 1 / (step + 1), step, wall_time=1000.0 + step)
        writer.add_scalar("accuracy/val", 0.5 + step / 10, step)
    writer.close()
    points = read_tensorboard_scalars(tmp_path)
    assert by_name(points) == {
        "loss/train": [(0, 1.0), (1, 0.5), (2, 0.33333334)],
        "accuracy/val": [(0, 0.5), (1, 0.6), (2, 0.7)],
    }
    assert [p.wall_time for p in points if p.name == "loss/train"] == [1000.0, 1001.0, 1002.0]


@needs_tensorboard
def test_tensorboard_legacy_simple_value_and_runs(tmp_path: Path) -> None:
    import numpy as np
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter
    from tensorboard.util import tensor_util

    def event(step: int, *values: summary_pb2.Summary.Value) -> event_pb2.Event:
        return event_pb2.Event(
            wall_time=2000.0 + step, step=step, summary=summary_pb2.Summary(value=list(values))
        )

    for run, base in (("train", 1.0), ("eval", 2.0)):
        writer = EventFileWriter(str(tmp_path / "logs" / run))
        for step in (5, 10):
            writer.add_event(event(step, summary_pb2.Summary.Value(
                tag="loss", simple_value=base / step)))
        # A text summary is a tensor too, but not a scalar: it must be ignored.
        text = summary_pb2.Summary.Value(
            tag="notes", tensor=tensor_util.make_tensor_proto(np.array("hello")))
        text.metadata.plugin_data.plugin_name = "text"
        writer.add_event(event(1, text))
        writer.close()
    (tmp_path / "logs" / "eval" / "events.out.tfevents.0.corrupt").write_bytes(b"\x00" * 7)
    points = read_tensorboard_scalars(tmp_path)
    assert by_name(points) == {
        "eval/loss": [(5, 0.4), (10, 0.2)],
        "train/loss": [(5, 0.2), (10, 0.1)],
    }


@needs_tensorboard
def test_tensorboard_from_torch_writer(tmp_path: Path) -> None:
    torch_tb = pytest.importorskip("torch.utils.tensorboard")
    writer = torch_tb.SummaryWriter(log_dir=str(tmp_path / "tb"))
    writer.add_scalar("loss/val", 0.5, 1)
    writer.add_scalar("loss/val", 0.25, 2)
    writer.add_text("note", "not a scalar", 1)
    writer.close()
    assert by_name(read_tensorboard_scalars(tmp_path)) == {"loss/val": [(1, 0.5), (2, 0.25)]}


@needs_tensorboard
def test_tensorboard_summary_writer_defaults_in_the_working_folder(tmp_path: Path) -> None:
    """A script using `SummaryWriter()` as it comes: `runs/<date>_<host>/` in its cwd."""
    pytest.importorskip("torch.utils.tensorboard")
    work, output = tmp_path / "work", tmp_path / "output"
    (work / "src").mkdir(parents=True)
    output.mkdir()
    (work / "train.py").write_text(
        "from torch.utils.tensorboard import SummaryWriter\n"
        "writer = SummaryWriter()\n"
        "for step in range(3):\n"
        "    writer.add_scalar('Loss/train', 1 / (step + 1), step)\n"
        "writer.close()\n")
    subprocess.run([sys.executable, "train.py"], cwd=work, check=True, capture_output=True)
    [run] = (work / "runs").iterdir()
    assert next(run.glob("events.out.tfevents.*"))
    (output / "metrics.json").write_text('{"accuracy": 0.5}')
    (work / "metrics.json").write_text('{"accuracy": 0.1, "f1": 0.2}')
    points, summary = read_final_metrics([output, work, None, tmp_path / "missing", work])
    assert by_name(points) == {"Loss/train": [(0, 1.0), (1, 0.5), (2, 0.33333334)]}
    assert summary == {"accuracy": 0.5, "f1": 0.2}  # the output folder's first


@needs_tensorboard
def test_tensorboard_search_is_bounded_and_skips_hidden_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tensorboard.summary import Writer

    for folder in ("a", "b", "c", ".git/x", "node_modules/y"):
        writer = Writer(str(tmp_path / folder))
        writer.add_scalar("loss", 1.0, 1)
        writer.close()
    assert sorted(by_name(read_tensorboard_scalars(tmp_path))) == ["a/loss", "b/loss", "c/loss"]
    monkeypatch.setattr(metrics, "MAX_EVENT_FILES", 2)
    assert sorted(by_name(read_tensorboard_scalars(tmp_path))) == ["a/loss", "b/loss"]
    monkeypatch.setattr(metrics, "MAX_EVENT_BYTES", 1)
    assert read_tensorboard_scalars(tmp_path) == []
    # A folder inside one read before is not read again through the outer one.
    monkeypatch.undo()
    points, _ = read_final_metrics([tmp_path / "a", tmp_path])
    assert sorted(by_name(points)) == ["b/loss", "c/loss", "loss"]


@needs_tensorboard
def test_tensorboard_missing_package_reads_nothing(tmp_path: Path) -> None:
    from tensorboard.summary import Writer

    writer = Writer(str(tmp_path))
    writer.add_scalar("loss", 1.0, 1)
    writer.close()
    # A fresh interpreter where importing tensorboard fails, as on a machine without it.
    script = (
        "import sys; sys.modules['tensorboard'] = None\n"
        "from app.metrics import read_tensorboard_scalars, tensorboard_available\n"
        f"print(tensorboard_available(), read_tensorboard_scalars({str(tmp_path)!r}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True,
        cwd=Path(__file__).resolve().parents[1],
    ).stdout
    assert out.split() == ["False", "[]"]


def test_tensorboard_no_files(tmp_path: Path) -> None:
    assert read_tensorboard_scalars(tmp_path) == []
    assert read_tensorboard_scalars(tmp_path / "missing") == []


def test_final_values_precedence() -> None:
    points = [
        MetricPoint("loss", 2, 0.5, None),
        MetricPoint("loss", 10, 0.1, None),
        MetricPoint("loss", 5, 0.3, None),
        MetricPoint("accuracy", 10, 0.8, None),
        MetricPoint("accuracy", 10, 0.85, None),  # same step: the later one wins
        MetricPoint("f1", 3, 0.7, None),
    ]
    assert final_values(points, {}) == {"loss": 0.1, "accuracy": 0.85, "f1": 0.7}
    assert final_values(points, {"accuracy": 0.9, "recall": 0.6}) == {
        "loss": 0.1, "accuracy": 0.9, "f1": 0.7, "recall": 0.6}
    assert final_values([], {}) == {}


@pytest.mark.parametrize(
    "name",
    ["loss", "val_loss", "train/loss", "Loss/Val", "valLoss", "trainloss", "top1_error",
     "err", "MSE", "val_rmse", "mae", "perplexity", "test-wer", "cer", "epoch_time",
     "latency_ms", "step_time_s", "valid_ppl", "test_ppl"],
)
def test_metric_goal_min(name: str) -> None:
    assert metric_goal(name) == "min"


@pytest.mark.parametrize(
    "name",
    ["accuracy", "val_acc", "f1", "f1_score", "recall", "precision", "auc", "roc_auc",
     "answer_rate", "cancer_recall", "samples_per_sec", "mAP", "timestep_count"],
)
def test_metric_goal_max(name: str) -> None:
    assert metric_goal(name) == "max"


def test_best_indices_mark_every_tied_version() -> None:
    assert best_indices([0.5, 0.9, None, 0.9], "max") == (1, 3)
    assert best_indices([0.5, 0.2, math.nan, 0.3], "min") == (1,)
    assert best_indices([0.2, 0.2, 0.2], "min") == ()  # nothing to choose between
    assert best_indices([None, 0.7], "max") == ()
    assert best_indices([None, math.nan], "max") == ()
    assert best_indices([], "min") == ()
    assert best_indices([None, -1.0, -2.0], "max") == (1,)


def test_ordered_metric_names() -> None:
    names = ["loss", "accuracy", "zeta", "precision", "Recall", "f1", "auc", "f1", "lr"]
    assert ordered_metric_names(names) == [
        "f1", "Recall", "precision", "accuracy", "auc", "loss", "lr", "zeta"]
    assert ordered_metric_names(["acc", "val_loss", "f1_score", "prec"]) == [
        "f1_score", "acc", "prec", "val_loss"]
    assert ordered_metric_names(iter(())) == []
