"""Search within a pane, as the app does it: `/` opens the search line under the
panes, Enter finds the text in the focused pane (else the selected run's), n/N move
between matches. What matches is cocode/top/search.py's (pure); the pane draws them."""

from __future__ import annotations

from textual.binding import Binding
from textual.widgets import Input

from cocode.top import search
from cocode.top.panestate import Pane
from cocode.top.paneview import PaneView


class SearchInput(Input):
    """The search line under the panes: Enter searches, Escape closes it."""

    BINDINGS = [Binding("escape", "close", "Close search", show=False)]

    def action_close(self) -> None:
        self.display = False
        self.app.search_closed()


class PaneSearch:
    """The app's search keys (a mixin of TopApp: it has `widgets` and `selected_run`)."""

    query_text = ""  # the text searched; n/N look for it again in the pane
    searched: Pane | None = None
    search_at: tuple[int, int] | None = None  # (line, start) of the current match
    focus_before = None

    def search_pane(self) -> Pane | None:
        """The pane a search is for: the current one of the focused panes, else the
        selected run's."""
        if isinstance(self.focused, PaneView) and self.focused.current is not None:
            return self.focused.current
        sel = self.selected_run()
        return self.widgets.get(sel[1]) if sel is not None else None

    def action_search(self) -> None:
        pane = self.search_pane()
        if pane is None:
            self.notify("no pane to search: select a run", severity="warning")
            return
        self.searched, self.focus_before = pane, self.focused
        box = self.query_one("#search", SearchInput)
        box.value = self.query_text
        box.display = True
        box.focus()

    def search_closed(self) -> None:
        if self.focus_before is not None and self.focus_before.is_attached:
            self.focus_before.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "search":
            return
        event.input.display = False
        self.search_closed()
        self.query_text, self.search_at = event.value, None
        self.action_search_step(True)

    def action_search_step(self, forward: bool) -> None:
        pane = self.searched if self.searched is not None and self.widgets.get(self.searched.agent) is self.searched else None
        if pane is None or not self.query_text:
            self.notify("nothing searched yet: / searches the pane", severity="warning")
            return
        # Found again each time: lines came and went since the last step.
        matches = search.find(pane.lines, self.query_text, pane.first)
        i = search.after(matches, self.search_at, forward)
        pane.set_matches(matches, i)
        view = self.query_one(PaneView)
        if i < 0:
            self.search_at = None
            self.notify(f"{self.query_text!r} is not in {pane.agent}'s pane", severity="warning")
            view.refresh()
            return
        m = matches[i]
        self.search_at = (m.line, m.start)
        pane.show_line(m.line)
        pane.note = f"/{self.query_text}: {i + 1} of {len(matches)}"
        view.refresh()
