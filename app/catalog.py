"""The catalog a spec is checked against: engines, pools and topics from the settings,
datasets and preset algorithms from the database.

The settings are the source of truth for engines, pools and topics; `sync_catalog`
mirrors them into their tables so that the TUI and other processes can list them.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from sqlmodel import Session, select

from app.config import Settings
from app.errors import FieldError
from app.specs.rules import EngineInfo, ParamSchema, PresetInfo
from app.specs.spec import JobSpec, is_remote
from app.store.db import Database
from app.store.models import (
    Dataset,
    DatasetVersion,
    EngineRow,
    PresetAlgorithm,
    ResourcePool,
    Topic,
    parse_version_label,
)


def _parse_version(label: str) -> int | None:
    try:
        return parse_version_label(label)
    except FieldError:
        return None


def preset_info(row: PresetAlgorithm) -> PresetInfo:
    """The validation view of a preset algorithm row."""
    params = tuple(
        ParamSchema(
            name=p["name"],
            type=p.get("type", "str"),
            default=p.get("default"),
            min=p.get("min"),
            max=p.get("max"),
            choices=tuple(p.get("choices", ())),
            help=p.get("help", ""),
        )
        for p in json.loads(row.params_schema_json or "[]")
    )
    return PresetInfo(row.name, row.engine, row.engine_version, params)


@dataclass
class DbCatalog:
    """The live catalog: settings plus what the database knows."""

    db: Database
    settings: Settings

    def engine(self, name: str, version: str) -> EngineInfo | None:
        entry = self.settings.engine(name, version)
        return EngineInfo(entry.name, entry.version, entry.single_node) if entry else None

    def engine_versions(self, name: str) -> list[str]:
        return [e.version for e in self.settings.engines if e.name == name]

    def has_pool(self, name: str) -> bool:
        return self.settings.pool(name) is not None

    def has_topic(self, name: str) -> bool:
        return self.settings.topic(name) is not None

    def _dataset_version(self, session: Session, name: str, label: str) -> DatasetVersion | None:
        number = _parse_version(label)
        return session.exec(
            select(DatasetVersion)
            .join(Dataset, Dataset.id == DatasetVersion.dataset_id)  # type: ignore[arg-type]
            .where(Dataset.name == name, DatasetVersion.number == number)
        ).first()

    def has_dataset_version(self, name: str, version: str) -> bool | None:
        with self.db.read() as session:
            if session.exec(select(Dataset.id).where(Dataset.name == name)).first() is None:
                return None
            return self._dataset_version(session, name, version) is not None

    def dataset_local_paths(self, name: str, version: str) -> list[str]:
        with self.db.read() as session:
            row = self._dataset_version(session, name, version)
        return [row.uri] if row and not is_remote(row.uri) else []

    def preset(self, name: str) -> PresetInfo | None:
        with self.db.read() as session:
            row = session.exec(select(PresetAlgorithm).where(PresetAlgorithm.name == name)).first()
        return preset_info(row) if row else None


ENGINE_MODULES = {"pytorch": "torch", "tensorflow": "tensorflow", "mxnet": "mxnet",
                  "scikit-learn": "sklearn", "xgboost": "xgboost", "caffe": "caffe"}
"""The module an engine's code imports, which its local interpreter must have."""


@functools.cache
def _has_module(interpreter: str | None, module: str) -> bool:
    """True when `interpreter` (None: this Python) can import `module` (found, not run)."""
    if interpreter is None:
        return importlib.util.find_spec(module) is not None
    probe = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({module!r}) is None)"
    try:
        return subprocess.run([interpreter, "-c", probe], capture_output=True, timeout=10,
                              check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def unavailable_reason(settings: Settings, engine: str, version: str) -> str | None:
    """Why an engine cannot run as local processes here (its local interpreter lacks the
    engine's module), with the fix; None when it can. For the wizard and `validate`."""
    entry = settings.engine(engine, version)
    module = ENGINE_MODULES.get(engine)
    if entry is None or module is None or _has_module(entry.interpreter, module):
        return None
    interpreter = entry.interpreter or sys.executable
    build = (f", or run it in Docker (`traindeck images build {engine}`)"
             if engine in ("python", "pytorch") else ", or run it in Docker")
    return (f"{engine} {version}: the local interpreter {interpreter} has no module "
            f"{module!r}; fix: `{interpreter} -m pip install {_package(engine)}`, list it in "
            f"the code folder's requirements.txt, set the engine's interpreter to one that "
            f"has it{build}")


def _package(engine: str) -> str:
    """The pip package of an engine's module (`sklearn` is `scikit-learn`'s)."""
    return "torch" if engine == "pytorch" else engine


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _installs(code_dir: Path, package: str) -> bool:
    """True when the code folder's requirements.txt names `package` (it is installed into
    the version's environment before the run)."""
    try:
        lines = (code_dir / "requirements.txt").read_text(errors="replace").splitlines()
    except OSError:
        return False
    names = (re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line) for line in lines)
    return _normalized(package) in {_normalized(m[1]) for m in names if m}


def spec_unavailable_reason(catalog: DbCatalog, spec: JobSpec) -> tuple[str, str] | None:
    """`(field, reason)` when a spec that runs as local processes needs what the local
    interpreter lacks (a preset through its engine); None otherwise."""
    if spec.resources.runtime not in (None, "local"):
        return None
    algo = spec.algorithm
    if algo.framework is not None:
        if algo.requirements != "ignore" and _installs(Path(algo.framework.code_dir),
                                                       _package(algo.framework.engine)):
            return None
        found = unavailable_reason(catalog.settings, algo.framework.engine,
                                   algo.framework.engine_version)
        return ("algorithm.framework.engine", found) if found else None
    preset = catalog.preset(algo.preset.name) if algo.preset is not None else None
    if preset is None:
        return None
    found = unavailable_reason(catalog.settings, preset.engine, preset.engine_version)
    return ("algorithm.preset.name", f"preset {preset.name}: {found}") if found else None


def sync_catalog(db: Database, settings: Settings) -> None:
    """Mirror the settings' engines, pools and topics into their tables (writes only changes)."""
    wanted_engines = {
        (e.name, e.version): (e.image, e.interpreter, e.single_node, e.tensorboard)
        for e in settings.engines
    }
    wanted_pools = {
        p.name: (p.kind, ",".join(map(str, p.gpus)), p.description) for p in settings.pools
    }
    wanted_topics = {t.name: (t.description, len(t.urls)) for t in settings.topics}
    with db.read() as session:
        have_engines = {
            (r.name, r.version): (r.image, r.interpreter, r.single_node, r.tensorboard)
            for r in session.exec(select(EngineRow))
        }
        have_pools = {
            r.name: (r.kind, r.gpus, r.description) for r in session.exec(select(ResourcePool))
        }
        have_topics = {r.name: (r.description, r.url_count) for r in session.exec(select(Topic))}
    if (wanted_engines, wanted_pools, wanted_topics) == (have_engines, have_pools, have_topics):
        return
    with db.write() as session:
        for row in session.exec(select(EngineRow)):
            session.delete(row)
        for row in session.exec(select(ResourcePool)):
            session.delete(row)
        for row in session.exec(select(Topic)):
            session.delete(row)
        session.flush()
        for (name, version), (image, interp, single, tb) in wanted_engines.items():
            session.add(EngineRow(name=name, version=version, image=image, interpreter=interp,
                                  single_node=single, tensorboard=tb))
        for name, (kind, gpus, desc) in wanted_pools.items():
            session.add(ResourcePool(name=name, kind=kind, gpus=gpus, description=desc))
        for name, (desc, count) in wanted_topics.items():
            session.add(Topic(name=name, description=desc, url_count=count))


