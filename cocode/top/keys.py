"""The keys of `cocode top` that act on cocode (a mixin of TopApp): submit, cancel,
diff, say, pick, copy or open a worktree. Each asks cocode/top/actions.py, which
makes the same calls as the CLI command; blocking calls run in a worker thread.

The modal screens (cocode/top/screens.py: TextArea, SelectionList, rich's Syntax
and pygments) are imported when a key first opens one, not at start: the view a
person keeps open all day does not carry them.
"""

from __future__ import annotations

from cocode.errors import CocodeError
from cocode.top import actions


class KeyActions:
    """Needs the app's `paths`, `config`, `job`, `run_rows` and `selected_run()`."""

    def _do(self, fn, *args, then=None) -> None:
        """Run a blocking call to cocode off the UI thread; say what came of it."""
        def work() -> None:
            try:
                result = fn(*args)
            except CocodeError as err:
                self.call_from_thread(self.notify, err.message, severity="error", timeout=8)
                return
            if then is not None:
                self.call_from_thread(then, result)
        self.run_worker(work, thread=True, exit_on_error=False)

    def action_submit(self) -> None:
        names = actions.agent_names(self.config)
        chosen = list(self.config.default_agents) if self.config is not None else names[:1]

        def done(result) -> None:
            if result:
                text, agents = result
                self._do(actions.submit, self.paths, self.config, text, agents,
                         then=lambda out: self.notify("\n".join([f"job {out[0]} queued ({', '.join(agents)})", *out[1]]),
                                                      severity="warning" if out[1] else "information"))
        self.push_screen(screens().SubmitScreen(names, chosen), done)

    def action_cancel_run(self) -> None:
        sel = self.selected_run()
        if sel is None:
            self.notify("no run selected", severity="warning")
            return
        self._do(actions.cancel, self.paths, sel[0], sel[1], then=self.notify)

    def action_cancel_job(self) -> None:
        if self.job is None:
            self.notify("no job selected", severity="warning")
            return
        self._do(actions.cancel, self.paths, self.job, None, then=self.notify)

    def action_diff(self) -> None:
        sel = self.selected_run()
        if sel is None:
            self.notify("no run selected", severity="warning")
            return
        self._do(actions.diff, self.paths, *sel,
                 then=lambda text: self.push_screen(screens().DiffScreen(f"diff {sel[0]}/{sel[1]}", text)))

    def action_say(self) -> None:
        """`cocode say` for the selected run: a message, then exactly what will happen."""
        sel = self.selected_run()
        if sel is None:
            self.notify("no run selected", severity="warning")
            return

        def confirm(plan) -> None:
            event, text = plan
            self.push_screen(screens().ConfirmScreen(text), lambda yes: yes and self._do(
                actions.say, self.paths, event, then=self.notify))

        def written(message) -> None:
            if message is not None:
                self._do(actions.say_plan, self.paths, self.config, *sel, message, then=confirm)
        self.push_screen(screens().SayScreen(f"{sel[0]}/{sel[1]}"), written)

    def action_pick(self) -> None:
        """`cocode pick` for the selected run: exactly what it would do, then y does it."""
        sel = self.selected_run()
        if sel is None:
            self.notify("no run selected", severity="warning")
            return

        def confirm(plan) -> None:
            p, text = plan
            self.push_screen(screens().ConfirmScreen(text), lambda yes: yes and self._do(
                actions.pick, self.paths, self.config, p, then=self.notify))
        self._do(actions.pick_plan, self.paths, self.config, *sel, then=confirm)

    def worktree(self) -> str | None:
        sel = self.selected_run()
        path = ""
        if sel is not None:
            path = next((r.worktree for r in self.run_rows if r.agent == sel[1]), "")
        if not path:
            self.notify("this run has no worktree (not started yet, or cleaned)", severity="warning")
            return None
        return path

    def action_copy_path(self) -> None:
        if path := self.worktree():
            self.copy_to_clipboard(path)
            self.notify(f"copied {path}")

    def action_open_path(self) -> None:
        if path := self.worktree():
            try:
                with self.suspend():
                    actions.open_in_editor(path)
            except CocodeError as err:
                self.notify(err.message, severity="error")
            except Exception as err:  # no terminal to suspend (the browser): say so
                self.notify(f"cannot open an editor here ({err}); `y` copies {path}", severity="error")



def screens():
    from cocode.top import screens as mod

    return mod
