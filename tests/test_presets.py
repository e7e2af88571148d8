"""Preset algorithms: the catalog rows, spec validation, planning, and real training runs."""

from __future__ import annotations

import importlib.util
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import noop_launcher
from sqlmodel import select

from app.catalog import preset_info
from app.config import EngineSettings
from app.context import Context
from app.errors import SpecError
from app.jobs import prepare_spec, submit
from app.presets import (
    PRESETS,
    preset_definition,
    shipped_presets,
    sync_presets,
)
from app.runtime.plan import PlanError, build_plan, preset_program
from app.specs.spec import JobSpec
from app.store.models import MetricSummary, PresetAlgorithm, Status, Version

FOUR = ("accuracy", "precision", "recall", "f1")
LOGREG = preset_definition("logistic-regression")
MLP = preset_definition("mlp-classifier")


def write_blobs(folder: Path, rows: int = 200, classes: tuple[str, ...] = ("0", "1"),
                header: bool = True, name: str = "train.csv", seed: int = 7) -> Path:
    """Well separated Gaussian blobs, one per class, as CSV (label last)."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["x1,x2,label"] if header else []
    for i in range(rows):
        k = i % len(classes)
        lines.append(f"{rng.gauss(4 * k, 0.7):.5f},{rng.gauss(-3 * k, 0.7):.5f},{classes[k]}")
    path = folder / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def preset_spec(data: Path, preset: str = "logistic-regression", **params: Any
                ) -> dict[str, Any]:
    return {
        "name": "preset-job",
        "data": {"paths": [str(data)]},
        "algorithm": {"preset": {"name": preset}},
        "parameters": params,
        "output": str(data.parent / "out"),
        "log_dir": str(data.parent / "logs"),
        "resources": {"runtime": "local"},
    }


@pytest.fixture
def synced(ctx: Context) -> Context:
    sync_presets(ctx.db)
    return ctx


def run_script(script: Path, data: Path, out: Path, *params: str, isolated: bool = False,
               env: dict[str, str] | None = None, timeout: float = 120
               ) -> subprocess.CompletedProcess[str]:
    python = [sys.executable, "-S"] if isolated else [sys.executable]
    return subprocess.run(
        [*python, str(script), f"--data_url={data}", f"--train_url={out}", *params],
        capture_output=True, text=True, timeout=timeout,
        env={**{k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")},
             **(env or {})},
    )


# ------------------------------------------------------------------------------ catalog


def test_two_presets_ship_with_code_and_schemas() -> None:
    assert LOGREG is not None and MLP is not None
    assert (LOGREG.engine, LOGREG.engine_version) == ("python", "3.11")
    assert (MLP.engine, MLP.engine_version) == ("pytorch", "2.13")
    for preset in shipped_presets():
        assert (preset.code_dir / "train.py").is_file()
        assert not (preset.code_dir / "requirements.txt").exists()
        for param in preset.params:
            assert param.help and param.default is not None
            assert param.choices or param.type == "bool" or param.min is not None


def test_sync_presets_mirrors_rows_and_skips_when_unchanged(ctx: Context) -> None:
    sync_presets(ctx.db)  # True, unless Context.open has mirrored them already
    start = time.perf_counter()
    assert sync_presets(ctx.db) is False
    assert time.perf_counter() - start < 0.5
    with ctx.db.read() as session:
        rows = {r.name: r for r in session.exec(select(PresetAlgorithm))}
    assert set(rows) == {p.name for p in PRESETS}
    with ctx.db.write() as session:  # a stale row and a removed preset are repaired
        row = session.get(PresetAlgorithm, rows["mlp-classifier"].id)
        assert row is not None
        row.params_schema_json = "[]"
        session.add(row)
        session.add(PresetAlgorithm(name="gone", engine="x", engine_version="1", code_dir="/x",
                                    boot_file="train.py"))
    assert sync_presets(ctx.db) is True
    info = ctx.catalog.preset("mlp-classifier")
    assert info is not None and info.params == MLP.params  # type: ignore[union-attr]
    assert ctx.catalog.preset("gone") is None


def test_preset_info_round_trips_the_schema(synced: Context) -> None:
    for preset in PRESETS:
        info = synced.catalog.preset(preset.name)
        assert info == preset.info()
        with synced.db.read() as session:
            row = session.exec(select(PresetAlgorithm).where(
                PresetAlgorithm.name == preset.name)).one()
        assert preset_info(row).params == preset.params


# ------------------------------------------------------------------------------ validation


def test_preset_spec_validates(synced: Context, tmp_path: Path) -> None:
    data = write_blobs(tmp_path / "data").parent
    spec = prepare_spec(synced, preset_spec(data, train_steps=50, lr=0.3), tmp_path)
    assert spec.algorithm.preset is not None
    assert spec.engine_label == "preset logistic-regression"
    spec = prepare_spec(synced, preset_spec(data, "mlp-classifier", optimizer="sgd",
                                            tensorboard=False, epochs=3), tmp_path)
    assert spec.parameters["optimizer"] == "sgd"


@pytest.mark.parametrize(("preset", "params", "field", "words"), [
    ("logistic-regression", {"train_steps": 0}, "parameters.train_steps", "at least 1"),
    ("logistic-regression", {"train_steps": 1.5}, "parameters.train_steps", "integer"),
    ("logistic-regression", {"lr": "fast"}, "parameters.lr", "number"),
    ("logistic-regression", {"lr": 1000}, "parameters.lr", "at most"),
    ("logistic-regression", {"epochs": 3}, "parameters.epochs", "no such parameter"),
    ("mlp-classifier", {"optimizer": "rmsprop"}, "parameters.optimizer", "one of adam, sgd"),
    ("mlp-classifier", {"tensorboard": "maybe"}, "parameters.tensorboard", "true or false"),
    ("mlp-classifier", {"hidden": True}, "parameters.hidden", "integer"),
])
def test_bad_preset_parameters_are_refused_by_name(
    synced: Context, tmp_path: Path, preset: str, params: dict[str, Any], field: str,
    words: str,
) -> None:
    data = write_blobs(tmp_path / "data").parent
    with pytest.raises(SpecError) as info:
        prepare_spec(synced, preset_spec(data, preset, **params), tmp_path)
    assert [e.field for e in info.value.errors] == [field]
    assert words in info.value.errors[0].message


def test_unknown_preset_is_refused(synced: Context, tmp_path: Path) -> None:
    data = write_blobs(tmp_path / "data").parent
    with pytest.raises(SpecError) as info:
        prepare_spec(synced, preset_spec(data, "svm"), tmp_path)
    assert info.value.errors[0].field == "algorithm.preset.name"


# ------------------------------------------------------------------------------ planning


def test_preset_program_uses_the_engine_of_the_settings(ctx: Context) -> None:
    for runtime in ("local", "docker"):
        program = preset_program(ctx.settings, "logistic-regression", runtime)
        assert program.code_dir == LOGREG.code_dir  # type: ignore[union-attr]
        assert program.entry == ["train.py"]
        assert program.image == "python:3.11-slim"  # the executor runs the local build
        assert program.interpreter is None
    custom = ctx.settings.model_copy(update={"engines": [
        EngineSettings(name="pytorch", version="2.13", image="lab/torch:1",
                       interpreter="/opt/torch/bin/python")]})
    program = preset_program(custom, "mlp-classifier", "local")
    assert (program.interpreter, program.image) == ("/opt/torch/bin/python", "lab/torch:1")
    with pytest.raises(PlanError, match=r"needs engine python 3\.11"):
        preset_program(custom, "logistic-regression", "local")
    with pytest.raises(PlanError, match="not shipped"):
        preset_program(ctx.settings, "svm", "local")


def test_build_plan_runs_the_preset_boot_file(synced: Context, tmp_path: Path) -> None:
    data = write_blobs(tmp_path / "data").parent
    ref = submit(synced, preset_spec(data, train_steps=5, l2=0.5), tmp_path,
                 launcher=noop_launcher)
    with synced.db.read() as session:
        version = session.get(Version, ref.version_id)
    assert version is not None
    spec = JobSpec.model_validate(json.loads(version.spec_json))
    plan = build_plan(synced.settings, ref.job, version, spec, [])
    argv = plan.ranks[0].argv
    assert argv[1] == str(LOGREG.code_dir / "train.py")  # type: ignore[union-attr]
    assert f"--data_url={data}/" in argv  # a folder ends with `/`, as ModelArts passes it
    assert "--train_steps=5" in argv and "--l2=0.5" in argv


# ------------------------------------------------------------------------------ training


def test_logistic_regression_trains_on_the_standard_library_alone(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_blobs(data, rows=160)
    write_blobs(data / "more", rows=40, header=False, name="extra.csv", seed=3)
    (data / "notes.txt").write_text("not data\n")
    metrics_file = tmp_path / "metrics.jsonl"
    out = tmp_path / "out"
    result = run_script(LOGREG.code_dir / "train.py", data, out,  # type: ignore[union-attr]
                        "--train_steps=60", "--log_every=20", isolated=True,
                        env={"TRAINDECK_METRICS_FILE": str(metrics_file)})
    assert result.returncode == 0, result.stderr
    assert "200 rows from 2 file(s)" in result.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    for name in (*FOUR, "loss"):
        assert 0.0 <= metrics[name] <= (1.0 if name != "loss" else 10.0)
    assert metrics["accuracy"] > 0.9 and metrics["f1"] > 0.9
    model = json.loads((out / "model.json").read_text())
    assert model["classes"] == ["0", "1"]
    records = [json.loads(line) for line in metrics_file.read_text().splitlines()]
    assert [r["step"] for r in records] == [20, 40, 60]
    assert all("loss" in r and "accuracy" in r for r in records)


def test_logistic_regression_handles_text_labels_and_several_classes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_blobs(data, rows=300, classes=("cat", "dog", "eel"), header=False)
    out = tmp_path / "out"
    result = run_script(LOGREG.code_dir / "train.py", data / "train.csv", out,  # type: ignore[union-attr]
                        "--train_steps=100", "--unknown=1", isolated=True)
    assert result.returncode == 0, result.stderr
    assert "ignoring unknown argument '--unknown=1'" in result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(FOUR) <= set(metrics) and metrics["accuracy"] > 0.9
    assert json.loads((out / "model.json").read_text())["classes"] == ["cat", "dog", "eel"]


def test_logistic_regression_says_why_without_data(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    result = run_script(LOGREG.code_dir / "train.py", tmp_path / "data",  # type: ignore[union-attr]
                        tmp_path / "out", isolated=True)
    assert result.returncode == 2
    assert "no CSV files in" in result.stderr
    assert not (tmp_path / "out" / "metrics.json").exists()


@pytest.mark.slow
def test_mlp_classifier_trains_with_pytorch(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    data = tmp_path / "data"
    write_blobs(data, rows=200)
    out = tmp_path / "out"
    metrics_file = tmp_path / "metrics.jsonl"
    result = run_script(MLP.code_dir / "train.py", data, out, "--epochs=4",  # type: ignore[union-attr]
                        "--hidden=16", "--tensorboard=true",
                        env={"TRAINDECK_METRICS_FILE": str(metrics_file)})
    assert result.returncode == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(FOUR) | {"loss"} <= set(metrics) and metrics["accuracy"] > 0.9
    assert (out / "model.pt").is_file()
    assert len(metrics_file.read_text().splitlines()) == 4
    if importlib.util.find_spec("tensorboard") is not None:
        assert list((out / "tensorboard").glob("events.out.tfevents.*"))


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["local", pytest.param("docker", marks=pytest.mark.docker)])
def test_preset_version_runs_end_to_end_with_the_supervisor(
    synced: Context, tmp_path: Path, runtime: str,
) -> None:
    from app.runtime.control import wait_final

    data = write_blobs(tmp_path / "data").parent
    raw = preset_spec(data, train_steps=40, log_every=10) | {"resources": {"runtime": runtime}}
    ref = submit(synced, raw, tmp_path)
    version = wait_final(synced, ref.job, ref.version, 90)
    assert version.status == Status.SUCCEEDED, version.reason
    with synced.db.read() as session:
        finals = {r.name: r.value for r in session.exec(
            select(MetricSummary).where(MetricSummary.version_id == ref.version_id))}
    assert set(FOUR) <= set(finals)


@pytest.mark.docker
def test_logistic_regression_runs_in_the_minimal_python_image(docker_engine: Any,
                                                              tmp_path: Path) -> None:
    image = "traindeck/python:3.11"
    try:
        docker_engine.images.get(image)
    except Exception:
        pytest.skip(f"image {image} missing (scripts/build-test-image)")
    data = write_blobs(tmp_path / "data").parent
    out = tmp_path / "out"
    out.mkdir()
    logs = docker_engine.containers.run(
        image, ["python3", "/code/train.py", "--data_url=/data", "--train_url=/out",
                "--train_steps=30"],
        volumes={str(LOGREG.code_dir): {"bind": "/code", "mode": "ro"},  # type: ignore[union-attr]
                 str(data): {"bind": "/data", "mode": "ro"},
                 str(out): {"bind": "/out", "mode": "rw"}},
        user=f"{os.getuid()}:{os.getgid()}", remove=True, network_disabled=True,
    )
    assert b"final:" in logs
    assert set(FOUR) <= set(json.loads((out / "metrics.json").read_text()))
