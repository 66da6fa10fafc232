"""Events of the log that this cocode cannot read, counted and said once.

A row another cocode version wrote (an event type this one does not know, a field
renamed since) does not decode; the readers (eventlog, archive, the follower)
skip it so the rest of the log still folds. Skipped silently, `cocode status` and
`cocode top` would show partial state as if it were whole, so every reader that
skips counts here, beside the fold (which never sees the row and stays pure), and
the caller says `message()` once: on stderr (the CLI), in the header (`cocode top`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cocode import __version__


@dataclass
class Unreadable:
    count: int = 0
    first_seq: int = 0  # 0: unknown (a frame from the store, a row of the archive)
    types: dict[str, int] = field(default_factory=dict)  # the row's own `type` column, where known
    written_by: str = ""  # the cocode version whose services ran when the first was written

    def __bool__(self) -> bool:
        return self.count > 0

    def note(self, seq: int = 0, kind: str = "") -> None:
        self.count += 1
        if seq and not self.first_seq:
            self.first_seq = seq
        if kind:
            self.types[kind] = self.types.get(kind, 0) + 1

    def message(self) -> str:
        """One line: how many, which, who wrote them, what it means and what to do."""
        if not self.count:
            return ""
        kinds = ", ".join(f"{k} x{n}" if n > 1 else k for k, n in sorted(self.types.items()))
        where = "; ".join(filter(None, [kinds, f"first at seq {self.first_seq}" if self.first_seq else ""]))
        if not self.written_by:
            by = "another cocode version"
        else:  # a development build keeps its version number across format changes
            by = f"{'another build of ' if self.written_by == __version__ else ''}cocode {self.written_by}"
        return (f"{self.count} event{'s' if self.count != 1 else ''} of the log could not be read"
                f"{f' ({where})' if where else ''}: written by {by}, this is cocode {__version__}, so jobs "
                f"they touch are missing or incomplete here; read them with the version that wrote them "
                f"(`cocode doctor` lists them)")
