"""Training containers are hardened by default, and limited as the spec says (real engine).

Needs the local image `traindeck/python:3.11`; skips without an engine, fails when
TRAINDECK_REQUIRE_DOCKER=1.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from runtime_helpers import cli, script_spec, submit, wait, wait_for, wait_status

from app.context import Context
from app.store.models import Status

pytestmark = pytest.mark.docker

PROBE_BOOT = """\
import json, os, sys, time
out = next(a.split("=", 1)[1] for a in sys.argv if a.startswith("--train_url="))
status = dict(line.split(":\\t", 1) for line in open("/proc/self/status").read().splitlines()
              if ":\\t" in line)
seen = {"CapBnd": status["CapBnd"].strip(), "NoNewPrivs": status["NoNewPrivs"].strip(),
        "nets": sorted(os.listdir("/sys/class/net"))}
with open(os.path.join(out, "probe.json"), "w") as f:
    json.dump(seen, f)
time.sleep(120)
"""


def test_a_running_container_is_hardened_and_limited(
        engine: Any, ctx: Context, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINDECK_DOCKER_CAP_ADD", '["NET_RAW"]')
    monkeypatch.setenv("TRAINDECK_DOCKER_PIDS_LIMIT", "512")
    spec = script_spec(tmp_path, "d-hard", PROBE_BOOT, "docker")
    raw = yaml.safe_load(spec.read_text())
    raw["resources"].update(cpus=1.5, memory="256m", network="none")
    spec.write_text(yaml.safe_dump(raw))
    submit(spec)
    version = wait_status(ctx, "d-hard", Status.RUNNING)
    probe = Path(version.output) / "probe.json"
    wait_for(probe.exists, 60, "the probe's report")
    container_id = json.loads(version.handle)["containers"][0]
    attrs = engine.api.inspect_container(container_id)
    host = attrs["HostConfig"]
    assert host["CapDrop"] == ["ALL"]
    assert host["CapAdd"] == ["NET_RAW"]
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["PidsLimit"] == 512
    assert host["LogConfig"] == {"Type": "json-file",
                                 "Config": {"max-size": "100m", "max-file": "3"}}
    assert host["NanoCpus"] == 1_500_000_000
    assert host["Memory"] == 256 * 1024 * 1024
    assert host["NetworkMode"] == "none"
    seen = json.loads(probe.read_text())
    assert seen["NoNewPrivs"] == "1"
    assert int(seen["CapBnd"], 16) == 1 << 13  # CAP_NET_RAW alone
    assert seen["nets"] == ["lo"]
    assert cli("stop", "d-hard").returncode == 0
    assert wait(ctx, "d-hard", timeout=60).status == "stopped"


def test_defaults_drop_every_capability(engine: Any, ctx: Context,
                                        tmp_path: Path) -> None:
    spec = script_spec(tmp_path, "d-plain", PROBE_BOOT.replace("time.sleep(120)", ""),
                       "docker")
    submit(spec)
    version = wait(ctx, "d-plain")
    assert version.status == "succeeded", version.reason
    seen = json.loads((Path(version.output) / "probe.json").read_text())
    assert (seen["CapBnd"], seen["NoNewPrivs"]) == ("0000000000000000", "1")
    assert "eth0" in seen["nets"]  # bridge by default
