"""Models from succeeded versions: refusal of every other status, records, copies, delete."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import noop_launcher, run_cli

from app.context import Context
from app.errors import ConflictError, FieldError, NotFoundError
from app.jobs import submit
from app.lifecycle import delete_rows, set_status
from app.registry import (
    create_model,
    create_model_refusal,
    delete_model,
    get_model,
    list_models,
    models_dir,
)
from app.store.models import MetricSummary, ModelVersion, Status, Version


def make_version(ctx: Context, make_project: Callable[..., Any], status: Status,
                 name: str = "demo") -> Version:
    """A version of a new job moved to `status`, with output files and final metrics."""
    project = make_project(name, parameters={"lr": 0.05, "epochs": 3, "optimizer": "adam"})
    ref = submit(ctx, project.raw(), project.base, launcher=noop_launcher)
    path = {
        Status.INITIALIZING: [], Status.QUEUED: [Status.QUEUED],
        Status.RUNNING: [Status.RUNNING], Status.SUCCEEDED: [Status.RUNNING, Status.SUCCEEDED],
        Status.FAILED: [Status.RUNNING, Status.FAILED], Status.STOPPED: [Status.STOPPED],
    }[status]
    for step in path:
        set_status(ctx, ref.version_id, step, "exit code 2" if step == Status.FAILED else "")
    with ctx.db.write() as session:
        session.add(MetricSummary(version_id=ref.version_id, name="accuracy", value=0.95))
        session.add(MetricSummary(version_id=ref.version_id, name="f1", value=0.9))
        version = session.get(Version, ref.version_id)
    assert version is not None
    out = Path(version.output)
    (out / "sub").mkdir(parents=True, exist_ok=True)
    (out / "model.json").write_text('{"w": [1, 2]}')
    (out / "sub" / "weights.bin").write_bytes(b"\x00\x01" * 100)
    return version


@pytest.mark.parametrize("status", [Status.INITIALIZING, Status.QUEUED, Status.RUNNING,
                                    Status.FAILED, Status.STOPPED])
def test_only_succeeded_versions_become_models(
    ctx: Context, make_project: Callable[..., Any], status: Status,
) -> None:
    make_version(ctx, make_project, status)
    with pytest.raises(ConflictError) as info:
        create_model(ctx, "clf", "demo", "V001")
    assert str(info.value) == f"create model: only succeeded versions (V001 is {status.value})"
    assert list_models(ctx.db) == []
    assert not models_dir(ctx.settings).exists() or not any(models_dir(ctx.settings).iterdir())
    assert create_model_refusal(status.value, "V001") == str(info.value)


def test_create_from_succeeded_records_metrics_parameters_and_source(
    ctx: Context, make_project: Callable[..., Any],
) -> None:
    version = make_version(ctx, make_project, Status.SUCCEEDED)
    assert create_model_refusal("succeeded", "V001") is None
    first = create_model(ctx, "clf", "demo", "v1", description="blob classifier")
    assert (first.model, first.version, first.source) == ("clf", "V001", "demo/V001")
    assert first.metrics == {"accuracy": 0.95, "f1": 0.9}
    assert first.parameters == {"lr": 0.05, "epochs": 3, "optimizer": "adam"}
    assert first.engine == "python 3.11"
    assert (first.artifact, first.copied) == (version.output, False)
    second = create_model(ctx, "clf", "demo", "V001")
    assert second.version == "V002"
    [summary] = list_models(ctx.db)
    assert (summary.name, summary.version_count, summary.latest) == ("clf", 2, "V002")
    assert summary.description == "blob classifier"
    model = get_model(ctx.db, "clf")
    assert [v.version for v in model.versions] == ["V001", "V002"]
    assert json.loads(json.dumps(model.to_dict()))["versions"][0]["source"] == "demo/V001"


def test_copy_really_copies_and_survives_the_job(
    ctx: Context, make_project: Callable[..., Any],
) -> None:
    version = make_version(ctx, make_project, Status.SUCCEEDED)
    info = create_model(ctx, "clf", "demo", "V001", copy=True)
    target = models_dir(ctx.settings) / "clf" / "V001"
    assert (info.artifact, info.copied) == (str(target), True)
    assert (target / "model.json").read_text() == '{"w": [1, 2]}'
    assert (target / "sub" / "weights.bin").read_bytes() == b"\x00\x01" * 100
    assert not [p for p in models_dir(ctx.settings).iterdir() if p.name.startswith(".staging")]
    (Path(version.output) / "model.json").write_text("changed")
    assert (target / "model.json").read_text() == '{"w": [1, 2]}'
    delete_rows(ctx, "demo", None)  # the job goes; the model and its copy stay
    model = get_model(ctx.db, "clf")
    assert model.versions[0].source == "demo/V001"
    assert model.versions[0].source_version_id is None
    assert (target / "model.json").is_file()


def test_delete_a_version_then_the_model(ctx: Context, make_project: Callable[..., Any]) -> None:
    version = make_version(ctx, make_project, Status.SUCCEEDED)
    create_model(ctx, "clf", "demo", "V001", copy=True)
    create_model(ctx, "clf", "demo", "V001")
    assert delete_model(ctx, "clf", "V001") == ["V001"]
    assert not (models_dir(ctx.settings) / "clf" / "V001").exists()
    assert [v.version for v in get_model(ctx.db, "clf").versions] == ["V002"]
    assert delete_model(ctx, "clf") == ["V002"]
    assert Path(version.output, "model.json").is_file()  # a referenced output is left alone
    with pytest.raises(NotFoundError):
        get_model(ctx.db, "clf")
    with ctx.db.read() as session:
        assert session.get(ModelVersion, 1) is None
    with pytest.raises(NotFoundError):
        delete_model(ctx, "clf")


def test_bad_names_and_missing_sources(ctx: Context, make_project: Callable[..., Any]) -> None:
    version = make_version(ctx, make_project, Status.SUCCEEDED)
    with pytest.raises(FieldError):
        create_model(ctx, "no spaces", "demo", "V001")
    with pytest.raises(NotFoundError):
        create_model(ctx, "clf", "demo", "V009")
    with pytest.raises(NotFoundError):
        create_model(ctx, "clf", "ghost", "V001")
    import shutil

    shutil.rmtree(version.output)
    with pytest.raises(ConflictError, match="no longer exists"):
        create_model(ctx, "clf", "demo", "V001", copy=True)
    with pytest.raises(ConflictError, match="no longer exists"):
        create_model(ctx, "clf", "demo", "V001")
    assert list_models(ctx.db) == []




def test_models_cli(ctx: Context, make_project: Callable[..., Any]) -> None:
    make_version(ctx, make_project, Status.SUCCEEDED)
    make_version(ctx, make_project, Status.FAILED, name="broken")
    code, out = run_cli("models", "create", "clf", "--job", "demo", "--version", "V001",
                        "--copy", "--json")
    assert code == 0, out
    assert json.loads(out)["copied"] is True
    code, out = run_cli("models", "create", "clf", "--job", "broken", "-v", "V001")
    assert code == 1
    assert "create model: only succeeded versions (V001 is failed)" in out
    code, out = run_cli("models", "list", "--json")
    assert [m["name"] for m in json.loads(out)] == ["clf"]
    code, out = run_cli("models", "show", "clf")
    assert code == 0 and "from demo/V001" in out and "accuracy=0.95" in out
    code, out = run_cli("models", "delete", "clf")
    assert code == 1 and "--yes" in out
    code, out = run_cli("models", "--json", "delete", "clf", "--yes")
    assert json.loads(out) == {"model": "clf", "deleted": ["V001"]}
    code, out = run_cli("presets", "list", "--json")
    assert {p["name"] for p in json.loads(out)} == {"logistic-regression", "mlp-classifier"}
    code, out = run_cli("presets", "show", "mlp-classifier")
    assert code == 0 and "adam | sgd" in out
