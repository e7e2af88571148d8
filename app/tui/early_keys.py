"""Keys typed while a screen is still on its way are kept for it, not lost.

Opening a job reads its versions in a worker before its screen is pushed; keys typed in
that moment (`enter` then `2` for its logs, at typing speed) reached the job list instead,
which has no use for most of them, or the wrong one (`d` would delete the job). The app
holds them while it opens a screen and hands them to the screen once it is on top.
"""

from __future__ import annotations

import time
from typing import Any

from textual import events
from textual.app import App

HOLD_SECONDS = 2.0
"""Keys are held at most this long (a screen that never comes gives them back)."""


class EarlyKeys(App[Any]):
    """An App that can hold the keys typed until the screen being opened is there."""

    _held_since: float | None = None
    _held: list[str]

    def hold_keys(self) -> None:
        """Keep the keys typed from now until `release_keys` (or `HOLD_SECONDS`)."""
        self._held_since = time.monotonic()
        self._held = []
        self.set_timer(HOLD_SECONDS, self._release_if_stale)

    def release_keys(self) -> None:
        """Press the held keys, in order, on whatever screen is on top now."""
        held, self._held_since = getattr(self, "_held", []), None
        self._held = []
        for key in held:
            self.simulate_key(key)

    def _release_if_stale(self) -> None:
        if self._held_since is not None and \
                time.monotonic() - self._held_since >= HOLD_SECONDS - 0.01:
            self.release_keys()

    async def on_event(self, event: events.Event) -> None:
        if (self._held_since is not None and isinstance(event, events.Key)
                and not event.is_forwarded):
            self._held.append(event.key)
            return
        await super().on_event(event)
