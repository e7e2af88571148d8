"""A TensorBoard that was started for a version: where it is, how to reach it over SSH.

The `ssh -L` line is the point of this dialog: it is drawn as plain, selectable text and
`c` copies it (OSC 52, which reaches the user's own clipboard through SSH in most
terminals). The server binds to 127.0.0.1 only and stops by itself when idle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from app.formatting import format_duration
from app.tui.widgets.footer import KeyFooter

if TYPE_CHECKING:
    from app.context import Context
    from app.tensorboard import TensorBoardInfo


class TensorBoardScreen(ModalScreen[None]):
    """URL, `ssh -L` line and how the server stops; esc closes, x stops it now."""

    CSS_PATH = "tensorboard.tcss"
    BINDINGS = [
        Binding("escape", "close", "Close", id="tensorboard.close"),
        Binding("c", "copy_ssh", "Copy ssh line", id="tensorboard.copy-ssh"),
        Binding("u", "copy_url", "Copy URL", id="tensorboard.copy-url"),
        Binding("x", "stop", "Stop now", id="tensorboard.stop"),
    ]

    class Stopped(Message):
        """The stop worker finished (`error` is empty when it worked)."""

        def __init__(self, error: str = "") -> None:
            super().__init__()
            self.error = error

    def __init__(self, ctx: Context | None, board: TensorBoardInfo) -> None:
        super().__init__()
        self.ctx = ctx
        """For stopping the session (None: stop is not offered, e.g. in previews)."""
        self.board = board

    def compose(self) -> ComposeResult:
        board = self.board
        versions = ", ".join(board.versions)
        with Vertical(id="tensorboard-dialog"):
            yield Label(f"TensorBoard for {board.job} {versions}", id="tensorboard-title")
            yield Static(self._url_text(), id="tensorboard-url")
            yield Label("On your own machine, run this to bring the port through SSH:",
                        classes="tensorboard-label")
            yield Static(board.ssh, id="tensorboard-ssh", markup=False)
            yield Label(f"then open {board.url} in your browser.", classes="tensorboard-label")
            yield Static(self._stop_text(), id="tensorboard-stop")
            with Horizontal(id="tensorboard-buttons"):
                yield Button("Copy ssh line (c)", id="tensorboard-copy", variant="primary")
                yield Button("Stop now (x)", id="tensorboard-stop-button", variant="error")
                yield Button("Close (esc)", id="tensorboard-close")
        yield KeyFooter()

    def _url_text(self) -> Text:
        text = Text("Serving ")
        text.append(self.board.url, style="bold")
        text.append(f"  (session {self.board.id}, bound to 127.0.0.1 only)")
        return text

    def _stop_text(self) -> str:
        idle = format_duration(self.board.idle_timeout)
        return (f"It stops by itself after {idle} without traffic (an open TensorBoard tab "
                f"keeps it alive). Stop it sooner with x here, or from a shell: "
                f"traindeck tensorboard stop {self.board.id}")

    def on_mount(self) -> None:
        self.query_one("#tensorboard-copy", Button).focus()
        if self.ctx is None:
            self.query_one("#tensorboard-stop-button").display = False

    @on(Button.Pressed, "#tensorboard-copy")
    def _copy_pressed(self) -> None:
        self.action_copy_ssh()

    @on(Button.Pressed, "#tensorboard-stop-button")
    def _stop_pressed(self) -> None:
        self.action_stop()

    @on(Button.Pressed, "#tensorboard-close")
    def _close_pressed(self) -> None:
        self.action_close()

    def action_copy_ssh(self) -> None:
        """Copy the `ssh -L` line to the clipboard."""
        self.app.copy_to_clipboard(self.board.ssh)
        self.notify("ssh line copied (through the terminal's clipboard)", timeout=3)

    def action_copy_url(self) -> None:
        """Copy the URL to the clipboard."""
        self.app.copy_to_clipboard(self.board.url)
        self.notify("URL copied", timeout=3)

    def action_stop(self) -> None:
        """Stop this TensorBoard now."""
        if self.ctx is not None:
            self._stop(self.ctx, self.board.id)

    @work(thread=True, exclusive=True, exit_on_error=False, group="tensorboard-stop")
    def _stop(self, ctx: Context, session_id: int) -> None:
        """Stop the watchdog and TensorBoard, and mark the session stopped."""
        from app.errors import TraindeckError
        from app.tensorboard import stop_session

        try:
            stop_session(ctx, session_id)
        except TraindeckError as exc:
            self.post_message(self.Stopped(str(exc)))
            return
        self.post_message(self.Stopped())

    @on(Stopped)
    def _stopped(self, message: Stopped) -> None:
        if message.error:
            self.notify(message.error, title="TensorBoard not stopped", severity="error")
            return
        self.notify(f"Stopped TensorBoard {self.board.id}")
        self.dismiss(None)

    def action_close(self) -> None:
        """Close the dialog (TensorBoard keeps running)."""
        self.dismiss(None)
