"""Runs each rank of a version as a detached Docker container (docker SDK).

In each container the rank's command runs under Traindeck's rank wrapper
(`app.runtime.rankrun`, with the image's python3), which writes the stamped log into the
job's folder; the supervisor copies it from there as data. The engine's own log holds
only the wrapper's messages, and the engine keeps the exit code.

The SDK is imported inside functions so that importing this module stays cheap. Engine
failures become `ExecutorError`s a user can act on: "image NAME: pull failed: ...", "engine
unreachable: ...", "GPU request cannot be served: ...", else the engine's own message.

Transient engine trouble (dockerd restarting) surfaces as "engine unreachable: ..." from
`poll`, `wait_any`, `stop`, `cleanup` and `adoptable`: the containers may well be fine, so
the supervisor should retry later rather than declare the run failed.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.runtime.dockerhost import EngineUnreachable, docker_client
from app.runtime.executors.base import Executor, ExecutorError, Handle, LaunchPlan, RankExit
from app.runtime.rankrun import SPAWN_FAILED

if TYPE_CHECKING:
    from app.config import Settings

LABEL_JOB = "traindeck.job"
LABEL_VERSION = "traindeck.version"
LABEL_VERSION_ID = "traindeck.version_id"
LABEL_RANK = "traindeck.rank"

_ALIVE = frozenset({"created", "running", "restarting", "paused"})
"""Container states in which a rank has not ended yet."""

WRAPPER_LIB = "/traindeck/lib"
"""Where a container sees Traindeck's own package (read-only): its rank wrapper runs from
there, with the image's python3 (`app.runtime.rankrun`)."""
_WRAPPER = (f"import sys; sys.path.insert(0, {WRAPPER_LIB!r}); "
            "from app.runtime.rankrun import main; sys.exit(main())")
_APP = Path(__file__).resolve().parents[2]
"""The `app` package on the host."""

_GPU_WORDS = ("device driver", "gpu", "nvidia", "cuda", "device request")
"""Words of the engine's errors for device requests it cannot serve."""


class _Gone:
    """What `_call` returns when the object asked about does not exist (any more)."""


GONE = _Gone()


def _engine_message(exc: BaseException) -> str:
    """The engine's own words for an API error, without the SDK's HTTP preamble."""
    explanation = getattr(exc, "explanation", None)
    if isinstance(explanation, bytes):
        explanation = explanation.decode(errors="replace")
    return str(explanation or exc).strip()


def _as_executor_error(exc: BaseException) -> ExecutorError | None:
    """The ExecutorError for an engine failure, or None when `exc` is not one (a bug)."""
    import requests
    import urllib3
    from docker.errors import APIError, DockerException

    if isinstance(exc, EngineUnreachable):
        return ExecutorError(f"engine unreachable: {exc.__cause__ or exc}")
    # APIError first: through requests it is an OSError too, yet the engine did answer.
    if isinstance(exc, APIError):
        return ExecutorError(_engine_message(exc))
    if isinstance(exc, requests.RequestException | urllib3.exceptions.HTTPError | OSError):
        return ExecutorError(f"engine unreachable: {exc}")
    if isinstance(exc, DockerException):
        return ExecutorError(_engine_message(exc))
    return None


def _call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call the SDK: GONE when the object is not found, ExecutorError on engine failure."""
    from docker.errors import NotFound

    try:
        return fn(*args, **kwargs)
    except NotFound:
        return GONE
    except Exception as exc:
        err = _as_executor_error(exc)
        if err is None:
            raise
        raise err from exc


class DockerExecutor(Executor):
    """Runs ranks as containers: argv exec'd without a shell, never privileged, hardened
    by the settings (`docker_cap_drop`, `docker_no_new_privileges`, `docker_pids_limit`,
    the json-file log's bounds) and limited by the spec (`resources.cpus`, `memory`,
    `network`)."""

    kind = "docker"

    def __init__(self, settings: Settings, client: Any = None) -> None:
        self.settings = settings
        self._client: Any = client
        self._client_lock = threading.Lock()
        self._ended: set[str] = set()
        """Containers `wait_any` saw end."""

    def _docker(self) -> Any:
        """The shared SDK client (its connection pool is thread-safe), made on first use."""
        with self._client_lock:
            if self._client is None:
                try:
                    self._client = docker_client(self.settings)
                except EngineUnreachable as exc:
                    raise ExecutorError(f"engine unreachable: {exc.__cause__ or exc}") from exc
            return self._client

    # -- start ---------------------------------------------------------------------------

    def start(self, plan: LaunchPlan) -> Handle:
        """Create every rank's container, then start them in rank order.

        On any failure, whatever was created (containers, network) is removed first.
        """
        client = self._docker()
        plan = self.prepare(plan, None, may_wait=True) or plan
        labels = {
            LABEL_JOB: plan.job,
            LABEL_VERSION: plan.version,
            LABEL_VERSION_ID: str(plan.version_id),
        }
        created: list[str] = []
        network_ours = False
        try:
            if plan.network:
                network_ours = self._ensure_network(client, plan.network, labels)
            # Creating every container before starting any catches image and config
            # errors before a single rank has run.
            for index in range(len(plan.ranks)):
                created.append(self._create(client, plan, index, labels))
            for rank, container_id in zip(plan.ranks, created, strict=True):
                self._start_one(client, container_id, rank.name, bool(rank.gpus))
        except BaseException:
            for container_id in created:
                with suppress(Exception):
                    client.api.remove_container(container_id, force=True)
            if network_ours:
                with suppress(Exception):
                    client.api.remove_network(plan.network)
            raise
        return {
            "kind": self.kind,
            "containers": created,
            "names": [r.name for r in plan.ranks],
            "network": plan.network,
        }

    def prepare(self, plan: LaunchPlan, note: Callable[[str], None] | None, *,
                may_wait: bool) -> LaunchPlan | None:
        """The plan with the image to run (an engine's local build when present), pulled
        first when missing, with progress lines to `note`; None when it is missing and
        the caller may not wait for a pull (the process that submits leaves it to the
        version's supervisor). ExecutorError with the engine's words when it cannot be."""
        from app.images import ImageError, build_hint, image_for, image_present

        if not plan.image:
            raise ExecutorError("runtime docker needs an image")
        client = self._docker()
        try:
            image = image_for(client, self.settings, plan.image)
            if not image_present(client, image):
                if not may_wait:
                    return None
                self._pull(client, image, plan.state_dir, note)
        except ImageError as exc:
            raise ExecutorError(f"{exc}{build_hint(self.settings, image)}") from exc
        except Exception as exc:
            err = _as_executor_error(exc)
            if err is None:
                raise
            raise err from exc
        if image == plan.image:
            return plan
        ranks = [dataclasses.replace(rank, env={**rank.env, "TRAINDECK_IMAGE": image})
                 for rank in plan.ranks]  # what the ranks' messages name, and their cache key
        return dataclasses.replace(plan, image=image, ranks=ranks)

    def _pull(self, client: Any, image: str, state: str,
              note: Callable[[str], None] | None) -> None:
        """Pull `image`, with progress lines and the version's progress file (the TUI's
        overview shows it as a bar)."""
        from app.images import ensure_image
        from app.storage.progress import TransferFile, transfer_path

        if not state:
            ensure_image(client, image, note)
            return
        with TransferFile(transfer_path(Path(state)), "pulling image", image) as shown:
            ensure_image(client, image, note, shown)

    def _ensure_network(self, client: Any, name: str, labels: dict[str, str]) -> bool:
        """Create the ranks' user bridge (they resolve each other by name there).

        True when this call created it; a leftover of this same version is reused.
        """
        found = _call(client.api.networks, names=[name])
        # The engine filters names by substring: keep exact matches only.
        existing = [n for n in found if n.get("Name") == name]
        if existing:
            if (existing[0].get("Labels") or {}).get(LABEL_VERSION_ID) == labels[LABEL_VERSION_ID]:
                return False
            raise ExecutorError(f"network {name} already exists and belongs to something else")
        _call(client.api.create_network, name, driver="bridge", labels=labels)
        return True

    def _create(self, client: Any, plan: LaunchPlan, index: int, labels: dict[str, str]) -> str:
        """Create (not start) one rank's container; its id."""
        from docker.errors import ImageNotFound
        from docker.types import DeviceRequest, Mount

        rank = plan.ranks[index]
        devices = (
            [DeviceRequest(device_ids=[str(g) for g in rank.gpus], capabilities=[["gpu"]])]
            if rank.gpus
            else None
        )
        uid, gid = plan.user
        # The API's create, not containers.run (it would pull a missing image) nor
        # containers.create (it inspects the new container: one more round trip).
        api = client.api
        try:
            host_config = api.create_host_config(
                # An init as PID 1 forwards SIGTERM to the trainer and reaps zombies.
                init=True,
                shm_size=plan.shm_size or self.settings.docker_shm_size,
                mounts=[
                    *(Mount(target=m.target, source=str(m.host), type="bind",
                            read_only=m.read_only) for m in plan.mounts),
                    Mount(target=f"{WRAPPER_LIB}/app", source=str(_APP), type="bind",
                          read_only=True),
                ],
                device_requests=devices,
                network_mode=plan.network or plan.network_mode,
                auto_remove=False,
                privileged=False,
                **self._limits(plan),
            )
            # The rank wrapper writes the stamped log into the job's folder (rank.log),
            # where the supervisor copies it from; -I: the job's PYTHON* variables and
            # files do not reach it, -S: it needs the standard library only.
            grace = str(self.settings.stop_grace_seconds)
            created = api.create_container(
                plan.image,
                command=["python3", "-I", "-S", "-c", _WRAPPER, rank.log, "-", grace, "--",
                         *rank.argv],
                name=rank.name,
                hostname=rank.name,
                environment=dict(rank.env),
                working_dir=plan.workdir,
                user=f"{uid}:{gid}",
                labels={**plan.labels, **labels, LABEL_RANK: str(rank.rank)},
                host_config=host_config,
                networking_config=(api.create_networking_config(
                    {plan.network: api.create_endpoint_config()}) if plan.network else None),
            )
        except ImageNotFound as exc:
            raise ExecutorError(f"image not found: {plan.image}") from exc
        except Exception as exc:
            err = _as_executor_error(exc)
            if err is None:
                raise
            if getattr(exc, "status_code", 0) == 409:
                raise ExecutorError(
                    f"container name {rank.name} is already in use "
                    f"(remove it with `docker rm -f {rank.name}`)"
                ) from exc
            if str(err).startswith("engine unreachable"):
                raise err from exc
            raise ExecutorError(f"{rank.name}: {err}") from exc
        return str(created["Id"])

    def _limits(self, plan: LaunchPlan) -> dict[str, Any]:
        """The hardening of the settings and the spec's limits, as host config arguments:
        capabilities dropped, no new privileges, a pids limit, a bounded json-file log,
        CPU and memory limits."""
        from docker.types import LogConfig

        settings = self.settings
        return {
            "cap_drop": list(settings.docker_cap_drop) or None,
            "cap_add": list(settings.docker_cap_add) or None,
            "security_opt": ["no-new-privileges"] if settings.docker_no_new_privileges
            else None,
            "pids_limit": settings.docker_pids_limit,
            "log_config": LogConfig(type=LogConfig.types.JSON, config={
                "max-size": settings.docker_log_max_size,
                "max-file": str(settings.docker_log_max_file)}),
            "nano_cpus": round(plan.cpus * 1e9) if plan.cpus else None,
            "mem_limit": plan.memory,
        }

    def _start_one(self, client: Any, container_id: str, name: str, wants_gpu: bool) -> None:
        """Start one created container; device-request failures get their own reason."""
        try:
            started = _call(client.api.start, container_id)
        except ExecutorError as err:
            message = str(err)
            if wants_gpu and any(w in message.lower() for w in _GPU_WORDS):
                raise ExecutorError(f"GPU request cannot be served: {message}") from err
            if message.startswith("engine unreachable"):
                raise
            raise ExecutorError(f"{name}: {message}") from err
        if started is GONE:
            raise ExecutorError(f"{name}: the container vanished before it started")

    # -- watch ---------------------------------------------------------------------------

    def logs_in_job_folder(self, handle: Handle) -> bool:
        """Always: a container's rank wrapper writes into the job's folder."""
        return True

    def wait_any(self, handle: Handle, timeout: float) -> None:
        """Return when a rank's container exits, or after `timeout` seconds: the engine's
        `wait` on the first container not yet seen to end."""
        client = self._docker()
        deadline = time.monotonic() + timeout
        for container_id in handle["containers"]:
            if container_id in self._ended:
                continue
            try:
                _call(client.api.wait, container_id, timeout=max(0.1, timeout))
            except ExecutorError:  # timed out, or the engine is away: `poll` tells
                time.sleep(max(0.0, min(deadline - time.monotonic(), 1.0)))
                return
            self._ended.add(container_id)  # ended (or gone)
            return
        time.sleep(timeout)

    def poll(self, handle: Handle) -> list[RankExit | None]:
        """Per rank: None while alive, else its exit code and OOM flag.

        Raises ExecutorError("engine unreachable: ...") when the engine does not answer;
        that says nothing about the ranks, so the supervisor should poll again later.
        """
        client = self._docker()
        result: list[RankExit | None] = []
        for rank, container_id in enumerate(handle["containers"]):
            info = _call(client.api.inspect_container, container_id)
            if info is GONE:
                result.append(RankExit(rank=rank, exit_code=-1, error="container removed"))
                continue
            state = info["State"]
            if state.get("Status") in _ALIVE:
                result.append(None)
                continue
            code = int(state.get("ExitCode", -1))
            error = str(state.get("Error") or "")
            if code == SPAWN_FAILED and not error:
                error = self._wrapper_message(container_id)
            result.append(RankExit(rank=rank, exit_code=code, error=error,
                                   oom_killed=bool(state.get("OOMKilled", False))))
        return result

    def _wrapper_message(self, container_id: str) -> str:
        """The rank wrapper's last message (it could not start the command), which it
        wrote to the container's own output: the engine's log holds nothing else. The
        container's init says when the wrapper itself could not start."""
        raw = _call(self._docker().api.logs, container_id, stdout=True, stderr=True, tail=5)
        lines = [] if raw is GONE else raw.decode(errors="replace").strip().splitlines()
        if lines and "exec python3 failed" in lines[-1]:
            return ("the image has no python3 on its PATH; Traindeck runs each container's "
                    "command under its rank wrapper, which needs Python 3.8 or newer")
        return lines[-1][:500] if lines else ""

    # -- stop and clean up ---------------------------------------------------------------

    def stop(self, handle: Handle, grace: float) -> None:
        """`docker stop` every rank at once: SIGTERM, then SIGKILL after `grace` seconds.

        Ranks already ended or removed are left as they are.
        """
        client = self._docker()
        # The engine takes whole seconds; rounding up never cuts a grace period short.
        timeout = max(0, math.ceil(grace))
        self._each(lambda cid: _call(client.api.stop, cid, timeout=timeout), handle)

    def cleanup(self, handle: Handle) -> None:
        """Remove the containers (forced) and the network; safe to call again."""
        from docker.errors import APIError

        client = self._docker()

        def remove(container_id: str) -> None:
            try:
                _call(client.api.remove_container, container_id, force=True)
            except ExecutorError as err:
                # 409: a removal is already under way, which is what we want anyway.
                cause = err.__cause__
                if not (isinstance(cause, APIError) and cause.status_code == 409):
                    raise

        self._each(remove, handle)
        if handle.get("network"):
            _call(client.api.remove_network, handle["network"])

    @staticmethod
    def _each(action: Callable[[str], Any], handle: Handle) -> None:
        """Run `action` on every container in parallel; re-raise the first failure."""
        container_ids = handle.get("containers") or []
        if not container_ids:
            return
        with ThreadPoolExecutor(max_workers=len(container_ids)) as pool:
            futures = [pool.submit(action, cid) for cid in container_ids]
        for future in futures:
            future.result()

    # -- adoption ------------------------------------------------------------------------

    def adoptable(self, handle: Handle) -> bool:
        """True when every container of the handle still exists (running or exited).

        Raises ExecutorError("engine unreachable: ...") when the engine does not answer,
        so an engine restart is not mistaken for a lost run.
        """
        if handle.get("kind") != self.kind or not handle.get("containers"):
            return False
        client = self._docker()
        return all(
            _call(client.api.inspect_container, cid) is not GONE for cid in handle["containers"]
        )

    def find_containers(self, version_id: int) -> list[Any]:
        """The SDK containers labelled with `version_id` (any state), in rank order."""
        client = self._docker()
        label = f"{LABEL_VERSION_ID}={version_id}"
        found = _call(client.containers.list, all=True, filters={"label": label})

        def rank_of(container: Any) -> int:
            value = container.labels.get(LABEL_RANK, "")
            return int(value) if value.isdigit() else 0

        return [] if found is GONE else sorted(found, key=rank_of)

