"""Traindeck's moxing shim: ModelArts-style scripts importing `moxing`, run as a rank runs
them (a subprocess with the shim folder on PYTHONPATH), and `mox.file` against a real S3
server on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import require_image
from s3server import S3Server, put_objects

from app.compat import shim_path
from app.compat.moxing import _s3
from app.compat.moxing import file as mox_file

IMAGE = "traindeck/python:3.11"  # has no boto3

MODELARTS_SCRIPT = """
import argparse, json, sys
import moxing as mox
import moxing.tensorflow as mox_tf
import moxing.pytorch as mox_pt
import moxing.mxnet as mox_mx

parser = argparse.ArgumentParser()
parser.add_argument('--data_url', required=True)
parser.add_argument('--train_url', required=True)
parser.add_argument('--cache', required=True)
args, _ = parser.parse_known_args()
assert mox_tf.file is mox.file and mox_pt.file is mox.file and mox_mx.file is mox.file
mox.file.copy_parallel(args.data_url, args.cache)
copied = mox.file.list_directory(args.cache, recursive=True)
mox.file.write(args.train_url + 'result.txt', 'copied %d' % len(copied))
with mox.file.File(args.cache + '/train/a.csv', 'r') as handle:
    first = handle.read()
print(json.dumps({'copied': copied, 'first': first,
                  'app': sorted(m for m in sys.modules if m.split('.')[0] == 'app')}))
"""


def run_script(script: Path, *args: str, env: dict[str, str] | None = None,
               flags: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """Run `script` as a rank would: the shim folder alone on PYTHONPATH."""
    environment = {**(env or os.environ), "PYTHONPATH": str(shim_path())}
    return subprocess.run([sys.executable, *flags, str(script), *args], env=environment,
                          cwd=script.parent, capture_output=True, text=True, timeout=60)


@pytest.fixture
def s3(s3: S3Server) -> Iterator[S3Server]:
    """The suite's loopback S3 server, with a fresh client of the shim's."""
    _s3._clients.clear()
    yield s3
    _s3._clients.clear()


def make_data(folder: Path) -> Path:
    """A small data folder: two files in a subfolder, one at the top."""
    (folder / "train").mkdir(parents=True)
    (folder / "train" / "a.csv").write_text("x,y\n1,2\n")
    (folder / "train" / "b.csv").write_text("x,y\n3,4\n")
    (folder / "labels.txt").write_text("cat\ndog\n")
    return folder


def test_modelarts_script_copies_local_data_with_the_shim(tmp_path: Path) -> None:
    data = make_data(tmp_path / "data")
    output = tmp_path / "out"
    output.mkdir()
    script = tmp_path / "code" / "train.py"
    script.parent.mkdir()
    script.write_text(MODELARTS_SCRIPT)
    done = run_script(script, f"--data_url={data}/", f"--train_url={output}/",
                      f"--cache={tmp_path / 'cache' / 'data'}", "--epochs=2")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["copied"] == ["labels.txt", "train", "train/a.csv", "train/b.csv"]
    assert result["first"] == "x,y\n1,2\n"
    assert result["app"] == []  # the shim imports nothing from Traindeck
    assert (output / "result.txt").read_text() == "copied 4"


def test_modelarts_script_copies_s3_data_through_s3_endpoint(s3: S3Server,
                                                             tmp_path: Path) -> None:
    put_objects(s3, "bucket", {"data/train/a.csv": b"x,y\n1,2\n", "data/train/b.csv": b"2",
                               "data/labels.txt": b"cat"})
    script = tmp_path / "train.py"
    script.write_text(MODELARTS_SCRIPT)
    env = dict(os.environ)  # ModelArts' own variable names: a bare host, plain HTTP
    env.pop("AWS_ENDPOINT_URL")
    env.update(S3_ENDPOINT=s3.url.removeprefix("http://"), S3_USE_HTTPS="0")
    done = run_script(script, "--data_url=obs://bucket/data/", "--train_url=s3://bucket/out/",
                      f"--cache={tmp_path / 'cache'}", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["copied"] == ["labels.txt", "train", "train/a.csv",
                                           "train/b.csv"]
    body = s3.client().get_object(Bucket="bucket", Key="out/result.txt")["Body"].read()
    assert body == b"copied 4"


@pytest.mark.docker
def test_modelarts_script_in_a_bare_image_with_the_shim_mounted_read_only(
        docker_engine: Any, tmp_path: Path) -> None:
    require_image(docker_engine, IMAGE)
    make_data(tmp_path / "data")
    (tmp_path / "out").mkdir()
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "train.py").write_text(MODELARTS_SCRIPT)
    mounts = {str(shim_path()): {"bind": "/opt/traindeck/compat", "mode": "ro"},
              str(tmp_path / "code"): {"bind": "/code", "mode": "ro"},
              str(tmp_path / "data"): {"bind": "/data", "mode": "ro"},
              str(tmp_path / "out"): {"bind": "/out", "mode": "rw"}}
    output = docker_engine.containers.run(
        IMAGE, ["python", "/code/train.py", "--data_url=/data/", "--train_url=/out/",
                "--cache=/tmp/cache/data"], volumes=mounts, remove=True,
        environment={"PYTHONPATH": "/opt/traindeck/compat"}, user=f"{os.getuid()}:{os.getgid()}")
    assert json.loads(output)["copied"] == ["labels.txt", "train", "train/a.csv", "train/b.csv"]
    assert (tmp_path / "out" / "result.txt").read_text() == "copied 4"


def test_the_shim_needs_only_the_standard_library(tmp_path: Path) -> None:
    script = tmp_path / "bare.py"
    script.write_text(
        "import moxing as mox, moxing.tensorflow, moxing.pytorch, moxing.mxnet\n"
        "mox.file.write('out/x.txt', 'hi')\n"
        "assert mox.file.read('out/x.txt') == 'hi'\n"
        "try:\n    mox.file.exists('s3://bucket/x')\n"
        "except ImportError as error:\n    print(error)\n")
    done = run_script(script, flags=("-S",))  # no site: nothing but the standard library
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "moxing shim: s3:// needs boto3 in this image"


def test_names_the_shim_lacks_raise_not_supported() -> None:
    import app.compat.moxing as mox
    import app.compat.moxing.pytorch as mox_pt

    with pytest.raises(NotImplementedError, match=r"^moxing\.file\.set_auth is not supported "
                                                  r"by Traindeck's moxing shim \(it covers "):
        mox.file.set_auth(ak="a", sk="b")
    with pytest.raises(NotImplementedError, match=r"moxing\.file\.shift is not supported"):
        mox.file.shift("os", "mox")
    with pytest.raises(NotImplementedError, match=r"moxing\.run is not supported"):
        mox.run(None)
    with pytest.raises(NotImplementedError, match=r"moxing\.pytorch\.optim is not supported"):
        _ = mox_pt.optim
    assert not hasattr(mox.file, "__wrapped__")  # probes by tools still see an AttributeError


def test_local_file_functions(tmp_path: Path) -> None:
    data = make_data(tmp_path / "data")
    assert mox_file.list_directory(str(data)) == ["labels.txt", "train"]
    assert mox_file.glob(f"{data}/train/*.csv") == [f"{data}/train/a.csv",
                                                    f"{data}/train/b.csv"]
    mox_file.write(str(data / "log.txt"), "one\n")
    mox_file.append(str(data / "log.txt"), b"two\n", binary=True)
    assert mox_file.read(str(data / "log.txt"), binary=True) == b"one\ntwo\n"
    assert mox_file.stat(str(data / "log.txt")).length == 8
    assert mox_file.get_size(str(data / "train"), recursive=True) == 16
    with pytest.raises(IsADirectoryError, match="pass recursive=True"):
        mox_file.remove(str(data / "train"))
    mox_file.rename(str(data / "train"), str(tmp_path / "moved" / "train"))
    assert mox_file.is_directory(str(tmp_path / "moved" / "train"))
    mox_file.remove(str(tmp_path / "moved"), recursive=True)
    assert not mox_file.exists(str(tmp_path / "moved"))


def test_s3_file_functions(s3: S3Server, tmp_path: Path) -> None:
    put_objects(s3, "bucket", {})
    root = "s3://bucket/job"
    mox_file.write(f"{root}/log.txt", "one\n")
    mox_file.write(f"{root}/log.txt", "two\n", append=True)
    assert mox_file.read(f"{root}/log.txt") == "one\ntwo\n"
    assert mox_file.read("obs://bucket/job/log.txt", binary=True) == b"one\ntwo\n"
    with mox_file.File(f"{root}/sub/model.bin", "wb") as handle:
        handle.write(b"\x00\x01")
    with mox_file.File(f"{root}/sub/notes.txt", "w") as handle:
        handle.write("héllo")
    with mox_file.File(f"{root}/sub/notes.txt", "a") as handle:
        handle.write("!")
    with mox_file.File(f"{root}/sub/notes.txt") as handle:
        assert handle.read() == "héllo!"
    mox_file.make_dirs(f"{root}/empty")

    assert mox_file.exists(f"{root}/log.txt") and mox_file.exists(f"{root}/sub")
    assert not mox_file.exists(f"{root}/nothing") and not mox_file.exists(f"{root}/lo")
    assert mox_file.is_directory(f"{root}/sub/") and mox_file.is_directory(f"{root}/empty")
    assert not mox_file.is_directory(f"{root}/log.txt")
    assert mox_file.list_directory(root) == ["empty", "log.txt", "sub"]
    assert mox_file.list_directory(root, recursive=True) == [
        "empty", "log.txt", "sub", "sub/model.bin", "sub/notes.txt"]
    assert mox_file.glob(f"{root}/sub/*.bin") == [f"{root}/sub/model.bin"]
    assert mox_file.glob("obs://bucket/*/log.*") == ["obs://bucket/job/log.txt"]
    assert list(mox_file.walk(root)) == [(root, ["empty", "sub"], ["log.txt"]),
                                         (f"{root}/empty", [], []),
                                         (f"{root}/sub", [], ["model.bin", "notes.txt"])]
    info = mox_file.stat(f"{root}/sub/model.bin")
    assert (info.length, info.is_directory) == (2, False) and info.mtime_nsec > 0
    assert mox_file.stat(f"{root}/sub").is_directory
    assert mox_file.get_size(root, recursive=True) == 8 + 2 + 7
    with pytest.raises(FileNotFoundError, match="no such object s3://bucket/job/nothing"):
        mox_file.read(f"{root}/nothing")

    # copies both ways and within the bucket, then moves and removals
    local = make_data(tmp_path / "data")
    mox_file.copy_parallel(str(local), f"{root}/data")
    mox_file.copy(f"{root}/data/train/a.csv", f"{root}/a-copy.csv")
    mox_file.copy(f"{root}/a-copy.csv", str(tmp_path / "back" / "a.csv"))
    assert (tmp_path / "back" / "a.csv").read_text() == "x,y\n1,2\n"
    mox_file.copy_parallel(f"{root}/data", "s3://bucket/mirror")
    assert mox_file.list_directory("s3://bucket/mirror/train") == ["a.csv", "b.csv"]
    mox_file.rename("s3://bucket/mirror", "s3://bucket/moved")
    assert not mox_file.exists("s3://bucket/mirror")
    assert mox_file.read("s3://bucket/moved/labels.txt") == "cat\ndog\n"
    with pytest.raises(IsADirectoryError, match="s3://bucket/moved is a folder"):
        mox_file.remove("s3://bucket/moved")
    mox_file.remove("s3://bucket/moved", recursive=True)
    mox_file.remove(f"{root}/log.txt")
    assert not mox_file.exists("s3://bucket/moved") and not mox_file.exists(f"{root}/log.txt")
    with pytest.raises(FileNotFoundError):
        mox_file.remove(f"{root}/log.txt")
