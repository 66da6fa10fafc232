"""The key footer, recomposed only when the keys it shows change.

Textual's Footer rebuilds all its key widgets (and lays the screen out again) on
every bindings update, and one comes with every focus change: moving between the
jobs table, the runs table and the panes cost 10-16 ms of layout each time
(measured while 5 agents streamed), though the keys shown stay the same.
"""

from __future__ import annotations

from textual.widgets import Footer


class KeyFooter(Footer):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._shown: tuple | None = None  # the keys drawn now: (key, description, enabled)

    def bindings_changed(self, screen) -> None:
        shown = tuple((b.key, b.description, enabled)
                      for _node, b, enabled, _tip in screen.active_bindings.values() if b.show)
        if shown == self._shown and screen is self.screen:
            return
        if screen.app.app_focus and self.is_attached and screen is self.screen:
            self._shown = shown  # Footer redraws only then (an unfocused browser tab waits)
        super().bindings_changed(screen)
