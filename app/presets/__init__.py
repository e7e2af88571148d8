"""Preset algorithms: training code shipped with Traindeck, with parameter schemas.

Each preset is a folder beside this module holding its boot file (`train.py`), plus an
entry in `PRESETS` saying which engine runs it and which run parameters it takes.
`sync_presets` mirrors the entries into the `preset_algorithms` table (what the catalog
validates specs against and the wizard lists); the planner (`app.runtime.plan`) runs a
version whose algorithm is a preset from its definition.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from sqlmodel import select

from app.specs.rules import ParamSchema, PresetInfo
from app.store.db import Database
from app.store.models import PresetAlgorithm

PRESETS_DIR = Path(__file__).resolve().parent
BOOT_FILE = "train.py"


@dataclass(frozen=True)
class PresetDefinition:
    """A shipped algorithm: where its code lives, what runs it, what it accepts."""

    name: str
    description: str
    engine: str
    engine_version: str
    folder: str
    """Folder of the code, relative to this package."""
    params: tuple[ParamSchema, ...]
    boot_file: str = BOOT_FILE

    @property
    def code_dir(self) -> Path:
        """Absolute folder of the preset's code."""
        return PRESETS_DIR / self.folder

    def info(self) -> PresetInfo:
        """The validation view of this preset."""
        return PresetInfo(self.name, self.engine, self.engine_version, self.params)


def _int(name: str, default: int, low: int, high: int, help_text: str) -> ParamSchema:
    return ParamSchema(name, "int", default, low, high, (), help_text)


def _float(name: str, default: float, low: float, high: float, help_text: str) -> ParamSchema:
    return ParamSchema(name, "float", default, low, high, (), help_text)


def _choice(name: str, default: str, choices: tuple[str, ...], help_text: str) -> ParamSchema:
    return ParamSchema(name, "str", default, None, None, choices, help_text)


_SHARED = (
    _float("test_ratio", 0.2, 0.0, 0.9, "share of rows held out to measure the metrics"),
    _int("seed", 42, 0, 2**31 - 1, "random seed of the split and the initial weights"),
)

PRESETS: tuple[PresetDefinition, ...] = (
    PresetDefinition(
        name="logistic-regression",
        description="Logistic (softmax) regression on CSV data; standard library only, "
                    "runs on any Python 3.11",
        engine="python", engine_version="3.11", folder="logistic_regression",
        params=(
            _int("train_steps", 200, 1, 100_000, "full-batch gradient steps"),
            _float("lr", 0.5, 1e-6, 100.0, "learning rate"),
            _float("l2", 0.0, 0.0, 100.0, "L2 penalty on the weights"),
            _int("log_every", 10, 1, 100_000, "steps between metric records"),
            *_SHARED,
        ),
    ),
    PresetDefinition(
        name="mlp-classifier",
        description="Multi-layer perceptron classifier on CSV data (PyTorch); writes "
                    "TensorBoard event files",
        engine="pytorch", engine_version="2.13", folder="mlp_classifier",
        params=(
            _int("epochs", 20, 1, 100_000, "passes over the training rows"),
            _float("lr", 0.01, 1e-6, 10.0, "learning rate"),
            _int("hidden", 64, 1, 65_536, "units per hidden layer"),
            _int("layers", 2, 1, 16, "hidden layers"),
            _choice("activation", "relu", ("relu", "tanh", "gelu"), "hidden activation"),
            _float("dropout", 0.0, 0.0, 0.95, "dropout after each hidden layer"),
            _int("batch_size", 32, 1, 1_048_576, "rows per mini-batch (per rank)"),
            _choice("optimizer", "adam", ("adam", "sgd"), "optimiser"),
            _float("weight_decay", 0.0, 0.0, 1.0, "L2 weight decay"),
            _choice("device", "auto", ("auto", "cpu", "cuda"), "auto uses a GPU when given"),
            ParamSchema("tensorboard", "bool", True, help="write TensorBoard event files"),
            *_SHARED,
        ),
    ),
)


def shipped_presets() -> list[PresetDefinition]:
    """Every shipped preset, in catalog order."""
    return list(PRESETS)


def preset_definition(name: str) -> PresetDefinition | None:
    """The shipped preset of that name, if any."""
    return next((p for p in PRESETS if p.name == name), None)


def params_schema_json(params: tuple[ParamSchema, ...]) -> str:
    """A parameter schema as stored in `PresetAlgorithm.params_schema_json`.

    The keys are those `app.catalog.preset_info` reads back; empty ones are left out.
    """
    out = []
    for param in params:
        data = asdict(param)
        data["choices"] = list(param.choices)
        out.append({k: v for k, v in data.items() if v not in (None, [], "")})
    return json.dumps(out, sort_keys=True)


def _row_values(preset: PresetDefinition) -> tuple[str, str, str, str, str, str]:
    return (preset.description, preset.engine, preset.engine_version, str(preset.code_dir),
            preset.boot_file, params_schema_json(preset.params))


def sync_presets(db: Database) -> bool:
    """Mirror the shipped presets into the `preset_algorithms` table.

    Reads the table once and writes only when something differs (a new Traindeck
    version, or a moved install), so calling it at every start costs one small query.
    Rows of presets no longer shipped are removed. Returns True when it wrote.
    """
    wanted = {p.name: _row_values(p) for p in PRESETS}
    with db.read() as session:
        have = {
            r.name: (r.description, r.engine, r.engine_version, r.code_dir, r.boot_file,
                     r.params_schema_json)
            for r in session.exec(select(PresetAlgorithm))
        }
    if have == wanted:
        return False
    with db.write() as session:
        rows = {r.name: r for r in session.exec(select(PresetAlgorithm))}
        for name, row in rows.items():
            if name not in wanted:
                session.delete(row)
        for name, values in wanted.items():
            row = rows.get(name) or PresetAlgorithm(name=name, engine="", engine_version="",
                                                     code_dir="", boot_file="")
            (row.description, row.engine, row.engine_version, row.code_dir, row.boot_file,
             row.params_schema_json) = values
            session.add(row)
    return True


__all__ = [
    "PRESETS",
    "PRESETS_DIR",
    "PresetDefinition",
    "params_schema_json",
    "preset_definition",
    "shipped_presets",
    "sync_presets",
]
