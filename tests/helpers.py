"""Helpers shared by the test modules (import as `from helpers import ...`).

Nothing here is a fixture: fixtures live in `conftest.py` and hand these objects out.
"""

from __future__ import annotations

import copy
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import func, select
from sqlmodel import SQLModel

from app.context import Context
from app.jobs import VersionRef, create_version, modified_spec, set_status
from app.specs.rules import EngineInfo, PresetInfo
from app.specs.spec import is_remote
from app.store.db import Database
from app.store.models import Status

BOOT_OK = "import sys\nsys.exit(0)\n"
"""A boot file that ends at once, successfully."""
BOOT_EXIT_3 = "import sys\nsys.exit(3)\n"
"""A boot file that ends at once with exit code 3."""
IMAGE = "traindeck/python:3.11"
"""The locally built test image (`scripts/build-test-image`) the Docker tests run in."""
SLURM_PARTITION = "debug"
"""The partition of `scripts/ensure-slurm`'s single-host Slurm (1 node, 4 CPUs, 2 GPUs)."""
SNAPSHOT_LIMIT = 10 * 1024 * 1024
"""The code snapshot size limit the snapshot tests take (10 MiB)."""


def noop_launcher(ctx: Context, version_id: int) -> None:
    """A launcher that starts nothing: the version stays `initializing`."""


def instant_launcher(ctx: Context, version_id: int) -> None:
    """A launcher that 'runs' the version at once: running, then succeeded with exit 0.

    Keeps CLI tests independent of the run engine while leaving every version final,
    so that the reconciliation each CLI command does never restarts anything.
    """
    set_status(ctx, version_id, Status.RUNNING)
    set_status(ctx, version_id, Status.SUCCEEDED, exit_code=0)


def new_version(ctx: Context, job: str, parent: str, sets: dict[str, Any],
                base_dir: Path | None = None) -> VersionRef:
    """A version of `job` made from `parent` with run parameters set (as `traindeck modify
    --set` makes it), launched by `noop_launcher`."""
    _, spec, parent_id = modified_spec(ctx, job, parent, sets, base_dir=base_dir)
    return create_version(ctx, job, spec, parent_id, launcher=noop_launcher)


def count_rows(db: Database) -> dict[str, int]:
    """Rows in every table of the schema, by table name."""
    with db.read() as session:
        return {
            table.name: int(session.execute(select(func.count()).select_from(table)).scalar_one())
            for table in SQLModel.metadata.sorted_tables
        }


def write_yaml(path: Path, data: Any) -> Path:
    """Write `data` as YAML to `path` (folders created) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def write_files(folder: Path, files: dict[str, str | bytes]) -> Path:
    """Write `files` (relative path → text or bytes) under `folder`."""
    for rel, body in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(body, bytes):
            path.write_bytes(body)
        else:
            path.write_text(body)
    return folder


def traindeck_executable() -> str:
    """The installed `traindeck` console script of the interpreter running the tests."""
    beside = Path(sys.executable).parent / "traindeck"
    if beside.exists():
        return str(beside)
    found = shutil.which("traindeck")
    if found is None:
        raise RuntimeError("the traindeck console script is not installed")
    return found


@dataclass
class Project:
    """A code dir with a boot file, a data dir, and a valid raw spec using relative paths."""

    base: Path
    """Folder relative spec paths resolve against (where `spec.yaml` is written)."""
    code_dir: Path
    data_dir: Path
    spec: dict[str, Any] = field(default_factory=dict)

    @property
    def boot_file(self) -> Path:
        """The boot file inside the code dir."""
        return self.code_dir / "train.py"

    def raw(self, **changes: Any) -> dict[str, Any]:
        """A deep copy of the spec with top-level keys replaced (a value of None removes one)."""
        raw = copy.deepcopy(self.spec)
        for key, value in changes.items():
            if value is None:
                raw.pop(key, None)
            else:
                raw[key] = value
        return raw

    def write_spec(self, raw: dict[str, Any] | None = None, name: str = "spec.yaml") -> Path:
        """Write a spec (default: this project's) next to the code and data dirs."""
        return write_yaml(self.base / name, self.spec if raw is None else raw)


def build_project(
    base: Path, name: str = "demo", boot: str = BOOT_OK,
    parameters: dict[str, Any] | None = None,
) -> Project:
    """Create `base/code/train.py` and `base/data/sample.csv` and a valid spec for them.

    The spec runs as a local process (`resources.runtime: local`) so that nothing depends
    on a Docker engine, and writes its output and logs under `base`.
    """
    code_dir, data_dir = base / "code", base / "data"
    code_dir.mkdir(parents=True, exist_ok=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    (code_dir / "train.py").write_text(boot, encoding="utf-8")
    (data_dir / "sample.csv").write_text("x,y\n1,0\n", encoding="utf-8")
    spec: dict[str, Any] = {
        "name": name,
        "description": "a test job",
        "data": {"paths": ["data"]},
        "algorithm": {
            "framework": {
                "engine": "python",
                "engine_version": "3.11",
                "code_dir": "code",
                "boot_file": "train.py",
            }
        },
        "parameters": {"lr": 0.1, "epochs": 2} if parameters is None else parameters,
        "output": "out",
        "log_dir": "logs",
        "resources": {"pool": "public", "gpus": 0, "nodes": 1, "runtime": "local"},
    }
    return Project(base=base, code_dir=code_dir, data_dir=data_dir, spec=spec)


def run_cli(*argv: str) -> tuple[int, str]:
    """Run `traindeck ARGV...` in this process: its exit code and what it printed
    (standard output, then any `error: ...` line)."""
    import contextlib
    import io

    from app.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue() + err.getvalue()


def require_image(docker_engine: Any, image: str) -> None:
    """Fail (engine tests required) or skip when the test image is not built."""
    from docker.errors import ImageNotFound

    try:
        docker_engine.images.get(image)
    except ImageNotFound:
        message = f"image {image} missing: run scripts/build-test-image"
        if os.environ.get("TRAINDECK_REQUIRE_DOCKER") == "1":
            pytest.fail(message)
        pytest.skip(message)


@dataclass
class StaticCatalog:
    """A catalog held in memory, for checking specs without a Traindeck home."""

    engines: list[EngineInfo] = field(default_factory=list)
    pools: set[str] = field(default_factory=lambda: {"public"})
    topics: set[str] = field(default_factory=set)
    datasets: dict[str, dict[str, str]] = field(default_factory=dict)
    presets: dict[str, PresetInfo] = field(default_factory=dict)

    def engine(self, name: str, version: str) -> EngineInfo | None:
        return next((e for e in self.engines if e.name == name and e.version == version), None)

    def engine_versions(self, name: str) -> list[str]:
        return [e.version for e in self.engines if e.name == name]

    def has_pool(self, name: str) -> bool:
        return name in self.pools

    def has_topic(self, name: str) -> bool:
        return name in self.topics

    def has_dataset_version(self, name: str, version: str) -> bool | None:
        versions = self.datasets.get(name)
        return None if versions is None else version in versions

    def dataset_local_paths(self, name: str, version: str) -> list[str]:
        uri = self.datasets.get(name, {}).get(version)
        return [uri] if uri and not is_remote(uri) else []

    def preset(self, name: str) -> PresetInfo | None:
        return self.presets.get(name)
