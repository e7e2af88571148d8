"""Datasets in the TUI end to end: make one, add a version, delete (or be refused).

Real database, real local folders, and a real S3 server on loopback (moto over HTTP)
for the `s3://` ones. The dialogs call the same core functions as the CLI, so what they
refuse — and the words — are the core's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers import noop_launcher
from s3server import S3Server, put_objects
from textual.pilot import Pilot
from textual.widgets import Input, Static
from tui_data import DataBuilder
from tui_helpers import folder, make_dataset_folders, open_datasets, type_into
from tui_helpers import settle_workers as settle

from app.datasets import create_dataset, get_dataset, list_datasets
from app.jobs import submit
from app.tui.app import TraindeckApp
from app.tui.screens.dataset_form import DatasetFormScreen, split_field_error
from app.tui.screens.datasets import DatasetsScreen

SIZE = (120, 40)


def help_text(screen: Any, field: str) -> str:
    return str(screen.query_one(f"#dataset-{field}-help", Static).render())


def messages(app: TraindeckApp) -> list[str]:
    """Texts of the notifications shown so far."""
    return [n.message for n in app._notifications]


def test_split_field_error_names_the_field() -> None:
    assert split_field_error("path: /x is not an existing directory") == (
        "path", "/x is not an existing directory")
    assert split_field_error("dataset 'a' not found") == ("", "dataset 'a' not found")
    assert split_field_error("s3://b: no such bucket") == ("", "s3://b: no such bucket")


# ---------------------------------------------------------------- create


async def test_create_a_dataset_from_a_local_folder(build: DataBuilder) -> None:
    data = folder(build.base, "digits", {"train.csv": "x,y\n1,2\n", "sub/test.csv": "x\n"})
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_datasets(pilot)
        assert "press n to make one" in str(screen.query_one("#datasets-empty").render())
        await pilot.press("n")
        await settle(pilot)
        assert isinstance(app.screen, DatasetFormScreen)
        await pilot.press(*"digits")
        await pilot.press("enter")  # on to the files
        await pilot.press(*str(data))
        await pilot.press("enter")  # on to the description
        await pilot.press(*"handwritten")
        await pilot.press("enter")  # the last field: save
        await settle(pilot)
        assert app.screen is screen
        info = get_dataset(build.ctx.db, "digits")
        assert info.description == "handwritten"
        assert [(v.version, v.uri, v.file_count) for v in info.versions] == [
            ("V001", str(data), 2)]
        # The list was read again, with the new dataset and its version under the cursor.
        assert screen.master_table.row_keys == ["digits"]
        assert screen.versions_table.highlighted_key() == "V001"
        assert screen.focused is screen.versions_table
        assert "Created dataset digits V001: 2 files, 10 B" in messages(app)


async def test_create_refusals_are_shown_beside_their_field(build: DataBuilder) -> None:
    existing = folder(build.base, "taken", {"a.csv": "1"})
    create_dataset(build.ctx, "taken", str(existing))
    empty = folder(build.base, "empty", {})
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        await open_datasets(pilot)
        await pilot.press("n")
        await settle(pilot)
        form = app.screen
        assert isinstance(form, DatasetFormScreen)
        await pilot.press("ctrl+s")  # nothing typed
        await settle(pilot)
        assert help_text(form, "name") == "required: a name for the dataset"
        assert help_text(form, "path").startswith("required: a local folder")
        await type_into(pilot, "#dataset-name", "9lives")  # checked as it is typed
        assert "must be 1-64 letters, digits" in help_text(form, "name")
        assert form.query_one("#dataset-name", Input).has_class("-invalid")
        await type_into(pilot, "#dataset-name", "taken")
        assert help_text(form, "name").startswith("1-64 letters")  # fine so far
        await type_into(pilot, "#dataset-path", str(existing))
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert help_text(form, "name").startswith("dataset 'taken' already exists")
        assert form.focused is form.query_one("#dataset-name", Input)
        await type_into(pilot, "#dataset-name", "fresh")
        await type_into(pilot, "#dataset-path", str(build.base / "missing"))
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert help_text(form, "path") == \
            f"{build.base / 'missing'} is not an existing directory"
        assert form.focused is form.query_one("#dataset-path", Input)
        await type_into(pilot, "#dataset-path", str(empty))
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert help_text(form, "path") == f"{empty} holds no files"
        assert app.screen is form  # still open, nothing written
        assert [d.name for d in list_datasets(build.ctx.db)] == ["taken"]
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, DatasetsScreen)


async def test_create_from_object_storage(build: DataBuilder, s3: S3Server) -> None:
    long_name = "x" * 296 + ".csv"
    put_objects(s3, "lake", {"mnist/train.csv": b"1,2\n", "mnist/test/a.csv": b"3\n",
                             f"mnist/{long_name}": b"skipped"})
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_datasets(pilot)
        await pilot.press("n")
        await settle(pilot)
        await type_into(pilot, "#dataset-name", "mnist")
        await type_into(pilot, "#dataset-path", "s3://lake/nothing-here")
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert help_text(app.screen, "path") == "s3://lake/nothing-here holds no files"
        await type_into(pilot, "#dataset-path", "s3://lake/mnist/")
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert app.screen is screen
        [version] = get_dataset(build.ctx.db, "mnist").versions
        assert (version.uri, version.file_count, version.remote) == ("s3://lake/mnist", 3, True)
        assert screen.versions_table.highlighted_key() == "V001"
        assert any("skipped 1 data file(s)" in m for m in messages(app))
        detail = str(screen.query_one("#dataset-detail").render())
        assert "object storage s3://lake/mnist" in detail


async def test_a_dead_endpoint_is_a_reason_not_a_hang(build: DataBuilder,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    from s3server import dead_endpoint, isolate_aws

    isolate_aws(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_ENDPOINT_URL", dead_endpoint())
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        await open_datasets(pilot)
        await pilot.press("n")
        await settle(pilot)
        await type_into(pilot, "#dataset-name", "remote")
        await type_into(pilot, "#dataset-path", "s3://lake/mnist")
        form = app.screen
        assert isinstance(form, DatasetFormScreen)
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert app.screen is form and not form.busy
        assert "endpoint" in help_text(form, "path") and "unreachable" in help_text(form, "path")


# ---------------------------------------------------------------- add a version


async def test_add_a_version_to_the_highlighted_dataset(build: DataBuilder) -> None:
    make_dataset_folders(build)
    newer = folder(build.base, "digits-v2", {"train.csv": "x,y\n" + "1,2\n" * 50})
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_datasets(pilot)
        await pilot.press("down", "a")  # digits-train
        await settle(pilot)
        form = app.screen
        assert isinstance(form, DatasetFormScreen) and form.dataset == "digits-train"
        path = form.query_one("#dataset-path", Input)
        assert path.value == str(build.base / "data")  # starts from the newest version's
        assert form.focused is path
        await type_into(pilot, "#dataset-path", str(newer))
        await pilot.press("enter")  # on to the description
        await pilot.press(*"more rows", "enter")
        await settle(pilot)
        assert app.screen is screen
        versions = get_dataset(build.ctx.db, "digits-train").versions
        assert [(v.version, v.uri, v.description) for v in versions] == [
            ("V001", str(build.base / "data"), ""), ("V002", str(newer), "more rows")]
        assert screen.master_table.highlighted_key() == "digits-train"
        assert screen.versions_table.row_keys == ["V002", "V001"]
        assert screen.versions_table.highlighted_key() == "V002"
        assert "Added digits-train V002: 1 file, 204 B" in messages(app)


async def test_add_version_and_delete_need_a_dataset(build: DataBuilder) -> None:
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_datasets(pilot)
        assert screen.active_bindings["a"].enabled is False
        assert screen.active_bindings["n"].enabled is True
        await pilot.press("a")
        await settle(pilot)
        assert app.screen is screen
        assert "add version: no dataset yet" in messages(app)


# ---------------------------------------------------------------- delete


async def test_delete_a_version_then_the_dataset(build: DataBuilder) -> None:
    make_dataset_folders(build)
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_datasets(pilot)
        await pilot.press("down", "a")
        await settle(pilot)
        await type_into(pilot, "#dataset-path", str(build.base / "blobs"))
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert screen.focused is screen.versions_table
        await pilot.press("d")  # V002, highlighted after adding it
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
        assert [v.version for v in get_dataset(build.ctx.db, "digits-train").versions] == \
            ["V001"]
        assert "Deleted dataset digits-train V002" in messages(app)
        await pilot.press("tab", "d")  # the whole of digits-train, from the upper table
        await settle(pilot)
        assert "digits-train and its 1 version" in str(
            app.screen.query_one("#confirm-question").render())
        await pilot.press("y")
        await settle(pilot)
        assert [d.name for d in list_datasets(build.ctx.db)] == ["blobs"]
        assert screen.master_table.row_keys == ["blobs"]


async def test_delete_while_an_active_version_reads_it_is_refused_with_the_reason(
        build: DataBuilder) -> None:
    make_dataset_folders(build)
    spec = build.spec("reader", data={"datasets": [{"name": "digits-train",
                                                     "version": "V001"}]})
    submit(build.ctx, spec, build.base, launcher=noop_launcher)  # stays initializing
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_datasets(pilot)
        await pilot.press("down", "d")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
        reason = ("dataset 'digits-train' is in use by active training versions: V001 by "
                  "reader/V001 (initializing); stop them or let them end first")
        assert reason in messages(app)
        assert [d.name for d in list_datasets(build.ctx.db)] == ["blobs", "digits-train"]
        assert screen.master_table.row_keys == ["blobs", "digits-train"]


async def test_palette_has_the_dataset_actions(build: DataBuilder) -> None:
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_datasets(pilot)
        titles = [c.title for c in app.get_system_commands(screen)]
        for title in ("dataset: create", "dataset: add version", "dataset: check changes",
                      "dataset: delete", "view: reload datasets"):
            assert title in titles


async def test_help_lists_the_new_keys(build: DataBuilder) -> None:
    from app.tui.screens.help import collect_help

    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_datasets(pilot)
        entries = {e.description: e.key for e in collect_help(screen)["Datasets screen"]}
        assert entries["New dataset"] == "n" and entries["Add version"] == "a"


# ---------------------------------------------------------------- snapshots


def test_snapshot_new_dataset_dialog(snap_compare: Any, snap_build: DataBuilder) -> None:
    async def show(pilot: Pilot[Any]) -> None:
        await open_datasets(pilot)
        await pilot.press("n")
        await settle(pilot)
        await type_into(pilot, "#dataset-name", "mnist-train")
        await type_into(pilot, "#dataset-description", "MNIST, the train split")
        await type_into(pilot, "#dataset-path", "s3://lake/mnist/train")
        await settle(pilot)

    assert snap_compare(TraindeckApp(snap_build.ctx), terminal_size=SIZE, run_before=show)


def test_snapshot_new_dataset_refused(snap_compare: Any, snap_build: DataBuilder) -> None:
    async def show(pilot: Pilot[Any]) -> None:
        await open_datasets(pilot)
        await pilot.press("n")
        await settle(pilot)
        await type_into(pilot, "#dataset-name", "digits")
        await type_into(pilot, "#dataset-path", str(snap_build.base / "no-such-folder"))
        await pilot.press("ctrl+s")
        await settle(pilot)

    assert snap_compare(TraindeckApp(snap_build.ctx), terminal_size=SIZE, run_before=show)


def test_snapshot_add_version_dialog(snap_compare: Any, snap_build: DataBuilder) -> None:
    make_dataset_folders(snap_build)

    async def show(pilot: Pilot[Any]) -> None:
        await open_datasets(pilot)
        await pilot.press("down", "a")
        await settle(pilot)
        await type_into(pilot, "#dataset-description", "cleaned labels")

    assert snap_compare(TraindeckApp(snap_build.ctx), terminal_size=SIZE, run_before=show)
