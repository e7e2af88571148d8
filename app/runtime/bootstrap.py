"""Runs inside every rank before its command when the code folder has a requirements.txt.

Usage: ``python bootstrap.py CACHE_DIR -- ARGV...`` (in the folder holding requirements.txt),
or ``python bootstrap.py --ignore -- ARGV...`` when the algorithm says ``requirements:
ignore`` (the log says the file was ignored, and nothing is installed).

Standard library only: it is copied next to the version's state and run by the rank's own
interpreter, in a container or on the host. The requirements go into a virtual environment
on top of that interpreter (``--system-site-packages``, and the packages of the virtual
environment the interpreter may itself be in), so the engine's packages stay visible and
pip leaves requirements they already satisfy alone. The environment is kept in CACHE_DIR
under a hash of requirements.txt, the interpreter, the packages it sees and CACHE_DIR's
own path, so the next version with the same file starts at once. Versions building the
same environment at the same time take turns on a lock file; an environment is used only
once its ready marker exists (a crashed build is built again). It is built in place, not
renamed into place, because a virtual environment holds its own path (in the scripts pip
writes). Then the command is exec'd with the environment first: its ``bin`` first on
PATH, a ``python`` command and Python scripts found on PATH (``torchrun``) run by its
interpreter, so the processes they start see the requirements too. Each package of the
environment that the engine has as well (whose copy there hides the engine's own from
this version's processes: ``torch>=2.6`` on an engine with torch 2.3) is named in one
line, with both versions, every time the environment is used.

Progress goes to the log as ``[traindeck] ...`` lines, pip's own output as
``[traindeck] pip: ...``; a failure is one ``[traindeck] error: ...`` line (which
``app.runtime.failure`` reports as the reason) and exit code 97. Limitation: files that
requirements.txt refers to (``-r other.txt``, ``-e .``) are not part of the hash.
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys

PREFIX = "[traindeck] "
FAILED = 97
"""Exit code when the requirements cannot be installed."""
READY = ".traindeck-ready"
"""Written into an environment once it is complete."""
IGNORE = "--ignore"
"""In place of CACHE_DIR: leave requirements.txt alone (`requirements: ignore`)."""
FORMAT = "1"
"""Part of the hash: changing how environments are built starts a fresh cache."""
_PYTHON = re.compile(r"python(\d+(\.\d+)?)?")


class Failure(Exception):
    """Why the requirements cannot be installed, as the one line the log gets."""


def say(text: str) -> None:
    """A progress line of Traindeck's own in the log."""
    print(PREFIX + text, flush=True)


def image_name() -> str:
    """The image (set by the plan) or the interpreter, for messages."""
    return os.environ.get("TRAINDECK_IMAGE") or sys.executable


def engine_site_dirs() -> list[str]:
    """The package folders this interpreter sees (its virtual environment's too)."""
    dirs = []
    for folder in sys.path:
        if os.path.basename(folder) in ("site-packages", "dist-packages") and \
                os.path.isdir(folder) and folder not in dirs:
            dirs.append(folder)
    return dirs


def environment_key(requirements: bytes, cache_dir: str) -> str:
    """The cache key: what requirements.txt holds and what it is installed on top of."""
    digest = hashlib.sha256()
    for part in (FORMAT, sys.version, os.path.realpath(sys.executable),
                 os.path.abspath(cache_dir), os.environ.get("TRAINDECK_IMAGE", "")):
        digest.update(part.encode() + b"\0")
    digest.update(requirements + b"\0")
    for folder in engine_site_dirs():
        # Installed distributions with their versions: another engine is another key.
        names = sorted(n for n in os.listdir(folder) if n.endswith((".dist-info", ".egg-info")))
        digest.update("\n".join([folder, *names]).encode() + b"\0")
    return digest.hexdigest()[:24]


def prepare(cache_dir: str) -> str:
    """The folder of the environment for ./requirements.txt, built if not cached yet."""
    with open("requirements.txt", "rb") as f:
        requirements = f.read()
    env = os.path.join(cache_dir, environment_key(requirements, cache_dir))
    if os.path.exists(os.path.join(env, READY)):
        say(f"requirements.txt: using the environment built before ({env})")
        return env
    for module in ("pip", "venv"):
        if importlib.util.find_spec(module) is None:
            raise Failure(f"requirements.txt needs {module} in image {image_name()}")
    os.makedirs(cache_dir, exist_ok=True)
    with open(env + ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say("requirements.txt: waiting for another version installing the same file")
            fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(os.path.join(env, READY)):
            say(f"requirements.txt: using the environment just built ({env})")
            return env
        build(env, requirements)
    return env


def build(env: str, requirements: bytes) -> None:
    """Create the environment in `env` and install requirements.txt into it."""
    if os.path.exists(env):
        shutil.rmtree(env)  # a build that never finished
    say(f"installing requirements.txt on top of {image_name()} into {env}")
    made = subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", env],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    if made.returncode != 0:
        last = made.stdout.decode(errors="replace").strip().splitlines()[-1:] or ["?"]
        raise Failure(f"requirements.txt: cannot create a virtual environment: {last[0]}")
    python = os.path.join(env, "bin", "python")
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        stdout=subprocess.PIPE, check=True).stdout.decode().strip()
    # A virtual environment sees its base interpreter's packages, not those of a virtual
    # environment the engine's interpreter is itself in: add them (after its own).
    with open(os.path.join(purelib, "_traindeck_engine.pth"), "w") as pth:
        pth.writelines(f"import site; site.addsitedir({d!r})\n" for d in engine_site_dirs())
    code, last_error = run_pip(python)
    if code != 0:
        shutil.rmtree(env, ignore_errors=True)
        raise Failure("pip could not install requirements.txt: "
                      + (last_error or f"pip exit code {code}"))
    with open(os.path.join(env, READY + ".tmp"), "wb") as marker:
        marker.write(requirements)
    os.replace(os.path.join(env, READY + ".tmp"), os.path.join(env, READY))
    say("requirements installed")


def replaced_lines(env: str) -> list[str]:
    """One line per package installed into `env` that the engine also has."""
    try:
        from importlib import metadata
    except ImportError:  # Python 3.7: nothing to compare with
        return []
    own = glob.glob(os.path.join(env, "lib", "python*", "site-packages"))
    installed = {_normalized(d.metadata["Name"]): d for d in metadata.distributions(path=own)
                 if d.metadata["Name"]}
    if not installed:
        return []
    engine: dict[str, str] = {}
    for dist in metadata.distributions(path=engine_site_dirs()):
        name = dist.metadata["Name"]
        if name and _normalized(name) in installed:
            engine.setdefault(_normalized(name), dist.version)  # the first one is imported
    return [f"requirements.txt: {installed[key].metadata['Name']} {engine[key]} from the engine "
            f"is replaced by {installed[key].version} in this version's environment"
            for key in sorted(engine)]


def _normalized(name: str) -> str:
    """A distribution name as pip compares it (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def run_pip(python: str) -> tuple[int, str]:
    """Run pip in the environment, its output copied to the log; exit code, last error."""
    proc = subprocess.Popen(
        [python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
         "--no-warn-script-location", "-r", "requirements.txt"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    last_error = ""
    assert proc.stdout is not None
    for raw in proc.stdout:
        line = raw.decode("utf-8", errors="replace").rstrip()
        if line.startswith("ERROR: "):
            last_error = line[len("ERROR: "):]
        print(PREFIX + "pip: " + line, flush=True)
    return proc.wait(), last_error


def in_environment(env: str, argv: list[str]) -> list[str]:
    """Point this process's environment at `env` and return the command to exec."""
    bin_dir = os.path.join(env, "bin")
    os.environ["VIRTUAL_ENV"] = env
    os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    os.environ.pop("PYTHONHOME", None)
    python = os.path.join(bin_dir, "python")
    first = argv[0]
    if _PYTHON.fullmatch(os.path.basename(first)) or \
            os.path.realpath(first) == os.path.realpath(sys.executable):
        return [python, *argv[1:]]
    found = shutil.which(first)
    if found and is_python_script(found):
        return [python, found, *argv[1:]]
    return argv


def is_python_script(path: str) -> bool:
    """Whether a file starts with a shebang naming a Python interpreter."""
    try:
        with open(path, "rb") as f:
            head = f.read(256).split(b"\n", 1)[0]
    except OSError:
        return False
    return head.startswith(b"#!") and b"python" in head


def main() -> int:
    """Prepare the environment for ./requirements.txt (if there is one), exec the command."""
    args = sys.argv[1:]
    if len(args) < 3 or args[1] != "--":
        print(PREFIX + "error: bootstrap: usage: bootstrap.py CACHE_DIR|--ignore -- ARGV...",
              flush=True)
        return 2
    cache_dir, argv = args[0], args[2:]
    if cache_dir == IGNORE and os.path.isfile("requirements.txt"):
        say("requirements.txt ignored (requirements: ignore): nothing installed")
    elif os.path.isfile("requirements.txt"):
        try:
            env = prepare(cache_dir)
            for line in replaced_lines(env):
                say(line)
            argv = in_environment(env, argv)
        except (Failure, OSError, subprocess.SubprocessError) as exc:
            print(PREFIX + "error: " + str(exc), flush=True)
            return FAILED
    sys.stdout.flush()
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:
        print(f"{PREFIX}error: cannot run {argv[0]}: {exc.strerror or exc}", flush=True)
    return 127


if __name__ == "__main__":
    sys.exit(main())
