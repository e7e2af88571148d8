"""Object storage against a real S3 server on loopback (moto over HTTP), and the 255 rule."""

from __future__ import annotations

import errno
import hashlib
import itertools
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from s3server import (
    DUMMY_KEY,
    DUMMY_SECRET,
    S3Server,
    dead_endpoint,
    isolate_aws,
    put_objects,
)

from app.storage import (
    ClientOptions,
    DataError,
    Endpoint,
    LogSyncer,
    S3Location,
    StorageError,
    TransferCancelled,
    TransferOptions,
    TransferSnapshot,
    data_ready,
    finalize_outputs,
    local_output_path,
    make_client,
    prepare_data,
    read_transfer,
    remote_log_uri,
    scan_names,
    stage_in,
    storage_error,
    sync_logs,
    transfer_path,
    upload_dir,
    upload_output,
    write_transfer,
)
from app.storage.client import endpoint_for

MiB = 1024 * 1024
LONG = "x" * 296 + ".csv"  # a 300-character file name
SMALL_PARTS = TransferOptions(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB,
                              max_concurrency=4)




class Recorder:
    """Collects what prepare_data writes to the log and the events."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.events: list[tuple[str, str]] = []

    def log(self, line: str) -> None:
        self.lines.append(line)

    def event(self, message: str, kind: str) -> None:
        self.events.append((message, kind))


# ---------------------------------------------------------------- the 255 rule


def test_scan_names_sorts_usable_long_and_unsafe() -> None:
    names = ["a.csv", "sub/b.csv", LONG, f"sub/{LONG}", ("é" * 200) + ".txt",
             "../escape", "a//b", "./c", "clash", "clash/inner.csv", "y" * 255]
    scan = scan_names(names)
    assert scan.usable == ["a.csv", "sub/b.csv", "clash/inner.csv", "y" * 255]
    assert scan.too_long == [LONG, f"sub/{LONG}", ("é" * 200) + ".txt"]
    assert scan.unsafe == ["../escape", "a//b", "./c", "clash"]


def test_locations_are_folders() -> None:
    loc = S3Location.parse("s3://bucket-a/data/train/")
    assert (loc.bucket, loc.prefix, loc.key_prefix) == ("bucket-a", "data/train", "data/train/")
    assert S3Location.parse("obs://bucket-a").key_prefix == ""
    with pytest.raises(StorageError, match="not a valid s3://bucket/prefix"):
        S3Location.parse("s3://B/x")


# ---------------------------------------------------------------- staging in


def test_stage_in_skips_long_names_and_downloads_the_rest(s3: S3Server, tmp_path: Path
                                                           ) -> None:
    put_objects(s3, "data-bucket", {
        "mnist/train.csv": b"1,2,3\n", "mnist/sub/test.csv": b"4,5\n",
        f"mnist/{LONG}": b"skipped", "mnist/empty/": b"", "mnist2/other.csv": b"not ours",
    })
    seen: list[tuple[int, int]] = []
    result = stage_in("s3://data-bucket/mnist", tmp_path / "cache",
                      lambda done, total: seen.append((done, total)))
    data = result.local_dir
    assert sorted(p.relative_to(data).as_posix() for p in data.rglob("*") if p.is_file()) == \
        ["sub/test.csv", "train.csv"]
    assert (data / "train.csv").read_bytes() == b"1,2,3\n"
    assert (result.files, result.bytes, result.scan.too_long) == (2, 10, [LONG])
    assert seen[-1] == (10, 10)
    assert not (tmp_path / "cache" / ".partial").exists()
    again = stage_in("s3://data-bucket/mnist", tmp_path / "cache")
    assert again.reused and again.files == 2


def test_prepare_data_reports_skipped_names(s3: S3Server, tmp_path: Path) -> None:
    put_objects(s3, "data-bucket", {"set/a.csv": b"a", f"set/{LONG}": b"b"})
    rec = Recorder()
    paths = prepare_data(None, ["s3://data-bucket/set"], tmp_path / "cache", rec.log, rec.event)
    assert paths == [tmp_path / "cache" / "0" / "data"]
    warnings = [m for m, kind in rec.events if kind == "warning"]
    assert len(warnings) == 1 and "skipped 1 data file(s)" in warnings[0]
    assert "(300 chars)" in warnings[0]
    assert any(line.startswith("warning: s3://data-bucket/set: skipped 1") for line in rec.lines)
    assert any("staging s3://data-bucket/set: 100%" in line for line in rec.lines)


def test_only_long_names_means_no_usable_data_files(s3: S3Server, tmp_path: Path) -> None:
    put_objects(s3, "data-bucket", {f"long/{LONG}": b"a", f"long/2{LONG[1:]}": b"b"})
    rec = Recorder()
    with pytest.raises(DataError) as caught:
        prepare_data(None, ["s3://data-bucket/long"], tmp_path / "cache", rec.log, rec.event)
    assert caught.value.reason.startswith("no usable data files")
    assert "2 skipped: names longer than 255 characters" in caught.value.reason
    assert [kind for _, kind in rec.events] == ["info", "warning"]


def test_local_data_passes_through_and_empty_folder_fails(tmp_path: Path) -> None:
    good, empty = tmp_path / "good", tmp_path / "empty"
    (good / "sub").mkdir(parents=True)
    (good / "sub" / "x.bin").write_bytes(b"12345")
    empty.mkdir()
    rec = Recorder()
    assert prepare_data(None, [str(good)], tmp_path / "c", rec.log, rec.event) == [good]
    assert rec.lines == [] and rec.events == []  # a good local folder is used as it is
    with pytest.raises(DataError, match=r"^no usable data files$"):
        prepare_data(None, [str(empty)], tmp_path / "c", rec.log, rec.event)
    with pytest.raises(DataError, match="missing"):
        prepare_data(None, [str(tmp_path / "missing")], tmp_path / "c", rec.log, rec.event)
    assert data_ready([str(good)]) and data_ready([str(empty), str(good)])
    assert not data_ready([str(empty)]) and not data_ready([str(tmp_path / "missing")])
    assert not data_ready([str(good), "s3://bucket-a/x"])
    # One usable source is enough; the empty one is only warned about.
    assert prepare_data(None, [str(good), str(empty)], tmp_path / "c", rec.log,
                        rec.event) == [good, empty]
    assert any("no usable data files" in line for line in rec.lines)


def test_multipart_both_ways(s3: S3Server, tmp_path: Path) -> None:
    s3.client().create_bucket(Bucket="big-bucket")
    out = tmp_path / "out"
    (out / "ckpt").mkdir(parents=True)
    body = os.urandom(12 * MiB)
    (out / "ckpt" / "model.bin").write_bytes(body)
    (out / "metrics.json").write_text('{"accuracy": 0.9}')
    progress: list[int] = []
    result = upload_dir(out, "s3://big-bucket/runs/V001", lambda d, t: progress.append(d),
                        transfer=SMALL_PARTS)
    assert (result.files, result.bytes) == (2, 12 * MiB + 17)
    head = s3.client().head_object(Bucket="big-bucket", Key="runs/V001/ckpt/model.bin")
    assert head["ETag"].strip('"').endswith("-3")  # three parts of at most 5 MiB
    assert progress[-1] == 12 * MiB + 17

    client = make_client()
    ranges: list[str] = []
    client.meta.events.register(
        "provide-client-params.s3.GetObject",
        lambda params, **_: ranges.append(f"{params['Key']} {params.get('Range')}"))
    staged = stage_in("s3://big-bucket/runs/V001", tmp_path / "cache", client=client,
                      transfer=SMALL_PARTS)
    model = staged.local_dir / "ckpt" / "model.bin"
    assert hashlib.sha256(model.read_bytes()).digest() == hashlib.sha256(body).digest()
    parts = [r for r in ranges if "model.bin" in r]
    assert len(parts) == 3 and set(parts) == {  # three ranged GETs
        f"runs/V001/ckpt/model.bin bytes={start}-{end}"
        for start, end in [(0, 5 * MiB - 1), (5 * MiB, 10 * MiB - 1), (10 * MiB, "")]}


# ---------------------------------------------------------------- the progress file


def test_staging_keeps_a_progress_file_while_it_runs(s3: S3Server, tmp_path: Path) -> None:
    big = os.urandom(11 * MiB)
    put_objects(s3, "data-bucket", {"big/a.bin": big, "big/b.csv": b"12345",
                                    "big/sub/c.csv": b"6789"})
    state = tmp_path / "versions" / "7"
    progress_file = transfer_path(state)
    seen: list[TransferSnapshot | None] = []
    rec = Recorder()
    # The writer runs first: each call of ours finds the file as it stands then.
    prepare_data(None, ["s3://data-bucket/big"], state / "data-cache", rec.log, rec.event,
                 progress=lambda done, total: seen.append(read_transfer(progress_file)),
                 transfer=SMALL_PARTS)
    total = 11 * MiB + 9
    shots = [shot for shot in seen if shot is not None]
    assert shots, "the progress file was never there while staging"
    last = shots[-1]
    assert (last.what, last.uri, last.done, last.total) == (
        "staging", "s3://data-bucket/big", total, total)
    assert (last.files_done, last.files, last.pid) == (3, 3, os.getpid())
    assert last.describe().startswith("11.0 MiB of 11.0 MiB · 3 of 3 files")
    assert all(a.done <= b.done for a, b in itertools.pairwise(shots))
    assert not progress_file.exists()  # the transfer ended: nothing is under way


def test_output_and_last_log_upload_keep_a_progress_file(s3: S3Server, tmp_path: Path
                                                         ) -> None:
    s3.client().create_bucket(Bucket="results")
    state = tmp_path / "state"
    output = local_output_path("s3://results/out/V001", state)
    output.mkdir(parents=True)
    (output / "model.bin").write_bytes(os.urandom(6 * MiB))
    seen: list[TransferSnapshot | None] = []
    error = upload_output(None, output, "s3://results/out/V001", lambda line: None,
                          transfer=SMALL_PARTS,
                          progress=lambda d, t: seen.append(read_transfer(
                              transfer_path(state))))
    assert error is None
    last = [shot for shot in seen if shot is not None][-1]
    assert (last.what, last.done, last.files_done) == ("uploading output", 6 * MiB, 1)
    assert not transfer_path(state).exists()

    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "rank-0.log").write_text("last line\n")
    syncer = LogSyncer(None, logs, "s3://results/logs/V001", interval=60,
                       progress_file=transfer_path(state))
    assert syncer.stop() is None  # never started: only the last upload, with progress
    assert _tree(s3, "results", "logs/") == {"logs/V001/rank-0.log": b"last line\n"}
    assert not transfer_path(state).exists()


def test_a_progress_file_of_a_dead_process_or_garbage_is_no_transfer(tmp_path: Path
                                                                      ) -> None:
    path = transfer_path(tmp_path)
    assert read_transfer(path) is None  # none at all
    alive = TransferSnapshot("staging", "s3://b/p", 5, 10, 1, 2, 3.0, 1.0, 2.0, os.getpid())
    write_transfer(path, alive)
    assert read_transfer(path) == alive
    assert alive.fraction == 0.5
    write_transfer(path, TransferSnapshot("staging", "s3://b/p", 5, 10, 1, 2, 3.0, 1.0, 2.0,
                                          2 ** 22 + 1))  # above Linux's largest pid
    assert read_transfer(path) is None
    path.write_text("{not json")
    assert read_transfer(path) is None
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left


# ---------------------------------------------------------------- errors


def test_missing_bucket_and_empty_prefix(s3: S3Server, tmp_path: Path) -> None:
    rec = Recorder()
    with pytest.raises(DataError, match=r"^s3://no-such-bucket/p: no such bucket$"):
        prepare_data(None, ["s3://no-such-bucket/p"], tmp_path / "c", rec.log, rec.event)
    put_objects(s3, "data-bucket", {"there/a.csv": b"a"})
    with pytest.raises(DataError, match=r"^no usable data files$"):
        prepare_data(None, ["s3://data-bucket/nothing-here"], tmp_path / "c", rec.log,
                     rec.event)
    assert not any((tmp_path / "c").rglob("*.csv"))


def test_wrong_credentials_are_access_denied(s3: S3Server, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    put_objects(s3, "open-bucket", {"d/a.csv": b"a"})
    put_objects(s3, "closed-bucket", {"d/a.csv": b"a"})
    iam = s3.client("iam")
    iam.create_user(UserName="reader")
    policy = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "s3:*",
        "Resource": ["arn:aws:s3:::open-bucket", "arn:aws:s3:::open-bucket/*"]}]}
    iam.put_user_policy(UserName="reader", PolicyName="open-only",
                        PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName="reader")["AccessKey"]
    s3.require_auth()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    assert stage_in("s3://open-bucket/d", tmp_path / "ok").files == 1
    with pytest.raises(StorageError, match=r"^s3://closed-bucket/d: access denied$"):
        stage_in("s3://closed-bucket/d", tmp_path / "no")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
    with pytest.raises(StorageError,
                       match=r"access denied \(the secret access key does not match\)"):
        stage_in("s3://open-bucket/d", tmp_path / "no")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAUNKNOWN000000000")
    with pytest.raises(StorageError) as caught:
        stage_in("s3://open-bucket/d", tmp_path / "no")
    message = str(caught.value)
    assert message.startswith("s3://open-bucket/d: access denied (the access key id")
    assert "wrong-secret" not in message and "AKIAUNKNOWN" not in message
    assert not (tmp_path / "no").exists() or not any((tmp_path / "no").iterdir())


def test_dead_endpoint_fails_fast(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_aws(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", DUMMY_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", DUMMY_SECRET)
    url = dead_endpoint()
    started = time.monotonic()
    rec = Recorder()
    with pytest.raises(DataError) as caught:
        prepare_data(None, ["s3://data-bucket/p"], tmp_path / "c", rec.log, rec.event,
                     endpoints=[Endpoint("lab", url, buckets=("data-bucket",))],
                     client_options=ClientOptions(connect_timeout=1, max_attempts=2))
    assert caught.value.reason == f"s3://data-bucket/p: endpoint {url} unreachable"
    assert time.monotonic() - started < 5


def test_no_credentials_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_aws(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_ENDPOINT_URL", dead_endpoint())
    with pytest.raises(StorageError, match="no credentials"):
        stage_in("s3://data-bucket/p", tmp_path / "c")


def test_disk_full_while_staging(s3: S3Server, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    put_objects(s3, "data-bucket", {"d/a.bin": b"a" * 1000})
    import app.storage.transfer as transfer

    class Usage:
        free = 10

    monkeypatch.setattr(transfer.shutil, "disk_usage", lambda path: Usage())
    with pytest.raises(StorageError, match="disk full while staging s3://data-bucket/d"):
        stage_in("s3://data-bucket/d", tmp_path / "cache")
    assert not (tmp_path / "cache").exists()
    # A write failing with ENOSPC mid-transfer reads the same way.
    error = storage_error(OSError(errno.ENOSPC, "No space left on device"),
                          "s3://data-bucket/d/a.bin", local=str(tmp_path))
    assert str(error).startswith("disk full while transferring s3://data-bucket/d/a.bin")


def test_stop_abandons_staging(s3: S3Server, tmp_path: Path) -> None:
    put_objects(s3, "data-bucket", {f"d/{i}.bin": b"z" * 300_000 for i in range(30)})
    with pytest.raises(TransferCancelled):
        stage_in("s3://data-bucket/d", tmp_path / "cache", should_stop=lambda: True)
    assert not (tmp_path / "cache").exists()
    # A stop while objects are in flight: they are cancelled, nothing stays behind.
    moving, release = threading.Event(), threading.Event()

    def progress(done: int, total: int) -> None:
        if done:
            moving.set()
            release.wait(5)  # hold the transfers until the stop has been seen

    def should_stop() -> bool:
        if moving.is_set():
            release.set()
            return True
        return False

    with pytest.raises(TransferCancelled):
        stage_in("s3://data-bucket/d", tmp_path / "cache", progress,
                 transfer=TransferOptions(max_concurrency=2), should_stop=should_stop)
    assert not (tmp_path / "cache").exists()


# ---------------------------------------------------------------- endpoints and clients


def test_clients_follow_the_aws_configuration(s3: S3Server, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    client = make_client()
    assert client.meta.endpoint_url == s3.url
    assert client.meta.config.s3 == {"addressing_style": "path"}
    assert client.meta.config.request_checksum_calculation == "when_required"
    monkeypatch.setenv("AWS_REQUEST_CHECKSUM_CALCULATION", "when_supported")
    assert make_client().meta.config.request_checksum_calculation == "when_supported"

    # A named endpoint with a profile from a credentials file; no AWS_ENDPOINT_URL.
    for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    (tmp_path / "aws-credentials").write_text(
        f"[lab]\naws_access_key_id = {DUMMY_KEY}\naws_secret_access_key = {DUMMY_SECRET}\n")
    endpoint = Endpoint("lab", s3.url, region="us-east-1", addressing="virtual",
                        checksum="when_supported", profile="lab", buckets=("lab-bucket",))
    assert endpoint_for("lab-bucket", [endpoint]) is endpoint
    assert endpoint_for("other", [endpoint]) is None
    assert endpoint_for("other", [endpoint], "lab") is endpoint
    with pytest.raises(StorageError, match="default_endpoint"):
        endpoint_for("other", [endpoint], "nope")
    virtual = make_client(endpoint)
    assert virtual.meta.config.s3 == {"addressing_style": "virtual"}
    path_style = make_client(Endpoint("lab", s3.url, profile="lab"))
    put_objects(s3, "lab-bucket", {"p/a.csv": b"a"})
    assert stage_in("s3://lab-bucket/p", tmp_path / "c", client=path_style).files == 1
    with pytest.raises(StorageError, match="profile 'missing' not found"):
        stage_in("s3://lab-bucket/p", tmp_path / "d",
                 endpoint=Endpoint("lab", s3.url, profile="missing"))


# ---------------------------------------------------------------- outputs and logs


def _tree(s3: S3Server, bucket: str, prefix: str) -> dict[str, bytes]:
    client = s3.client()
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix=prefix)
            .get("Contents", [])]
    return {k: client.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys}


def test_finalize_uploads_output_and_logs(s3: S3Server, tmp_path: Path) -> None:
    s3.client().create_bucket(Bucket="results")
    state = tmp_path / "state"
    output = local_output_path("s3://results/out/V001", state)
    assert output == state / "output"
    assert local_output_path("/runs/out/V001", state) == Path("/runs/out/V001")
    (output / "ckpt").mkdir(parents=True)
    (output / "ckpt" / "w.bin").write_bytes(b"w" * 10)
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "rank0.log").write_text("line 1\n")
    log_uri = remote_log_uri("s3://results/logs/", "V001")
    assert log_uri == "s3://results/logs/V001"
    assert remote_log_uri("/local/logs", "V001") is None
    lines: list[str] = []
    result = finalize_outputs(None, output, "s3://results/out/V001", logs, log_uri,
                              lines.append)
    assert result.output_error is None and result.log_error is None
    assert _tree(s3, "results", "out/") == {"out/V001/ckpt/w.bin": b"w" * 10}
    assert _tree(s3, "results", "logs/") == {"logs/V001/rank0.log": b"line 1\n"}
    assert any(line.startswith("uploaded output: 1 file(s)") for line in lines)
    failed = finalize_outputs(None, output, "s3://no-such-bucket/out", None, None,
                              lines.append)
    assert failed.output_error == ("output upload failed: s3://no-such-bucket/out: "
                                   f"no such bucket; the files stay in {output}")


def test_log_sync_uploads_only_what_changed(s3: S3Server, tmp_path: Path) -> None:
    s3.client().create_bucket(Bucket="results")
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "rank0.log").write_text("a\n")
    (logs / "rank1.log").write_text("b\n")
    seen: dict[str, Any] = {}
    assert sync_logs(None, logs, "s3://results/logs/V002", seen) is None
    assert set(seen) == {"rank0.log", "rank1.log"}
    with (logs / "rank0.log").open("a") as f:
        f.write("more\n")
    uploaded = upload_dir(logs, "s3://results/logs/V002", seen=seen)
    assert uploaded.files == 1  # rank1.log is unchanged
    assert _tree(s3, "results", "logs/")["logs/V002/rank0.log"] == b"a\nmore\n"

    warnings: list[str] = []
    syncer = LogSyncer(None, logs, "s3://results/logs/V003", interval=0.05,
                       warn=warnings.append)
    syncer.start()
    deadline = time.monotonic() + 5
    while "logs/V003/rank1.log" not in _tree(s3, "results", "logs/V003"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    (logs / "rank1.log").write_text("b\nlast\n")
    assert syncer.stop() is None
    assert _tree(s3, "results", "logs/V003")["logs/V003/rank1.log"] == b"b\nlast\n"
    bad = LogSyncer(None, logs, "s3://no-such-bucket/logs", warn=warnings.append)
    bad.sync_once()
    bad.sync_once()
    assert warnings == ["log upload failed: s3://no-such-bucket/logs: no such bucket"]


# ---------------------------------------------------------------- versions end to end


def _integrated() -> bool:
    import app.runtime.plan as plan

    return hasattr(plan, "local_output_path")


needs_supervisor = pytest.mark.skipif(
    not _integrated(), reason="the supervisor does not call app.storage yet")

LIST_DATA_BOOT = """\
import os, sys
args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--"))
data, out = args["data_url"], args["train_url"]
names = sorted(os.path.relpath(os.path.join(r, f), data)
               for r, _, files in os.walk(data) for f in files)
print("data files:", ",".join(names), flush=True)
os.makedirs(out, exist_ok=True)
with open(os.path.join(out, "result.txt"), "w") as f:
    f.write(",".join(names))
"""


def _remote_spec(tmp_path: Path, name: str, data: str, runtime: str = "local"
                 ) -> dict[str, Any]:
    code = tmp_path / f"code-{name}"
    code.mkdir()
    (code / "train.py").write_text(LIST_DATA_BOOT)
    return {"name": name, "data": {"paths": [data]},
            "algorithm": {"framework": {"engine": "python", "engine_version": "3.11",
                                        "code_dir": str(code), "boot_file": "train.py"}},
            "output": "s3://results/out", "log_dir": "s3://results/logs",
            "resources": {"runtime": runtime}}


def _own_folders(spec: dict[str, Any]) -> dict[str, Any]:
    """Jobs of one database may not share output or log folders: one prefix per job."""
    return {**spec, "output": f"s3://results/{spec['name']}/out",
            "log_dir": f"s3://results/{spec['name']}/logs"}


@needs_supervisor
@pytest.mark.slow
def test_a_version_reads_and_writes_object_storage(s3: S3Server, ctx: Any, tmp_path: Path
                                                    ) -> None:
    from app.jobs import submit
    from app.queries import version_events
    from app.runtime.control import wait_final
    from app.runtime.plan import state_dir

    put_objects(s3, "inputs", {"set/a.csv": b"1", "set/sub/b.csv": b"2", f"set/{LONG}": b"x"})
    s3.client().create_bucket(Bucket="results")
    ref = submit(ctx, _remote_spec(tmp_path, "remote", "s3://inputs/set"), tmp_path)
    version = wait_final(ctx, "remote", None, 60)
    assert (version.status, version.reason) == ("succeeded", "")
    stored = _tree(s3, "results", "")
    assert stored["out/V001/result.txt"] == b"a.csv,sub/b.csv"
    log = stored["logs/V001/rank-0.log"].decode()
    assert "data files: a.csv,sub/b.csv" in log and "skipped 1 data file(s)" in log
    assert log.rstrip().endswith("succeeded")
    events = version_events(ctx.db, ref.version_id)
    assert any(e.kind == "warning" and "skipped 1 data file(s)" in e.message for e in events)
    assert not (state_dir(ctx.settings, ref.version_id) / "data-cache").exists()


@needs_supervisor
@pytest.mark.docker
@pytest.mark.slow
def test_a_docker_version_reads_staged_data(s3: S3Server, ctx: Any, tmp_path: Path,
                                            docker_engine: Any) -> None:
    from docker.errors import ImageNotFound

    from app.jobs import submit
    from app.runtime.control import wait_final

    try:
        docker_engine.images.get("traindeck/python:3.11")
    except ImageNotFound:
        pytest.skip("image traindeck/python:3.11 missing: run scripts/build-test-image")
    put_objects(s3, "inputs", {"set/a.csv": b"1", "set/sub/b.csv": b"2", f"set/{LONG}": b"x"})
    s3.client().create_bucket(Bucket="results")
    submit(ctx, _remote_spec(tmp_path, "indocker", "s3://inputs/set", "docker"), tmp_path)
    version = wait_final(ctx, "indocker", None, 120)
    assert (version.status, version.reason) == ("succeeded", "")
    assert _tree(s3, "results", "out/")["out/V001/result.txt"] == b"a.csv,sub/b.csv"


@needs_supervisor
@pytest.mark.slow
def test_a_version_without_usable_data_fails(s3: S3Server, ctx: Any, tmp_path: Path) -> None:
    from app.jobs import submit
    from app.runtime.control import wait_final

    put_objects(s3, "inputs", {f"long/{LONG}": b"x"})
    s3.client().create_bucket(Bucket="results")
    submit(ctx, _own_folders(_remote_spec(tmp_path, "longonly", "s3://inputs/long")), tmp_path)
    version = wait_final(ctx, "longonly", None, 60)
    assert version.status == "failed"
    assert version.reason == "no usable data files (1 skipped: names longer than 255 characters)"
    assert "longonly/logs/V001/rank-0.log" in _tree(s3, "results", "longonly/logs/")
    empty = tmp_path / "empty"
    empty.mkdir()
    submit(ctx, _own_folders(_remote_spec(tmp_path, "emptylocal", str(empty))), tmp_path)
    version = wait_final(ctx, "emptylocal", None, 60)
    assert (version.status, version.reason) == ("failed", "no usable data files")
    submit(ctx, _own_folders(_remote_spec(tmp_path, "nobucket", "s3://missing-bucket/x")),
           tmp_path)
    version = wait_final(ctx, "nobucket", None, 60)
    assert (version.status, version.reason) == ("failed",
                                                "s3://missing-bucket/x: no such bucket")
