"""Ask for a spec file to start the create wizard from: a path, completed as you type.

The file is read and parsed in a thread worker. A missing file, a folder, text that is
not UTF-8 or a YAML error keeps the dialog open with the error under the path (naming the
file and, for YAML, the line); a readable mapping dismisses the dialog with it. Whether
the spec is valid is the wizard's business: it shows each error beside its field.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.suggester import Suggester
from textual.widgets import Button, Input, Label, Static

from app.errors import SpecError
from app.specs.spec import load_spec_file
from app.tui.widgets.footer import KeyFooter

SPEC_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class LoadedSpec:
    """A spec file read for the wizard."""

    raw: dict[str, Any]
    """The file's mapping, as written (unchecked)."""
    base_dir: Path
    """The file's folder: relative paths in it resolve against it."""
    source: str
    """The path as the user gave it, for titles and messages."""


def complete_path(value: str, cwd: Path) -> str | None:
    """`value` completed with the entries of the folder it names (folders end in `/`).

    Several matches complete to their common start; spec files and folders are preferred
    to other files; hidden entries only when asked for with a leading dot.
    """
    if not value or ("/" not in value and value.startswith("~")):
        return None
    folder_text, _, prefix = value.rpartition("/")
    folder = Path(os.path.expanduser(folder_text or ("/" if value.startswith("/") else ".")))
    if not folder.is_absolute():
        folder = cwd / folder
    try:
        entries = [(e.name, e.is_dir()) for e in os.scandir(folder)]
    except OSError:
        return None
    matches = sorted((name, is_dir) for name, is_dir in entries
                     if name.startswith(prefix) and (prefix.startswith(".")
                                                      or not name.startswith(".")))
    preferred = [m for m in matches if m[1] or m[0].endswith(SPEC_SUFFIXES)] or matches
    if not preferred:
        return None
    if len(preferred) == 1:
        name, is_dir = preferred[0]
        completion = name + ("/" if is_dir else "")
    else:
        completion = _common_start([name for name, _ in preferred])
    if len(completion) <= len(prefix):
        return None
    return value[: len(value) - len(prefix)] + completion


def _common_start(names: list[str]) -> str:
    """The longest text every name starts with."""
    first, last = min(names), max(names)
    size = 0
    while size < len(first) and first[size] == last[size]:
        size += 1
    return first[:size]


class PathSuggester(Suggester):
    """Suggests the completion of a path (read off the UI thread)."""

    def __init__(self, cwd: Path) -> None:
        super().__init__(use_cache=False, case_sensitive=True)
        self.cwd = cwd

    async def get_suggestion(self, value: str) -> str | None:
        return await asyncio.to_thread(complete_path, value, self.cwd)


class SpecFileScreen(ModalScreen[LoadedSpec | None]):
    """Dismisses with the spec file read, or None when cancelled."""

    CSS_PATH = "spec_file.tcss"
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="spec-file.cancel"),
        Binding("tab", "complete", "Complete path", priority=True, id="spec-file.complete"),
    ]

    class Read(Message):
        """The file was read (`loaded`), or could not be (`error`)."""

        def __init__(self, loaded: LoadedSpec | None, error: str = "") -> None:
            super().__init__()
            self.loaded = loaded
            self.error = error

    def __init__(self, cwd: Path | None = None, *, path: str = "",
                 open_at_once: bool = False) -> None:
        """`path` is typed in already; `open_at_once` reads it straight away (the dialog
        only stays when it cannot be read)."""
        super().__init__()
        self.cwd = (cwd or Path.cwd()).resolve()
        self.initial_path = path
        self.open_at_once = open_at_once

    def compose(self) -> ComposeResult:
        with Vertical(id="spec-file-dialog"):
            yield Label("Create job from spec file", id="spec-file-title")
            yield Static(f"A job spec in YAML, as `traindeck submit` takes. Relative to "
                         f"{self.cwd}", id="spec-file-help", markup=False)
            yield Input(self.initial_path, placeholder="e.g. sample_jobs/logreg-local.yaml",
                        suggester=PathSuggester(self.cwd), id="spec-file-path")
            yield Static("", id="spec-file-error", markup=False)
            with Horizontal(id="spec-file-buttons"):
                yield Button("Open in wizard", id="spec-file-open", variant="primary")
                yield Button("Cancel", id="spec-file-cancel")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one("#spec-file-error").display = False
        self.query_one("#spec-file-path", Input).focus()
        if self.open_at_once:
            self._open()

    def _show_error(self, error: str) -> None:
        note = self.query_one("#spec-file-error", Static)
        note.update(error)
        note.display = bool(error)

    def action_complete(self) -> None:
        """Tab: take the suggested completion; with none, move on as tab does."""
        path = self.query_one("#spec-file-path", Input)
        if path.has_focus and path.cursor_at_end:
            before = path.value
            path.action_cursor_right()
            if path.value != before:
                return
        self.focus_next()

    @on(Input.Submitted, "#spec-file-path")
    @on(Button.Pressed, "#spec-file-open")
    def _open(self) -> None:
        text = self.query_one("#spec-file-path", Input).value.strip()
        if not text:
            self._show_error("Type the path of a spec file.")
            return
        self._show_error("")
        self.query_one("#spec-file-open", Button).disabled = True
        self._read(text)

    @work(thread=True, exclusive=True, exit_on_error=False, group="spec-file-read")
    def _read(self, text: str) -> None:
        """Read and parse the file (relative paths from `cwd`)."""
        path = Path(os.path.expanduser(text))
        if not path.is_absolute():
            path = self.cwd / path
        try:
            if path.is_dir():
                self.post_message(self.Read(None, f"{text}: is a folder, not a spec file"))
                return
            raw, base = load_spec_file(path)
        except SpecError as exc:
            self.post_message(self.Read(None, "\n".join(f"{text}: {e}" for e in exc.errors)))
            return
        except OSError as exc:
            self.post_message(self.Read(None, f"{text}: {exc.strerror or exc}"))
            return
        self.post_message(self.Read(LoadedSpec(raw, base, text)))

    @on(Read)
    def _was_read(self, message: Read) -> None:
        self.query_one("#spec-file-open", Button).disabled = False
        if message.loaded is None:
            self._show_error(message.error)
            self.query_one("#spec-file-path", Input).focus()
            return
        self.dismiss(message.loaded)

    @on(Button.Pressed, "#spec-file-cancel")
    def action_cancel(self) -> None:
        """Close without opening the wizard."""
        self.dismiss(None)
