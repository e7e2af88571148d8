"""The wizard's model without its widgets: a raw spec shown in the fields (`form_values`)
reads back as the same spec (`raw_spec`), and blank fields are the form's own findings."""

from __future__ import annotations

from typing import Any

from app.tui.wizard.model import FormValues, form_values, raw_spec

SPEC: dict[str, Any] = {
    "name": "digits",
    "description": "a first try",
    "data": {"paths": ["./data", "s3://bucket/train/"]},
    "algorithm": {
        "framework": {"engine": "pytorch", "engine_version": "2.1", "code_dir": "./code",
                      "command": ["python", "train.py", "--note=two words"],
                      "arguments": "plain"},
        "compat": "moxing",
    },
    "parameters": {"lr": 0.1, "steps": 10, "tag": "10", "fast": True},
    "env": {"OMP_NUM_THREADS": "1"},
    "metrics": {"log_patterns": [r"loss=(?P<loss>\S+)"]},
    "output": "./out",
    "resources": {"pool": "team-a", "gpus": 1, "nodes": 2, "processes_per_node": "gpus",
                  "cpus": 0.5, "memory": "16g", "network": "none", "runtime": "docker"},
    "subscriptions": [{"topic": "me", "events": ["OnJobFailed"]},
                      {"topic": "ops", "events": ["OnJobSucceeded"]}],
    "save_as_template": {"name": "digits-params", "description": ""},
}


def test_a_spec_shown_in_the_fields_reads_back_unchanged() -> None:
    values = form_values(SPEC, has_datasets=True, public_pool="public")
    assert values.text["command"] == "python train.py '--note=two words'"
    assert (values.data_kind, values.algo_kind, values.log_metrics) == (
        "paths", "framework", "patterns")
    assert raw_spec(values) == (SPEC, [])
    image = {**SPEC, "algorithm": {"image": {"name": "trainer:1", "command": ["run"]}}}
    assert raw_spec(form_values(image, has_datasets=False, public_pool="public")) == (image, [])


def test_blank_fields_are_the_forms_own_findings() -> None:
    values = form_values({}, has_datasets=True, public_pool="public")
    assert values.data_kind == "datasets"  # a dataset is registered: offered first
    raw, errors = raw_spec(FormValues(**{
        **vars(values), "default_name": "trainjob-3",
        "text": {**values.text, "gpus": "two", "cpus": "many"},
        "ticked": {**values.ticked, "save-template": True, "event-OnJobFailed": True}}))
    assert raw["name"] == "trainjob-3" and raw["resources"] == {"pool": "public", "nodes": 1}
    assert [e.field for e in errors] == [
        "data.datasets", "algorithm.framework.engine", "algorithm.framework.engine_version",
        "algorithm.framework.code_dir", "algorithm.framework.boot_file", "resources.gpus",
        "resources.cpus", "subscriptions[0].topic", "save_as_template.name"]
