"""The side panel of the templates screen: one template's spec as coloured YAML."""

from __future__ import annotations

import re
from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.reactive import reactive
from textual.widgets import Static

from app.tui.themes import theme_colour

_KEY_LINE = re.compile(r"^(?P<indent>\s*)(?P<dash>- )?(?P<key>[^\s:#'\"][^:#]*?):(?P<rest>\s.*|)$")
_ITEM_LINE = re.compile(r"^(?P<indent>\s*)- (?P<rest>.*)$")
_NUMBER = re.compile(r"-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


@dataclass(frozen=True)
class TemplateView:
    """What the panel shows of one template."""

    name: str
    description: str
    problem: str
    yaml: str


class TemplateSpec(VerticalScroll):
    """A template's name, description, problem (if any) and its spec as YAML."""

    HELP_GROUP = "Spec panel"

    template: reactive[TemplateView | None] = reactive(None, init=False)
    """The template shown; None shows a hint instead."""

    def compose(self) -> ComposeResult:
        yield Static("", id="template-spec-head", markup=False)
        yield Static("", id="template-spec-body", markup=False)

    def on_mount(self) -> None:
        self.watch_template(self.template)

    def watch_template(self, template: TemplateView | None) -> None:
        head = self.query_one("#template-spec-head", Static)
        body = self.query_one("#template-spec-body", Static)
        if template is None:
            head.update(Text("Select job parameters to see their spec.", style="dim"))
            body.update("")
            return
        title = Text(template.name, style="bold")
        if template.description:
            title.append(f"\n{template.description}", style="italic")
        if template.problem:
            warning = theme_colour(self.app, "warning", "yellow")
            title.append(f"\n⚠ {template.problem}", style=f"bold {warning}")
        head.update(title)
        body.update(self.highlight(template.yaml))
        self.scroll_home(animate=False)

    def refresh_colours(self) -> None:
        """Draw again with the current theme's colours."""
        self.watch_template(self.template)

    def highlight(self, yaml_text: str) -> Text:
        """YAML with keys, numbers, strings and booleans in the theme's colours."""
        key_style = theme_colour(self.app, "primary", "blue")
        boolean_style = theme_colour(self.app, "boolean",
                                     theme_colour(self.app, "accent", "magenta"))
        number_style = theme_colour(self.app, "accent", "yellow")
        styles = {"key": key_style, "bool": boolean_style, "number": number_style}
        out = Text(no_wrap=False, overflow="fold")
        for line in yaml_text.rstrip("\n").splitlines():
            match = _KEY_LINE.match(line)
            if match:
                out.append(match["indent"] + (match["dash"] or ""))
                out.append(match["key"], style=styles["key"])
                out.append(":")
                rest = match["rest"]
                if rest:
                    out.append(" ")
                    out.append_text(_scalar(rest.strip(), styles))
            elif (item := _ITEM_LINE.match(line)) is not None:
                out.append(item["indent"] + "- ")
                out.append_text(_scalar(item["rest"], styles))
            else:
                out.append(line)
            out.append("\n")
        out.rstrip()
        return out


def _scalar(value: str, styles: dict[str, str]) -> Text:
    if value in ("true", "false"):
        return Text(value, style=styles["bool"])
    if _NUMBER.fullmatch(value):
        return Text(value, style=styles["number"])
    return Text(value)
