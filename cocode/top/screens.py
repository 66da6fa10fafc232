"""The modal screens of `cocode top`: submit a job (issue text and an agent picker),
a run's diff (syntax-highlighted, scrollable), a follow-up message for a run and the
confirmation of what it will do. They only collect input or show
text; the app calls cocode (cocode/top/actions.py) with what they return.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, SelectionList, Static, TextArea

MAX_DIFF_CHARS = 2_000_000  # a bigger diff is cut (the CLI's `cocode diff` prints it all)


class SubmitScreen(ModalScreen[tuple[str, list[str]] | None]):
    """Issue text and agents; dismissed with (text, agents), or None if cancelled."""

    DEFAULT_CSS = """
    SubmitScreen { align: center middle; }
    #submit-box { width: 90%; max-width: 100; height: 90%; max-height: 30; border: thick $accent;
                  background: $surface; padding: 0 1; }
    #issue { height: 1fr; min-height: 3; }
    #agents { height: auto; max-height: 8; }
    #submit-buttons { height: auto; align-horizontal: right; }
    #submit-error { color: $error; height: auto; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+s", "submit", "Submit")]

    def __init__(self, agents: list[str], chosen: list[str]) -> None:
        super().__init__()
        self.agents, self.chosen = agents, chosen

    def compose(self) -> ComposeResult:
        with Vertical(id="submit-box"):
            yield Label("New job: the issue (first line is its title); ctrl+s submits, esc cancels")
            yield TextArea(id="issue")
            yield Label("Agents")
            yield SelectionList[str](*[(a, a, a in self.chosen) for a in self.agents], id="agents")
            yield Static("", id="submit-error")
            with Horizontal(id="submit-buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Submit", variant="primary", id="submit")

    def on_mount(self) -> None:
        self.query_one("#issue", TextArea).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.action_submit() if event.button.id == "submit" else self.action_cancel()

    def action_submit(self) -> None:
        text = self.query_one("#issue", TextArea).text
        agents = list(self.query_one("#agents", SelectionList).selected)
        if not text.strip():
            self.query_one("#submit-error", Static).update("the issue is empty: describe the problem")
            return
        if not agents:
            self.query_one("#submit-error", Static).update("pick at least one agent (space toggles)")
            return
        self.dismiss((text, agents))

    def action_cancel(self) -> None:
        self.dismiss(None)


class DiffScreen(ModalScreen[None]):
    """A run's diff; arrows, PgUp/PgDn, Home/End scroll, esc or q closes."""

    DEFAULT_CSS = """
    DiffScreen { align: center middle; }
    #diff-box { width: 95%; height: 95%; border: thick $accent; background: $surface; }
    """
    BINDINGS = [Binding("escape", "close", "Close"), Binding("q", "close", "Close", show=False)]

    def __init__(self, title: str, text: str) -> None:
        super().__init__()
        self.title_text, self.text = title, text

    def compose(self) -> ComposeResult:
        text = self.text
        if len(text) > MAX_DIFF_CHARS:
            text = text[:MAX_DIFF_CHARS] + f"\n… cut: {len(self.text):,} chars; `cocode diff` prints it all\n"
        from rich.syntax import Syntax  # pygments: loaded when a diff is first shown

        body = Syntax(text, "diff", theme="ansi_dark", word_wrap=False) if text else "(no changes)"
        box = VerticalScroll(Static(body, id="diff-text"), id="diff-box")
        box.border_title = self.title_text
        yield box

    def on_mount(self) -> None:
        self.query_one("#diff-box").focus()

    def action_close(self) -> None:
        self.dismiss(None)


class SayScreen(ModalScreen[str | None]):
    """A follow-up message for one run (`cocode say`); dismissed with it, or None."""

    DEFAULT_CSS = """
    SayScreen, ConfirmScreen { align: center middle; }
    #say-box, #confirm-box { width: 90%; max-width: 100; height: auto; border: thick $accent;
                             background: $surface; padding: 0 1; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, run: str) -> None:
        super().__init__()
        self.run = run

    def compose(self) -> ComposeResult:
        with Vertical(id="say-box"):
            yield Label(f"Say to {self.run} (one more turn for the finished run); Enter, esc cancels")
            yield Input(id="say-text", placeholder="what the agent should do next")

    def on_mount(self) -> None:
        self.query_one("#say-text", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmScreen(ModalScreen[bool]):
    """Exactly what a key will do; y or Enter does it, n or esc does not."""

    BINDINGS = [Binding("y,enter", "answer(True)", "Do it"), Binding("n,escape", "answer(False)", "Cancel")]

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box"):
            yield Static(self.text, id="confirm-text", markup=False)
            yield Label("y / Enter: do it    n / esc: cancel")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
