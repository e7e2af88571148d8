"""Engine images: which one a version runs in, pulling a missing one with progress, and
building local ones for machines without registry access.

Each engine names an official public image (`image`) and, optionally, a tag that
`traindeck images build ENGINE` makes here (`local_image`). The local tag wins when it
is present; else the official image is used, pulled when missing.

A local image is built without any registry: a Debian root file system made by
`debootstrap` (only Debian's package mirror is needed, see `rootfs.sh` beside this
module) and loaded with `docker import`, as `scripts/build-test-image` does. The root
file system is cached, so a rebuild takes seconds.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.errors import TraindeckError

if TYPE_CHECKING:
    from app.config import EngineSettings, Settings

Progress = Callable[[str], None]
"""Receives one progress line at a time (`pulling X: 45%`)."""

PROBE_SECONDS = 3.0
"""How long a submit waits for the engine to say whether a missing image can be pulled."""
PROGRESS_STEP = 5
"""A pull reports its progress each time it grows by this many percent."""
RECIPE = Path(__file__).with_name("rootfs.sh")
"""The build recipe: a Debian root file system with the given packages, as a tarball."""


class ImageError(TraindeckError):
    """An image cannot be pulled or built; the message holds the engine's own words."""


@dataclass(frozen=True)
class Recipe:
    """How `traindeck images build ENGINE` makes a local image."""

    tag: str
    """The image it makes (an engine's `local_image`)."""
    packages: tuple[str, ...]
    """Debian bookworm packages in the root file system."""
    check: str
    """Python code run in the new image to prove it works (it prints 42)."""


RECIPES: dict[str, Recipe] = {
    "python": Recipe("traindeck/python:3.11", ("python3",), "print(42)"),
    # Debian's CPU build of PyTorch (1.13): no pip index or CUDA image is needed.
    "pytorch": Recipe("traindeck/pytorch:cpu", ("python3", "python3-torch"),
                      "import torch; print(int(torch.tensor(41) + 1))"),
}
"""The engines Traindeck can build a local image for, by engine name."""


def _engine_words(exc: BaseException) -> str:
    """What the engine said, without the SDK's HTTP preamble."""
    explanation = getattr(exc, "explanation", None)
    if isinstance(explanation, bytes):
        explanation = explanation.decode(errors="replace")
    return str(explanation or exc).strip()


def image_present(client: Any, image: str) -> bool:
    """True when the engine holds `image` (one inspect; no registry is asked)."""
    from docker.errors import NotFound

    try:
        client.api.inspect_image(image)
    except NotFound:
        return False
    return True


def engine_image(client: Any, engine: EngineSettings) -> str | None:
    """The image an engine's versions run in when it is present: the local build, else
    the official image; None when neither is."""
    for image in (engine.local_image, engine.image):
        if image and image_present(client, image):
            return image
    return None


def image_for(client: Any, settings: Settings, image: str) -> str:
    """The image to run for a plan's `image`: an engine's local build when the plan names
    that engine's official image and the build is present, else `image` itself."""
    for engine in settings.engines:
        local = engine.local_image
        if engine.image == image and local and local != image and image_present(client, local):
            return local
    return image


def build_hint(settings: Settings, image: str) -> str:
    """`; build it here with ...` when `image` belongs to an engine Traindeck can build a
    local image for (no registry needed), else nothing."""
    engines = sorted({e.name for e in settings.engines
                      if image in (e.image, e.local_image) and e.name in RECIPES})
    return f"; build it here with `traindeck images build {engines[0]}`" if engines else ""


def pull_problem(client: Any, image: str) -> str | None:
    """Why `image` cannot be pulled (the engine's words), or None when its registry
    knows it. Waits PROBE_SECONDS at most: a submit never hangs on a registry."""
    from docker.errors import DockerException
    from requests import RequestException

    old = client.api.timeout
    client.api.timeout = PROBE_SECONDS
    try:
        client.api.inspect_distribution(image)
    except (DockerException, RequestException, OSError) as exc:
        return _engine_words(exc)
    finally:
        client.api.timeout = old
    return None


def ensure_image(client: Any, image: str, progress: Progress | None = None,
                 on_bytes: Callable[[int, int], None] | None = None) -> None:
    """Pull `image` unless the engine has it, reporting `pulling IMAGE: N%` lines (and
    bytes downloaded of those known, to `on_bytes`: a progress file the TUI shows).

    Raises ImageError("image X: pull failed: <the engine's words>"). Never hangs: every
    read of the engine's answer waits at most the client's timeout.
    """
    if image_present(client, image):
        return
    from docker.errors import DockerException
    from requests import RequestException

    say = progress or (lambda _line: None)
    say(f"pulling {image}: 0%")
    layers: dict[str, tuple[int, int]] = {}
    shown = 0
    try:
        for event in client.api.pull(image, stream=True, decode=True):
            if event.get("error"):
                raise ImageError(f"image {image}: pull failed: {event['error']}")
            layer, status = event.get("id"), event.get("status")
            detail = event.get("progressDetail") or {}
            if layer and status == "Downloading" and detail.get("total"):
                layers[layer] = (detail.get("current", 0), detail["total"])
            elif layer and status in ("Download complete", "Pull complete"):
                total = layers.get(layer, (0, 0))[1]
                layers[layer] = (total, total)
            done = sum(current for current, _ in layers.values())
            total = sum(size for _, size in layers.values())
            percent = 100 * done // total if total else 0
            if on_bytes is not None and total:
                on_bytes(done, total)
            if percent >= shown + PROGRESS_STEP:
                shown = percent - percent % PROGRESS_STEP
                say(f"pulling {image}: {shown}%")
    except ImageError:
        raise
    except (DockerException, RequestException, OSError) as exc:
        raise ImageError(f"image {image}: pull failed: {_engine_words(exc)}") from exc
    if not image_present(client, image):
        raise ImageError(f"image {image}: pull failed: the engine did not keep it")
    if shown < 100:
        say(f"pulling {image}: 100%")


@dataclass(frozen=True)
class ImageRow:
    """One engine's images, for `traindeck images`."""

    engine: str
    version: str
    image: str
    local_image: str | None
    uses: str | None
    """The image its versions run in now (None: neither is present)."""

    def to_dict(self) -> dict[str, Any]:
        """For `--json` output."""
        return {"engine": self.engine, "version": self.version, "image": self.image,
                "local_image": self.local_image, "present": self.uses is not None,
                "uses": self.uses}


def list_images(client: Any, settings: Settings) -> list[ImageRow]:
    """Every engine of the catalog with the image it would run in now."""
    return [ImageRow(e.name, e.version, e.image, e.local_image, engine_image(client, e))
            for e in settings.engines]


def cache_dir() -> Path:
    """Where built root file systems are kept (shared with scripts/build-test-image)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "traindeck"


def rootfs_tarball(recipe: Recipe) -> Path:
    """The cached root file system of a recipe; python's is build-test-image's own."""
    extra = "-".join(p for p in recipe.packages if p != "python3")
    return cache_dir() / f"rootfs-bookworm-minbase-python3{'-' + extra if extra else ''}-v1.tar"


def build_image(client: Any, engine: str, progress: Progress | None = None,
                *, force: bool = False, tag: str | None = None) -> str:
    """Build the local image of `engine` (its root file system is cached) under its
    recipe's tag, or `tag`; the tag."""
    recipe = RECIPES.get(engine)
    if recipe is None:
        raise ImageError(f"engine: no local image recipe for {engine!r} "
                         f"(recipes: {', '.join(sorted(RECIPES))})")
    if tag:
        recipe = Recipe(tag, recipe.packages, recipe.check)
    say = progress or (lambda _line: None)
    tarball = rootfs_tarball(recipe)
    if force or not tarball.is_file():
        say(f"building the root file system ({' '.join(recipe.packages)}) with debootstrap; "
            "this takes a few minutes")
        tarball.parent.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["bash", str(RECIPE), str(tarball), *recipe.packages],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise ImageError(f"image {recipe.tag}: build failed: {last}")
    say(f"importing {tarball} as {recipe.tag}")
    started = time.monotonic()
    repository, _, tag = recipe.tag.rpartition(":")
    try:
        client.api.import_image_from_file(
            str(tarball), repository=repository, tag=tag,
            changes=["ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                     "ENV LANG=C.UTF-8", 'CMD ["python3"]'])
        out = client.containers.run(recipe.tag, ["python3", "-c", recipe.check], remove=True)
    except Exception as exc:
        raise ImageError(f"image {recipe.tag}: build failed: {_engine_words(exc)}") from exc
    if out.strip() != b"42":
        raise ImageError(f"image {recipe.tag}: check printed {out.strip()!r} instead of 42")
    say(f"built {recipe.tag} in {time.monotonic() - started:.0f}s (checked: it runs python)")
    return recipe.tag
