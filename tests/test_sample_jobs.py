"""The sample jobs run for real, as subprocesses, the way Traindeck starts a boot file."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_jobs"
LOGREG = SAMPLES / "logreg" / "train.py"
MAKE_DATA = SAMPLES / "logreg" / "make_data.py"
TORCH_MLP = SAMPLES / "torch_mlp" / "train.py"
BLOBS = SAMPLES / "data" / "blobs"

FOUR_METRICS = ("accuracy", "precision", "recall", "f1")
# Variables a Traindeck run sets; cleared so the caller's environment cannot leak in.
RUN_VARS = (
    "TRAINDECK_METRICS_FILE",
    "TRAINDECK_JOB",
    "TRAINDECK_VERSION",
    "MASTER_ADDR",
    "MASTER_PORT",
    "WORLD_SIZE",
    "RANK",
    "NODE_RANK",
    "LOCAL_RANK",
)


def job_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in RUN_VARS}
    env.update(TRAINDECK_JOB="sample-test", TRAINDECK_VERSION="V001", PYTHONDONTWRITEBYTECODE="1")
    env.update(extra)
    return env


def logreg_cmd(out: Path, *params: str, data: Path | None = BLOBS) -> list[str]:
    # -S: no site-packages, so the script must get by on the standard library.
    cmd = [sys.executable, "-S", str(LOGREG)]
    if data is not None:
        cmd.append(f"--data_url={data}")
    return [*cmd, f"--train_url={out}", *params]


def run(cmd: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def assert_final_metrics(out: Path, min_accuracy: float = 0.9) -> dict:
    metrics = json.loads((out / "metrics.json").read_text())
    for key in FOUR_METRICS:
        assert 0.0 <= metrics[key] <= 1.0, (key, metrics[key])
    assert metrics["accuracy"] > min_accuracy
    assert metrics["loss"] >= 0.0
    return metrics


def require_torch() -> None:
    if importlib.util.find_spec("torch") is None:
        pytest.fail(
            "PyTorch is not installed in this environment; the torch sample tests need it: "
            "pip install torch==2.13.0"
        )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------- logreg


def test_logreg_trains_on_shipped_data(tmp_path: Path) -> None:
    out = tmp_path / "out" / "nested"  # created by the script
    metrics_file = tmp_path / "metrics.jsonl"
    proc = run(logreg_cmd(out), job_env(TRAINDECK_METRICS_FILE=str(metrics_file)))
    assert proc.returncode == 0, proc.stderr

    assert "job=sample-test version=V001" in proc.stdout
    assert "step 10/200 loss=" in proc.stdout
    assert "step 200/200 loss=" in proc.stdout
    metrics = assert_final_metrics(out)
    assert metrics["train_steps"] == 200

    lines = read_jsonl(metrics_file)
    steps = [line["step"] for line in lines]
    assert steps == list(range(10, 201, 10))
    assert all(0.0 <= line["accuracy"] <= 1.0 and line["loss"] >= 0.0 for line in lines)
    assert lines[-1]["loss"] < lines[0]["loss"]

    model = json.loads((out / "model.json").read_text())
    assert model["classes"] == ["0", "1"]
    assert model["features"] == ["x1", "x2"]
    assert len(model["weights"]) == 1 and len(model["weights"][0]) == 2


def test_logreg_is_deterministic_and_falls_back_to_builtin_data(tmp_path: Path) -> None:
    shipped = run(logreg_cmd(tmp_path / "a"), job_env())
    empty = tmp_path / "empty"
    empty.mkdir()
    builtin = run(logreg_cmd(tmp_path / "b", data=empty), job_env())
    assert shipped.returncode == 0, shipped.stderr
    assert builtin.returncode == 0, builtin.stderr
    assert "built-in blobs dataset" in builtin.stderr
    # The built-in data is what make_data.py writes, so the results are identical.
    assert (tmp_path / "a" / "metrics.json").read_text() == (
        tmp_path / "b" / "metrics.json"
    ).read_text()


def test_logreg_fail_at_step_exits_3(tmp_path: Path) -> None:
    metrics_file = tmp_path / "m.jsonl"
    proc = run(
        logreg_cmd(tmp_path / "out", "--fail_at_step=5", "--log_every=1"),
        job_env(TRAINDECK_METRICS_FILE=str(metrics_file)),
    )
    assert proc.returncode == 3
    assert "injected failure at step 5" in proc.stderr
    assert not (tmp_path / "out" / "metrics.json").exists()
    assert [line["step"] for line in read_jsonl(metrics_file)] == [1, 2, 3, 4, 5]


def test_logreg_fail_at_step_zero_fails_before_training(tmp_path: Path) -> None:
    proc = run(logreg_cmd(tmp_path / "out", "--fail_at_step=0"), job_env())
    assert proc.returncode == 3
    assert "injected failure at step 0" in proc.stderr
    assert "step 1/" not in proc.stdout


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM is a POSIX signal")
def test_logreg_sigterm_exits_143(tmp_path: Path) -> None:
    cmd = logreg_cmd(
        tmp_path / "out", "--train_steps=1000", "--log_every=1", "--sleep_per_step=60"
    )
    proc = subprocess.Popen(
        cmd, env=job_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        seen = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            if line.startswith("step 1/1000"):
                break
        assert any(line.startswith("step 1/1000") for line in seen), "".join(seen)
        # The job is now inside its 60 s sleep after step 1: only an interrupted sleep
        # ends it within the communicate() timeout below.
        proc.send_signal(signal.SIGTERM)
        rest, _err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143
    assert "received SIGTERM" in rest
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_logreg_unknown_parameters_warn_but_run(tmp_path: Path) -> None:
    proc = run(
        logreg_cmd(tmp_path / "out", "--no_such_param=5", "--train=1", "--train_steps=50"),
        job_env(),
    )
    assert proc.returncode == 0, proc.stderr
    assert "unknown parameter '--no_such_param=5'" in proc.stderr
    # Not taken as an abbreviation of --train_steps / --train_url.
    assert "unknown parameter '--train=1'" in proc.stderr
    assert "step 50/50" in proc.stdout
    assert_final_metrics(tmp_path / "out")


def test_parameter_values_are_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    bad_seed = run(logreg_cmd(tmp_path / "a", f"--seed=1; touch {marker}"), job_env())
    # A known parameter with a non-integer value is refused as a usage error.
    assert bad_seed.returncode == 2
    assert "invalid int value" in bad_seed.stderr
    unknown = run(
        logreg_cmd(
            tmp_path / "b",
            f"--note=1; touch {marker}",
            f"--other=$(touch {marker})",
            f"--third=`touch {marker}`",
        ),
        job_env(),
    )
    assert unknown.returncode == 0, unknown.stderr
    assert "ignoring unknown parameter" in unknown.stderr
    assert not marker.exists()


def test_logreg_uses_only_the_standard_library() -> None:
    allowed = set(sys.stdlib_module_names) | {"__future__", "make_data"}
    for script in (LOGREG, MAKE_DATA):
        tree = ast.parse(script.read_text(), filename=str(script))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] in allowed, f"{script.name} imports {name}"


def test_make_data_reproduces_the_shipped_csv(tmp_path: Path) -> None:
    target = tmp_path / "train.csv"
    proc = run([sys.executable, "-S", str(MAKE_DATA), f"--out={target}"], job_env())
    assert proc.returncode == 0, proc.stderr
    shipped = (BLOBS / "train.csv").read_bytes()
    assert target.read_bytes() == shipped
    rows = shipped.decode().splitlines()
    assert rows[0] == "x1,x2,label"
    assert len(rows) == 501
    assert {row.rsplit(",", 1)[1] for row in rows[1:]} == {"0", "1"}


# --------------------------------------------------------------------------- specs

NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
SPECS = {
    "logreg-local.yaml": ("python", "3.11", "local", 1),
    "logreg-docker.yaml": ("python", "3.11", "docker", 1),
    "torch-mlp.yaml": ("pytorch", "2.13", "local", 1),
    "torch-mlp-2node.yaml": ("pytorch", "2.13", "local", 2),
}


@pytest.mark.parametrize("spec_name", sorted(SPECS))
def test_sample_specs_are_well_formed(spec_name: str) -> None:
    engine, engine_version, runtime, nodes = SPECS[spec_name]
    spec_path = SAMPLES / spec_name
    spec = yaml.safe_load(spec_path.read_text())
    base = spec_path.parent

    assert NAME_RE.match(spec["name"]), spec["name"]
    assert spec["name"] == spec_path.stem
    assert spec["description"]

    assert list(spec["data"]) == ["paths"]
    for path in spec["data"]["paths"]:
        assert (base / path).is_dir(), path
        assert list((base / path).glob("*.csv")), path

    assert list(spec["algorithm"]) == ["framework"]
    framework = spec["algorithm"]["framework"]
    assert framework["engine"] == engine
    assert framework["engine_version"] == engine_version  # a string, not a float
    boot_file = base / framework["code_dir"] / framework["boot_file"]
    assert boot_file.is_file()
    boot_source = boot_file.read_text()
    for key in spec["parameters"]:
        assert f'"--{key}"' in boot_source, f"{boot_file.name} has no parameter {key}"

    assert spec["output"] == f"./runs/{spec['name']}/out"
    assert spec["log_dir"] == f"./runs/{spec['name']}/logs"
    assert spec["resources"] == {
        "pool": "public",
        "gpus": 0,
        "nodes": nodes,
        "runtime": runtime,
    }
    assert spec["subscriptions"] == []


def test_sample_runs_folder_is_ignored() -> None:
    assert "runs/" in (SAMPLES / ".gitignore").read_text().split()


# --------------------------------------------------------------------------- torch


def test_torch_mlp_single_node(tmp_path: Path) -> None:
    require_torch()
    out = tmp_path / "out"
    metrics_file = tmp_path / "metrics.jsonl"
    proc = run(
        [
            sys.executable,
            str(TORCH_MLP),
            f"--data_url={BLOBS}",
            f"--train_url={out}",
            "--epochs=10",
            "--unknown_knob=1",
        ],
        job_env(TRAINDECK_METRICS_FILE=str(metrics_file)),
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "rank 0/1 epoch 10/10" in proc.stdout
    assert "unknown parameter '--unknown_knob=1'" in proc.stderr
    metrics = assert_final_metrics(out)
    assert metrics["world_size"] == 1
    assert (out / "model.pt").is_file()

    lines = read_jsonl(metrics_file)
    assert [line["epoch"] for line in lines] == list(range(1, 11))
    steps = [line["step"] for line in lines]
    assert steps == sorted(set(steps))

    if importlib.util.find_spec("tensorboard") is not None:
        assert list((out / "tb").glob("events.out.tfevents.*"))
    else:
        assert "tensorboard is not installed" in proc.stdout


def test_torch_mlp_two_process_gloo(tmp_path: Path) -> None:
    require_torch()
    out = tmp_path / "out"
    metrics_file = tmp_path / "metrics.jsonl"
    port = free_port()
    procs = []
    for rank in (0, 1):
        env = job_env(
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(port),
            WORLD_SIZE="2",
            RANK=str(rank),
            NODE_RANK=str(rank),
            LOCAL_RANK="0",
            TRAINDECK_METRICS_FILE=str(metrics_file),
            CUDA_VISIBLE_DEVICES="",  # two processes on CPU: gloo
        )
        cmd = [
            sys.executable,
            str(TORCH_MLP),
            f"--data_url={BLOBS}",
            f"--train_url={out}",
            "--epochs=5",
        ]
        procs.append(
            subprocess.Popen(
                cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        )
    results = []
    try:
        for proc in procs:
            stdout, stderr = proc.communicate(timeout=120)
            results.append((proc.returncode, stdout, stderr))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    for rank, (code, stdout, stderr) in enumerate(results):
        assert code == 0, f"rank {rank}:\n{stdout}\n{stderr}"
        assert f"rank {rank}/2 epoch 5/5" in stdout
        assert "backend=gloo" in stdout
        assert "trains on 200 samples per epoch" in stdout  # half of the 400 each
    assert "wrote model.pt and metrics.json" in results[0][1]
    assert "wrote model.pt" not in results[1][1]

    metrics = assert_final_metrics(out)
    assert metrics["world_size"] == 2
    assert (out / "model.pt").is_file()
    # Only rank 0 reports metrics lines: one per epoch.
    assert [line["epoch"] for line in read_jsonl(metrics_file)] == [1, 2, 3, 4, 5]
