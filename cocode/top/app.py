"""`cocode top`: the Textual app. Widgets and keys only: what to show comes from
cocode/top/model.py (a pure fold), what to read from cocode/top/feed.py (a thread
that hands over batches), what a key does to cocode from cocode/top/actions.py.

One batch from the feed is one repaint: tables change only when events came,
panes append only the lines they have not shown yet.
"""

from __future__ import annotations

import gc
import time
from functools import partial
from pathlib import Path
from typing import Callable, Iterable

from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal
from textual.css.query import NoMatches
from textual.message import Message
from textual.widgets import Static

from cocode import osutil
from cocode.paths import Paths
from cocode.top import model as vm
from cocode.top.feed import Batch, Feed
from cocode.top.footer import KeyFooter
from cocode.top.keys import KeyActions
from cocode.top.pane_search import PaneSearch, SearchInput
from cocode.top.panes import PaneLog
from cocode.top.panestate import Pane
from cocode.top.paneview import PaneView
from cocode.top.table import RowTable

MAX_SIDE_BY_SIDE = 4  # more agents than this: one tab each
NARROW_BELOW = 120  # columns: fewer, and the tables are stacked, not side by side


class TopApp(KeyActions, PaneSearch, App):
    TITLE = "cocode top"
    CSS = """
    #status { height: 1; background: $boost; padding: 0 1; }
    #status.down { background: $error; color: $text; }
    #warnings { height: auto; max-height: 3; color: $warning; padding: 0 1; }
    #tables { height: auto; max-height: 45%; min-height: 4; }
    #jobs { width: 2fr; height: auto; max-height: 100%; }
    #runs { width: 3fr; height: auto; max-height: 100%; }
    #panes { height: 1fr; }
    /* Narrow: side by side, the jobs table showed no title and the runs table not their diff. */
    Screen.-narrow #tables { layout: vertical; max-height: 50%; }
    Screen.-narrow #jobs { width: 100%; max-height: 50%; }
    Screen.-narrow #runs { width: 100%; }
    #search { dock: bottom; height: 3; display: none; }
    """
    # The footer shows these in this order and a narrow terminal cuts its end: at 80
    # columns everything up to Quit fits beside the palette's key; all are in the palette.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (NARROW_BELOW, "-wide")]
    BINDINGS = [
        Binding("s", "submit", "Submit"),
        Binding("c", "cancel_run", "Cancel run"),
        Binding("d", "diff", "Diff"),
        Binding("m", "say", "Say"),
        Binding("p", "pick", "Pick"),
        Binding("slash", "search", "Search"),
        Binding("q", "quit", "Quit"),
        Binding("C", "cancel_job", "Cancel job"),
        Binding("y", "copy_path", "Copy path"),
        Binding("o", "open_path", "Open in $EDITOR"),
        Binding("n", "search_step(True)", "Next match", show=False),
        Binding("N", "search_step(False)", "Previous match", show=False),
    ]

    def __init__(self, paths: Paths, config=None, keep_lines: int = 2000,
                 feed_factory: Callable = Feed, wall: Callable[[], float] = time.time,
                 mono: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.wall, self.mono = wall, mono  # clocks (fixed ones make snapshots repeatable)
        self.paths, self.config, self.keep = paths, config, keep_lines
        self.model = vm.Model()
        if config is not None:
            self.model.rank_by = list(config.rank_by)
        osutil.limit_arenas()  # before the feed's threads (its own and 0MQ's) allocate
        self.feed = feed_factory(paths, self._from_feed, keep_lines)
        self.job: str | None = None
        self.agents: list[str] = []
        self.panes: dict[str, PaneLog] = {}
        self.widgets: dict[str, Pane] = {}  # what each agent's pane shows (drawn by PaneView)
        self.hidden: set[str] = set()  # agents whose tab is not shown
        self.tab_labels: dict[str, str] = {}  # the label each tab shows (unread lines while hidden)
        self.job_rows: list = []
        self.run_rows: list = []
        self.batches = 0
        self.shown_header = None
        self.screenshot_to: tuple[Path, float] | None = None  # (file, after seconds): `--screenshot`
        self.on_visible: Callable[[list], None] | None = None  # the bench's probe: chunks, once painted
        self.unpainted: list = []  # chunks applied, not yet on the screen

    # -- layout ---------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static("connecting…", id="status")
        yield Static("", id="warnings")
        with Horizontal(id="tables"):
            yield RowTable(*vm.JOB_COLUMNS, id="jobs", zebra_stripes=True)
            yield RowTable(*vm.RUN_COLUMNS, id="runs")
        yield PaneView(MAX_SIDE_BY_SIDE, id="panes")
        yield SearchInput(placeholder="search the pane: Enter finds, n/N move, Escape closes", id="search")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.sub_title = str(self.paths.root)
        self.query_one("#jobs", RowTable).focus()
        self.set_interval(1.0, self.refresh_clock)
        if self.screenshot_to is not None:
            path, after = self.screenshot_to
            self.set_timer(after, lambda: (self.save_screenshot(path.name, str(path.parent)), self.exit()))
        self.feed.start()

    def on_unmount(self) -> None:
        self.feed.stop()

    # -- the feed's batches -----------------------------------------------------------------------

    class FeedBatch(Message):
        def __init__(self, batch: Batch) -> None:
            super().__init__()
            self.batch = batch

    def _from_feed(self, batch: Batch) -> None:
        """Called in the feed's thread. A message, not call_from_thread: that one looks up
        its callback's signature for every call (3.5% of the app thread while streaming,
        profiled). Back-pressure is the feed's: no batch before the last one is painted."""
        self.post_message(self.FeedBatch(batch))

    def on_top_app_feed_batch(self, message: FeedBatch) -> None:
        try:
            self.apply(message.batch)
        except NoMatches:
            pass  # the app is closing (its screen's widgets already gone)

    def apply(self, b: Batch) -> None:
        self.batches += 1
        m = self.model
        if b.state is not None:
            m.state = b.state
        for e in b.events:
            m.apply(e)
        m.apply_stats(b.stats)
        for topic, sample in b.metrics:
            m.apply_metric(topic, sample)
        if b.beat:
            m.beat(b.beat)
        if b.started is not None:
            m.link.started = b.started
        if b.error is not None:
            m.link.error = b.error
        m.dropped += b.dropped
        shown = []
        for c in b.chunks:
            pane = self.panes.get(c.agent)
            if pane is None or c.job != self.job:
                continue
            if c.agent in self.hidden:
                # A hidden tab holds no lines, only a count: its backlog comes again when shown.
                pane.unseen += c.n if c.kind in ("count", "lines") else c.data.count(b"\n")
                continue
            if c.kind == "reset":
                pane.reset()
            elif c.kind == "notice":
                pane.notice(c.text)
            elif c.kind == "lines":
                pane.add(c.lines, c.n, c.text)
                shown.append(c)
            elif c.kind == "data":
                pane.feed(c.data)
                shown.append(c)
        if b.state is not None or b.events or b.stats:
            self.refresh_tables()
        if b.metrics and self.job:
            self.refresh_runs()  # one row redrawn per run whose cpu/mem changed (top/table.py)
        if b.state is not None and not gc.get_freeze_count():
            # The app is built and the jobs shown: what exists now lives as long as the
            # view. Frozen, a full collection no longer walks it: measured, gen-2 pauses
            # of 35-55 ms (the key and paint p99s) became 6-11 ms.
            self.call_after_refresh(gc.freeze)
        self.refresh_header()
        self.sync_panes()
        self.unpainted += shown
        # A bound method with no arguments: Textual caches its signature (a lambda or
        # arguments are inspected again for every call).
        self.call_after_refresh(self._painted)

    def _painted(self) -> None:
        self.feed.on_painted()
        shown, self.unpainted = self.unpainted, []
        if shown and self.on_visible is not None:
            self.on_visible(shown)

    # -- tables ----------------------------------------------------------------------------------

    def refresh_clock(self) -> None:
        if not self.screen.query("#jobs"):
            return  # the app is closing (its screen's widgets are gone): a late tick
        self.refresh_tables()
        self.refresh_header()
        self.refresh_tab_labels()

    def refresh_tab_labels(self) -> None:
        """A hidden tab's label counts the lines it has not shown (once a second)."""
        view = self.query_one(PaneView)
        for a, pane in self.panes.items():
            view.set_label(a, f"{a} ({pane.unseen:,} new)" if a in self.hidden and pane.unseen else a)
        self.tab_labels = dict(view.labels)

    def sync_panes(self) -> None:
        """The panes take their new lines; the view redraws once if a shown one changed."""
        changed = [w for w in self.widgets.values() if w.sync()]
        if changed:
            self.query_one(PaneView).changed(changed)

    def refresh_header(self) -> None:
        h = vm.header(self.model, self.mono(), str(self.paths.root), self.wall())
        if h == self.shown_header:
            return  # an unchanged Static is not repainted
        old, self.shown_header = self.shown_header, h
        status = self.query_one("#status", Static)
        status.update(h.text, layout=False)  # one row always: a new text lays nothing out
        status.set_class(not h.up, "down")
        if old is None or old.warnings != h.warnings:  # their height can change: a layout
            warnings = self.query_one("#warnings", Static)
            warnings.update("\n".join(f"⚠ {w}" for w in h.warnings))
            warnings.display = bool(h.warnings)

    def refresh_tables(self) -> None:
        rows = vm.job_rows(self.model, self.wall())
        if rows != self.job_rows:
            self.job_rows = rows
            self.query_one("#jobs", RowTable).set_rows([(r.job, vm.job_cells(r)) for r in rows])
            if self.job is None and rows:
                self.select_job(rows[0].job)
        self.refresh_runs()

    def refresh_runs(self) -> None:
        rows = vm.run_rows(self.model, self.job, self.wall())
        if rows == self.run_rows:
            return
        self.run_rows = rows
        self.query_one("#runs", RowTable).set_rows([(r.agent, vm.run_cells(r)) for r in rows])
        job = self.model.state.jobs.get(self.job or "")
        if job is not None:
            for a, pane in self.panes.items():
                if job.runs[a].final and pane.partial:
                    pane.flush()
                    self.sync_panes()

    def on_row_table_row_highlighted(self, event: RowTable.RowHighlighted) -> None:
        if event.table.id != "jobs":
            return
        # The row the cursor is on now, not the event's: the rows may have been set
        # again (the cursor kept on its job) since the message was posted.
        key = event.table.cursor_key
        if key and key != self.job:
            self.select_job(key)

    def select_job(self, job_id: str) -> None:
        job = self.model.state.jobs.get(job_id)
        if job is None:
            return
        self.job, self.agents = job_id, list(job.agents)
        self.panes = {a: PaneLog(self.keep) for a in self.agents}
        self.build_panes()
        self.run_rows = []
        self.refresh_runs()
        self.feed.watch(job_id, self.agents, [a for a in self.agents if a not in self.hidden])

    def build_panes(self) -> None:
        self.widgets = {a: Pane(a, p, self.keep) for a, p in self.panes.items()}
        view = self.query_one(PaneView)
        view.set_panes(list(self.widgets.values()))
        self.hidden = set(self.agents[1:]) if view.tabs else set()
        self.tab_labels = dict(view.labels)

    def on_pane_view_tab_changed(self, event: PaneView.TabChanged) -> None:
        """Only the shown tab holds lines: the one left is emptied, the one shown asks
        the collector for its backlog (a reset, then the last tui_log_lines lines)."""
        shown = event.agent
        if self.job is None or shown not in self.widgets:
            return  # a tab of panes already replaced
        for a, w in self.widgets.items():
            if a != shown and a not in self.hidden:
                self.hidden.add(a)
                log = self.panes[a]
                log.reset()
                log.unseen = 0
                w.sync()
        if shown in self.hidden:
            self.hidden.discard(shown)
            self.feed.show(self.job, [shown])
        self.refresh_tab_labels()

    # -- actions ---------------------------------------------------------------------------------

    def selected_run(self) -> tuple[str, str] | None:
        runs = self.query_one("#runs", RowTable)
        if self.job is None or not self.run_rows:
            return None
        row = min(max(runs.cursor_row, 0), len(self.run_rows) - 1)
        return self.job, self.run_rows[row].agent

    def get_system_commands(self, screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for b in self.BINDINGS:
            if b.action != "quit":  # Textual's own commands have Quit
                yield SystemCommand(b.description, f"key {b.key}", partial(self.run_action, b.action))
