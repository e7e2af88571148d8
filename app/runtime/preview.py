"""What `traindeck validate` says will run: rank 0's argv and environment, before any
version exists.

The preview is the real `build_plan` of a stand-in version whose folders lie in a scratch
folder (removed at once): it can never drift from what a run gets. Values only known when
the version starts are shown as stand-ins in angle brackets (`<version state>`,
`<free port>`, `<granted GPUs>`); the output folder is the one the next version gets.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import func
from sqlmodel import select

from app.runtime.gpus import GpuDevice
from app.specs.invocation import FOLDERS
from app.specs.spec import JobSpec, is_remote
from app.store.models import Job, Version, version_label

if TYPE_CHECKING:
    from app.config import Settings
    from app.context import Context

STATE = "<version state>"


@dataclass(frozen=True)
class RankPreview:
    """Rank 0 of the next version of a spec: what it runs, and what Traindeck sets."""

    version: str
    argv: list[str]
    env: dict[str, str]
    warnings: list[str]
    image: str | None = None
    """The Docker image it runs in (None: a local process)."""

    def to_dict(self) -> dict[str, Any]:
        """For `--json`."""
        return {"version": self.version, "argv": self.argv, "env": self.env,
                "warnings": self.warnings}


class _ScratchSettings:
    """The settings, with Traindeck's data folder (version state) moved to a scratch one."""

    def __init__(self, settings: Settings, data_dir: Path) -> None:
        self._settings = settings
        self.data_dir = data_dir

    def __getattr__(self, name: str) -> Any:
        return getattr(self._settings, name)


def _next_number(ctx: Context, job: str) -> int:
    with ctx.db.read() as session:
        latest = session.exec(
            select(func.max(Version.number)).join(Job, Job.id == Version.job_id)  # type: ignore[arg-type]
            .where(Job.name == job)).first()
    return (latest or 0) + 1


def reserved_parameter_warnings(spec: JobSpec) -> list[str]:
    """Run parameters that share a name with the folders Traindeck passes."""
    return [f"parameters.{name}: Traindeck already passes the "
            f"{'data' if name == 'data_url' else 'output'} folder as {name} (--{name}=, "
            f"{{{name}}}): rename the parameter" for name in FOLDERS if name in spec.parameters]


def preview_rank0(ctx: Context, spec: JobSpec) -> RankPreview:
    """Rank 0's argv and environment for the next version of a validated spec."""
    from app.lifecycle import code_folder, version_paths
    from app.runtime.launcher import dataset_paths
    from app.runtime.plan import build_plan

    number = _next_number(ctx, spec.name)
    label = version_label(number)
    output = version_paths(ctx, spec, label)[0]
    sources = spec.data.paths if spec.data.paths is not None else dataset_paths(ctx, spec)
    with tempfile.TemporaryDirectory(prefix="traindeck-preview-") as folder:
        scratch = Path(folder)
        # The version's own folder first, then the rest of the data dir (envs, ...).
        swaps = {str(scratch / "home" / "versions" / "0"): STATE,
                 str(scratch / "home"): str(ctx.settings.data_dir)}
        code = code_folder(spec)
        if code:  # a version runs its own copy of the code folder
            swaps[str(Path(code))] = f"{STATE}/code"
        staged = []
        for i, source in enumerate(sources):
            if is_remote(source):
                stand_in = scratch / "staged" / str(i)
                swaps[str(stand_in)] = f"<staged copy of {source}>"
                source = str(stand_in)
            staged.append(source)
        version = Version(id=0, job_id=0, number=number, spec_json="",
                          runtime=spec.resources.runtime or "local", nodes=spec.resources.nodes,
                          output=output, log_dir=str(scratch / "logs"))
        if not is_remote(output):
            version.output = str(scratch / "output")
            swaps[version.output] = output
        settings = cast("Settings", _ScratchSettings(ctx.settings, scratch / "home"))
        gpus = [GpuDevice(i) for i in range(spec.resources.gpus * spec.resources.nodes)]
        plan = build_plan(settings, spec.name, version, spec, gpus, staged)
        rank = plan.ranks[0]

    def text(value: str) -> str:
        for scratch_path, shown in swaps.items():
            value = value.replace(scratch_path, shown)
        return value

    env = {name: text(value) for name, value in rank.env.items()}
    if version.runtime == "local":
        for name in ("MASTER_PORT", "PET_MASTER_PORT"):
            if name in env:
                env[name] = "<free port>"
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = "<granted GPUs>"
        inherited = os.environ.get("PATH", os.defpath)
        env["PATH"] = env["PATH"].replace(inherited, "$PATH")
    return RankPreview(label, [text(item) for item in rank.argv], env,
                       reserved_parameter_warnings(spec), plan.image)
