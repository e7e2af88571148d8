"""Actions that are not allowed say why.

A screen built with `Explained` names, for each action, why it cannot run now
(`disabled_reason`). Its footer dims what is not allowed; pressing a dimmed key, or
choosing the action in the command palette (which runs it whatever the footer shows),
tells the user why instead of doing nothing.
"""

from __future__ import annotations

from typing import Any, cast

from textual import events
from textual.screen import Screen


class Explained:
    """Mixin for a Screen (put it before `Screen` among the bases)."""

    def disabled_reason(self, action: str) -> str | None:
        """Why `action` cannot run now (None: it can)."""
        raise NotImplementedError

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return None if self.disabled_reason(action) else True

    def on_key(self, event: events.Key) -> None:
        screen = cast(Screen[Any], self)
        for binding in screen._bindings.key_to_bindings.get(event.key, []):
            reason = self.disabled_reason(binding.action)
            if reason:
                event.stop()
                event.prevent_default()
                screen.notify(reason, severity="warning")
                return

    def allowed(self, action: str) -> bool:
        """True when `action` may run; otherwise say why."""
        reason = self.disabled_reason(action)
        if reason:
            cast(Screen[Any], self).notify(reason, severity="warning")
        return reason is None
