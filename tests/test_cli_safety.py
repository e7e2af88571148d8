"""The command line against big and hostile logs, careless input and odd bytes.

Commands run in-process (`app.cli.main.main`) on the test home, with versions that
succeed at once (no supervisor), as in tests/test_cli.py.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import Project, instant_launcher, write_yaml
from s3server import dead_endpoint, shared_server, use_server
from sqlmodel import select

import app.runtime.launcher
from app.cli.common import unicode_problem
from app.cli.main import main
from app.context import Context
from app.jobs import parse_assignments
from app.runtime.plan import state_dir
from app.storage import local_output_path, upload_output
from app.store.models import Version

Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(home: Path, capsysbinary: pytest.CaptureFixture[bytes],
        monkeypatch: pytest.MonkeyPatch) -> Cli:
    """Run `traindeck ARGS...` in-process: (exit code, stdout, stderr)."""
    monkeypatch.setattr(app.runtime.launcher, "launch", instant_launcher)

    def run(*args: str | Path) -> tuple[int, str, str]:
        capsysbinary.readouterr()
        code = main([str(a) for a in args])
        captured = capsysbinary.readouterr()
        return code, captured.out.decode(), captured.err.decode()

    return run


@pytest.fixture
def demo(cli: Cli, make_project: Callable[..., Project]) -> Path:
    """`demo` V001 submitted (already succeeded): the folder of its rank logs."""
    assert cli("submit", make_project().write_spec())[0] == 0
    with Context.open().db.read() as session:
        log_dir = Path(session.exec(select(Version)).one().log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    return log_dir


# ------------------------------------------------------------------ logs


def test_logs_prints_the_whole_of_a_big_log(cli: Cli, demo: Path) -> None:
    line = "2026-01-01T00:00:00.000Z " + "x" * 90
    count = 3 * 1024 * 1024 // len(line) + 10  # a little over 3 MiB
    (demo / "rank-0.log").write_text("".join(f"{line} {i}\n" for i in range(count)))
    code, out, _ = cli("logs", "demo")
    lines = out.splitlines()
    assert code == 0
    assert len(lines) == count
    assert lines[-1] == "x" * 90 + f" {count - 1}"


def test_logs_escape_terminal_controls_unless_raw(cli: Cli, demo: Path) -> None:
    stamp = "2026-01-01T00:00:00.000Z "
    hostile = "\x1b]0;owned\x07\x1b[2J\x1b[Hbell\x08\x9b1m"
    bar = " 10%|#    \r100%|#####\rhidden\x1b[2J"  # shown as a terminal shows it, escaped
    (demo / "rank-0.log").write_text(f"{stamp}{hostile}\n{stamp}{bar}\n{stamp}a\tb\n{stamp}ends")
    code, out, _ = cli("logs", "demo")
    assert code == 0
    assert out == ("\\x1b]0;owned\\x07\\x1b[2J\\x1b[Hbell\\x08\\x9b1m\n"
                   "hidden\\x1b[2J\na\tb\nends\n")
    assert cli("logs", "demo", "--tail", "4")[1] == out
    assert cli("logs", "demo", "--follow")[1] == out
    assert cli("logs", "demo", "--raw")[1] == f"{hostile}\n{bar}\na\tb\nends\n"


@pytest.mark.parametrize("args", [("logs", "demo", "--tail", "-1"),
                                  ("logs", "demo", "--rank", "-1"),
                                  ("list", "--limit", "-5")])
def test_negative_counts_are_refused(cli: Cli, demo: Path, args: tuple[str, ...]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli(*args)
    assert exited.value.code == 2


# ------------------------------------------------------------------ list order


def test_list_sorts_names_a_to_z_and_reverse_flips(
        cli: Cli, make_project: Callable[..., Project]) -> None:
    for name in ("bravo", "alpha", "charlie"):
        project = make_project(name=name)
        assert cli("submit", project.write_spec(name=f"{name}.yaml"))[0] == 0

    def names(*extra: str) -> list[str]:
        return [line.split()[0] for line in cli("list", *extra)[1].splitlines()[1:]]

    assert names("--sort", "name") == ["alpha", "bravo", "charlie"]
    assert names("--sort", "name", "--reverse") == ["charlie", "bravo", "alpha"]
    assert names() == ["charlie", "alpha", "bravo"]  # newest first
    assert names("--reverse") == ["bravo", "alpha", "charlie"]
    assert names("--sort", "created") == ["charlie", "alpha", "bravo"]


# ------------------------------------------------------------------ --set values


@pytest.mark.parametrize(("text", "value"), [
    ("10", 10), ("-3", -3), ("0.1", 0.1), ("1e3", 1000.0), ("true", True),
    ("false", False), ("010", "010"), ("1:30", "1:30"), ("no", "no"), ("yes", "yes"),
    ("null", "null"), ("True", "True"), (".5", ".5"), ("0x1f", "0x1f"), ("1_000", "1_000"),
    ("", ""), (" 1", " 1"), ("1e999", "1e999"),
])
def test_set_values_follow_the_json_rule(text: str, value: object) -> None:
    parsed = parse_assignments([f"p={text}"])["p"]
    assert parsed == value and type(parsed) is type(value)


def test_modify_diff_shows_the_typed_value(cli: Cli, demo: Path) -> None:
    code, out, err = cli("modify", "demo", "--from", "V001", "--set", "epochs=010",
                         "--set", "lr=1e-2", "--add", "amp=no", "--dry-run")
    assert code == 0, err
    assert out.splitlines() == ['parameters.amp: - -> "no"',
                                'parameters.epochs: 2 -> "010"',
                                "parameters.lr: 0.1 -> 0.01"]


# ------------------------------------------------------------------ delete keeps outputs


@pytest.fixture
def remote(cli: Cli, make_project: Callable[..., Project], monkeypatch: pytest.MonkeyPatch,
           tmp_path: Path) -> Path:
    """`demo` V001 with an object-storage output that never went up (the endpoint is
    dead): the local copy in its state dir, which holds one file."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", dead_endpoint())
    project = make_project()
    assert cli("submit", project.write_spec(project.raw(output="s3://results/demo/out")))[0] == 0
    ctx = Context.open()
    with ctx.db.read() as session:
        version = session.exec(select(Version)).one()
    local = local_output_path(version.output, state_dir(ctx.settings, version.id or 0))
    (local / "ckpt").mkdir(parents=True)
    (local / "ckpt" / "model.bin").write_bytes(b"weights")
    return local


def test_delete_keeps_an_output_that_never_went_up(cli: Cli, remote: Path) -> None:
    code, out, err = cli("delete", "demo", "--yes")
    assert code == 0, err
    kept = Context.open().settings.data_dir / "kept-outputs" / "demo" / "V001"
    assert out == (f"deleted demo V001; V001's output never reached object storage: "
                   f"kept in {kept}\n")
    assert (kept / "ckpt" / "model.bin").read_bytes() == b"weights"
    assert not remote.exists()  # the state dir went


def test_delete_json_says_where(cli: Cli, remote: Path) -> None:
    code, out, _ = cli("delete", "demo", "-v", "V001", "--yes", "--json")
    kept = Context.open().settings.data_dir / "kept-outputs" / "demo" / "V001"
    assert code == 0 and json.loads(out) == {"job": "demo", "deleted": ["V001"],
                                             "kept": {"V001": str(kept)}}


def test_delete_purge_keeps_nothing(cli: Cli, remote: Path) -> None:
    assert cli("delete", "demo", "--yes", "--purge")[1] == "deleted demo V001\n"
    assert not (Context.open().settings.data_dir / "kept-outputs").exists()
    assert not remote.exists()


def upload(remote: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Send the version's output up to the loopback S3 server, as its supervisor would."""
    server = shared_server()
    server.reset()
    use_server(monkeypatch, tmp_path, server)
    server.client().create_bucket(Bucket="results")
    assert upload_output(None, remote, "s3://results/demo/out/V001", lambda line: None) is None


def test_delete_drops_an_output_that_went_up(cli: Cli, remote: Path,
                                             monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    upload(remote, monkeypatch, tmp_path)
    assert cli("delete", "demo", "--yes")[1] == "deleted demo V001\n"
    assert not (Context.open().settings.data_dir / "kept-outputs").exists()


def test_delete_keeps_an_output_that_changed_after_its_upload(
        cli: Cli, remote: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    upload(remote, monkeypatch, tmp_path)
    (remote / "late.txt").write_text("written after the upload")
    assert "kept in" in cli("delete", "demo", "--yes")[1]


# ------------------------------------------------------------------ bytes that are not UTF-8

NOT_UTF8 = "(job names and paths must be UTF-8; rename it, or work from a folder whose " \
           "path is UTF-8)"


@pytest.mark.parametrize("command", ["show", "logs", "stop", "wait"])
def test_a_job_name_that_is_not_utf8_gives_one_line(cli: Cli, demo: Path,
                                                    command: str) -> None:
    name = os.fsdecode(b"demo\xff")  # what Python makes of such an argument
    code, out, err = cli(command, name)
    assert (code, out) == (1, "")
    assert err == f"error: not valid UTF-8: demo\\xff {NOT_UTF8}\n"


def test_submitting_from_a_folder_that_is_not_utf8_gives_one_line(
        cli: Cli, make_project: Callable[..., Project], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    folder = os.fsdecode(os.path.join(os.fsencode(tmp_path), b"caf\xe9"))
    project = make_project()
    spec = project.raw(output="out", log_dir="logs", data={"paths": [str(project.data_dir)]})
    spec["algorithm"]["framework"]["code_dir"] = str(project.code_dir)
    os.mkdir(folder)
    write_yaml(Path(folder) / "spec.yaml", spec)
    monkeypatch.chdir(folder)
    code, _, err = cli("submit", "spec.yaml")
    assert code == 1
    assert err.startswith(f"error: not valid UTF-8: {tmp_path}/caf\\xe9/") and \
        err.endswith(f" {NOT_UTF8}\n")
    assert cli("list", "--json")[1] == "[]\n"  # nothing half-made


def test_a_terminal_that_cannot_show_a_character_is_named() -> None:
    try:
        "loss ↓".encode("ascii")
    except UnicodeEncodeError as exc:
        assert unicode_problem(exc) == ("this terminal (ascii) cannot show '\\u2193'; use a "
                                        "UTF-8 locale (e.g. LANG=C.UTF-8)")
