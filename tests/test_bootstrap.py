"""requirements.txt on top of the engine (app/runtime/bootstrap.py), run for real.

The "engine" is this test's own interpreter, or a virtual environment made here with tiny
packages of its own (`engine_with`); the requirements are tiny wheels built here and
installed with `--no-index --find-links`, so nothing needs the network.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from runtime_helpers import engine_with, tiny_wheel

from app.runtime import bootstrap
from app.runtime.executors import RankExit
from app.runtime.supervisor.outcome import outcome_of

BOOTSTRAP = Path(bootstrap.__file__)


SHOW = (
    "import sys, tinypkg, yaml\n"
    "print('python', sys.executable)\n"
    "print('tinypkg', tinypkg.VALUE, tinypkg.__file__)\n"
    "print('yaml', yaml.__file__)\n"
)


@pytest.fixture
def code(tmp_path: Path) -> Path:
    """A code folder whose requirements.txt asks for the tiny wheel and pyyaml (which the
    engine has: with --no-index, pip can only leave it alone)."""
    wheels = tmp_path / "wheels"
    tiny_wheel(wheels)
    folder = tmp_path / "code"
    folder.mkdir()
    (folder / "requirements.txt").write_text(
        f"--no-index\n--find-links {wheels}\ntinypkg==1.0\npyyaml\n")
    (folder / "show.py").write_text(SHOW)
    return folder


def run(code: Path, cache: Path, *argv: str, python: str = sys.executable,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([python, str(BOOTSTRAP), str(cache), "--", *argv], cwd=code,
                          capture_output=True, text=True, check=False,
                          env={**os.environ, **(env or {})})


def values(output: str) -> dict[str, list[str]]:
    return {line.split()[0]: line.split()[1:] for line in output.splitlines()
            if not line.startswith("[traindeck]")}


def test_installs_on_top_of_the_engine_and_reuses_the_environment(
    code: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    first = run(code, cache, "python", "show.py")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "[traindeck] installing requirements.txt on top of" in first.stdout
    assert "[traindeck] pip: Requirement already satisfied: pyyaml" in first.stdout
    [env] = [p for p in cache.iterdir() if p.is_dir()]
    got = values(first.stdout)
    assert got["python"] == [str(env / "bin" / "python")]
    assert got["tinypkg"][0] == "1.0" and got["tinypkg"][1].startswith(str(env))
    import yaml  # the engine's own copy is the one used, not a second install

    assert got["yaml"] == [yaml.__file__]
    assert not list(env.glob("lib/python*/site-packages/yaml"))

    second = run(code, cache, "python", "show.py")
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"[traindeck] requirements.txt: using the environment built before ({env})" in (
        second.stdout)
    assert "pip:" not in second.stdout and values(second.stdout) == got

    # Another requirements.txt is another environment.
    (code / "requirements.txt").write_text((code / "requirements.txt").read_text() + "\n")
    assert "installing requirements.txt on top of" in run(code, cache, "python", "show.py").stdout
    assert len([p for p in cache.iterdir() if p.is_dir()]) == 2


def test_python_scripts_on_the_path_run_in_the_environment(code: Path, tmp_path: Path) -> None:
    """A launcher like torchrun (a script of the engine's) and the Python it starts see
    the requirements."""
    tools = tmp_path / "tools"
    tools.mkdir()
    launcher = tools / "launch"
    launcher.write_text(f"#!{sys.executable}\n"
                        "import subprocess, sys\n"
                        "sys.exit(subprocess.call([sys.executable, *sys.argv[1:]]))\n")
    launcher.chmod(0o755)
    done = run(code, tmp_path / "cache", "launch", "show.py",
               env={"PATH": f"{tools}{os.pathsep}{os.environ['PATH']}"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert values(done.stdout)["tinypkg"][0] == "1.0"


def test_versions_starting_together_build_once(code: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    procs = [subprocess.Popen([sys.executable, str(BOOTSTRAP), str(cache), "--", "python",
                               "show.py"], cwd=code, stdout=subprocess.PIPE, text=True)
             for _ in range(3)]
    outputs = [proc.communicate(timeout=120)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0], outputs
    assert sum("installing requirements.txt on top of" in out for out in outputs) == 1
    assert all(values(out)["tinypkg"][0] == "1.0" for out in outputs)


def test_a_package_the_engine_has_is_named_when_replaced(tmp_path: Path) -> None:
    """The engine has tinypkg 1.0 and otherpkg 1.0; requirements.txt asks for tinypkg==2.0
    and otherpkg>=1.0 (2.0 is on offer too): tinypkg 2.0 goes into the version's
    environment, said in one line before the script's output (every time the environment
    is used); otherpkg and the engine's own copies stay as they are."""
    engine = tmp_path / "engine"
    python = engine_with(engine, tiny_wheel(tmp_path / "old", "tinypkg", "1.0"),
                         tiny_wheel(tmp_path / "old", "otherpkg", "1.0"))
    wheels = tmp_path / "wheels"
    tiny_wheel(wheels, "tinypkg", "2.0")
    tiny_wheel(wheels, "otherpkg", "2.0")
    code = tmp_path / "code"
    code.mkdir()
    (code / "requirements.txt").write_text(
        f"--no-index\n--find-links {wheels}\ntinypkg==2.0\notherpkg>=1.0\n")
    (code / "show.py").write_text("import tinypkg, otherpkg\n"
                                  "print('tinypkg', tinypkg.VALUE, tinypkg.__file__)\n"
                                  "print('otherpkg', otherpkg.VALUE, otherpkg.__file__)\n")
    cache = tmp_path / "cache"
    line = ("[traindeck] requirements.txt: tinypkg 1.0 from the engine is replaced by 2.0 in "
            "this version's environment")
    for _ in range(2):  # installed, then the cached environment
        done = run(code, cache, "python", "show.py", python=python)
        assert done.returncode == 0, done.stdout + done.stderr
        lines = done.stdout.splitlines()
        assert [x for x in lines if "from the engine" in x] == [line]
        assert lines.index(line) < next(i for i, x in enumerate(lines) if x.startswith("tinypkg"))
        [env] = [p for p in cache.iterdir() if p.is_dir()]
        got = values(done.stdout)
        assert got["tinypkg"][0] == "2.0" and got["tinypkg"][1].startswith(str(env))
        assert got["otherpkg"][0] == "1.0" and got["otherpkg"][1].startswith(str(engine))
    assert not list(env.glob("lib/python*/site-packages/otherpkg*"))
    [site] = engine.glob("lib/python*/site-packages")
    assert sorted(p.name for p in site.glob("*.dist-info")) == [
        "otherpkg-1.0.dist-info", "tinypkg-1.0.dist-info"]
    engine_sees = subprocess.run([python, "-c", "import tinypkg; print(tinypkg.VALUE)"],
                                 capture_output=True, text=True, check=True).stdout
    assert engine_sees == "1.0\n"


def test_requirements_can_be_ignored(code: Path) -> None:
    """`requirements: ignore`: one line, nothing installed, the command runs as it is."""
    done = subprocess.run(
        [sys.executable, str(BOOTSTRAP), bootstrap.IGNORE, "--", sys.executable, "-c",
         "import sys; print(sys.executable)"],
        cwd=code, capture_output=True, text=True, check=False)
    assert (done.returncode, done.stdout) == (0, (
        "[traindeck] requirements.txt ignored (requirements: ignore): nothing installed\n"
        f"{sys.executable}\n"))


def test_an_interpreter_without_pip_fails_with_one_line(code: Path, tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    done = run(code, tmp_path / "cache", "python", "show.py", python=str(bare / "bin/python"),
               env={"TRAINDECK_IMAGE": "python:3.11-slim"})
    assert done.returncode == bootstrap.FAILED
    assert done.stdout == (
        "[traindeck] error: requirements.txt needs pip in image python:3.11-slim\n")
    log = tmp_path / "rank-0.log"
    log.write_text(done.stdout)
    assert outcome_of([RankExit(0, done.returncode)], [], False, {0: log}).reason == (
        "exit code 97: requirements.txt needs pip in image python:3.11-slim")


def test_a_failed_install_says_why_and_is_not_cached(code: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    requirements = code / "requirements.txt"
    requirements.write_text(requirements.read_text() + "not-a-package-here==1\n")
    done = run(code, cache, "python", "show.py")
    assert done.returncode == bootstrap.FAILED
    last = done.stdout.splitlines()[-1]
    assert last.startswith("[traindeck] error: pip could not install requirements.txt: ")
    assert "not-a-package-here" in last
    assert not [p for p in cache.iterdir() if p.is_dir()]


def test_without_requirements_the_command_runs_as_it_is(tmp_path: Path) -> None:
    done = run(tmp_path, tmp_path / "cache", sys.executable, "-c",
               "import sys; print(sys.executable)")
    assert (done.returncode, done.stdout) == (0, sys.executable + "\n")
    assert not (tmp_path / "cache").exists()
    bad = subprocess.run([sys.executable, str(BOOTSTRAP), "cache", "python"], cwd=tmp_path,
                         capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and bad.stdout.startswith("[traindeck] error: bootstrap: usage")
    missing = run(tmp_path, tmp_path / "cache", "no-such-command-here")
    assert missing.returncode == 127 and "cannot run no-such-command-here" in missing.stdout


@pytest.mark.docker
def test_in_an_image_without_pip(docker_engine: Any, code: Path, tmp_path: Path) -> None:
    """The local engine image has Python and venv but no pip: one clear line, exit 97."""
    image = "traindeck/python:3.11"
    container = docker_engine.containers.run(
        image, ["python", "/bootstrap.py", "/cache", "--", "python", "show.py"],
        volumes={str(code): {"bind": "/code", "mode": "ro"},
                 str(BOOTSTRAP): {"bind": "/bootstrap.py", "mode": "ro"},
                 str(tmp_path / "cache"): {"bind": "/cache", "mode": "rw"}},
        working_dir="/code", environment={"TRAINDECK_IMAGE": image}, detach=True)
    try:
        exit_code = container.wait(timeout=120)["StatusCode"]
        output = container.logs().decode()
    finally:
        container.remove(force=True)
    assert (exit_code, output) == (
        bootstrap.FAILED, f"[traindeck] error: requirements.txt needs pip in image {image}\n")
