"""Redaction of secrets in an agent's output stream, before any byte leaves the worker.

Owns the streaming logic and the compiled patterns (the rules, as data, are in
redact_rules.py; config `redact_patterns` adds to them); pure, no I/O. One
Redactor per output stream (stdout, stderr):

  feed(data)  -> bytes safe to ship now; a bounded tail is held back, so a secret
                 split across two reads is still seen whole by the next feed;
  flush()     -> for an idle stream: releases the held tail except a suffix that
                 looks like the start of a secret (that waits for more data);
  close()     -> end of stream: releases everything, redacted.

Why hold the unterminated line: agents write through block-buffered stdio, so
a read can end anywhere, mid-token included. Secrets (but PEM blocks) never span
a newline, so what precedes the last newline can be judged now. A PEM block
holds from its BEGIN line until its END, up to PEM_MAX bytes; beyond that the
rest of the block is dropped (up to PEM_DISCARD_MAX) rather than shown.
The residual risk, stated: a secret split after its first character, whose rest
arrives after the stream was idle long enough to be flushed, is not caught.
"""

from __future__ import annotations

import re
from typing import Iterable

from cocode.logs.redact_rules import RULES

HOLD = 16 * 1024  # the longest secret caught when split inside a very long line
PEM_MAX = 32 * 1024  # a private key block longer than this is cut off, not shown
PEM_DISCARD_MAX = 1024 * 1024  # an unterminated key block: drop at most this much

_WORD = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")

_PEM_BEGIN = re.compile(rb"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----")
_PEM_END = re.compile(rb"-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----")

# What may be the beginning of a secret whose rest has not arrived: held by flush().
_MARKERS = [m for rule in RULES for m in rule.markers]


def _suspect_tail() -> re.Pattern:
    # A whole marker is held wherever it is (tokens are caught glued to a word);
    # a marker's first few bytes only at a word's start, or the tail would often hold.
    whole = [re.escape(m) + rb"[A-Za-z0-9_\-.]*" for m in _MARKERS]
    parts = sorted({re.escape(m[:i]) for m in _MARKERS for i in range(2, len(m))}, key=len, reverse=True)
    parts.append(rb"(?i:bearer)[ \t]*[A-Za-z0-9\-._~+/=]*")
    parts.append(rb"(?i:aws_?secret_?access_?key|secret_?access_?key)[\"']?\s*[:=]?\s*[\"']?[A-Za-z0-9/+]*")
    parts.append(rb"://[^\s/@]*(?::[^\s@/]*)?")
    return re.compile(rb"(?:" + rb"|".join(whole) + rb")\Z|(?:\b|(?=[-:]))(?:" + rb"|".join(parts) + rb")\Z")


_SUSPECT = _suspect_tail()


class Pattern:
    def __init__(self, label: str, regex: re.Pattern, needles: tuple[bytes, ...] = (),
                 word_start: bool = False) -> None:
        self.label = label
        self.regex = regex
        self.caseless = bool(regex.flags & re.IGNORECASE) or b"(?i" in regex.pattern
        self.needles = needles
        self.word_start = word_start
        self.secret = regex.groupindex.get("secret")
        self.replacement = b"[REDACTED:" + label.encode() + b"]"


def compile_patterns(extra: Iterable[str] = ()) -> list[Pattern]:
    """The built-in patterns, then config's (Python regex syntax, matched on bytes)."""
    pats = [Pattern(r.label, re.compile(r.pattern), r.needles, r.word_start) for r in RULES]
    for i, p in enumerate(extra):
        pats.append(Pattern(f"custom-{i + 1}", re.compile(p.encode("utf-8"))))
    return pats


class Redactor:
    """Streaming redaction of one stream; see the module docstring."""

    def __init__(self, patterns: list[Pattern] | None = None) -> None:
        self.patterns = patterns if patterns is not None else compile_patterns()
        self.held = b""
        self.discarding = 0  # > 0: inside an over-long key block, bytes dropped so far
        self.redactions = 0

    # -- the three calls ---------------------------------------------------------------

    def feed(self, data: bytes) -> bytes:
        buf = self.held + data if self.held else data
        if self.discarding:
            buf = self._skip_pem(buf)
            if self.discarding:
                return b""
        nl = max(buf.rfind(b"\n"), buf.rfind(b"\r")) + 1
        return self._process(buf, max(nl, len(buf) - HOLD), final=False)

    def flush(self) -> bytes:
        """The stream went idle: release what cannot be the start of a secret."""
        if not self.held or self.discarding:
            return b""
        buf = self.held
        m = _SUSPECT.search(buf, max(0, len(buf) - HOLD))
        return self._process(buf, m.start() if m else len(buf), final=False)

    def close(self) -> bytes:
        buf, self.held = self.held, b""
        if self.discarding or not buf:
            return b""
        return self._process(buf, len(buf), final=True)

    @property
    def pending(self) -> int:
        return len(self.held)

    # -- the work ------------------------------------------------------------------------

    def _process(self, buf: bytes, cut: int, final: bool) -> bytes:
        if not final:
            cut = self._hold_open_pem(buf, cut)
            if self.discarding:
                return self._emit_pem_cutoff(buf, cut)
        spans = self._matches(buf)
        out: list[bytes] = []
        pos = 0
        for start, end, s_start, s_end, repl in spans:
            if start >= cut:
                break
            if end == len(buf) and not final:
                cut = start  # a token at the very end may still grow: judge it later
                break
            out.append(buf[pos:s_start])
            out.append(repl)
            pos = s_end
            self.redactions += 1
            if end > cut:
                cut = end
        if cut > pos:
            out.append(buf[pos:cut])
        self.held = buf[cut:] if not final else b""
        return b"".join(out)

    def _matches(self, buf: bytes) -> list[tuple[int, int, int, int, bytes]]:
        """Non-overlapping matches of every pattern, leftmost (then longest) first."""
        found = []
        lowered = None
        for p in self.patterns:
            if p.needles:
                if p.caseless:
                    lowered = buf.lower() if lowered is None else lowered
                    hay = lowered
                else:
                    hay = buf
                for needle in p.needles:
                    if needle in hay:
                        break
                else:
                    continue
            for m in p.regex.finditer(buf):
                start = m.start()
                if m.end() == start or (p.word_start and start and buf[start - 1] in _WORD):
                    continue
                if p.secret is not None and m.start(p.secret) >= 0:
                    s0, s1 = m.span(p.secret)
                else:
                    s0, s1 = m.span()
                found.append((start, m.end(), s0, s1, p.replacement))
        if len(found) < 2:
            return found
        found.sort(key=lambda s: (s[0], -s[1]))
        kept, last_end = [], -1
        for span in found:
            if span[0] >= last_end:
                kept.append(span)
                last_end = span[1]
        return kept

    def _hold_open_pem(self, buf: bytes, cut: int) -> int:
        """A key block that has begun but not ended is held from its BEGIN line."""
        if b"PRIVATE KEY-----" not in buf:
            return cut
        last = None
        for last in _PEM_BEGIN.finditer(buf):
            pass
        if last is None or _PEM_END.search(buf, last.end()):
            return cut
        if len(buf) - last.start() > PEM_MAX:
            self.discarding = 1
            return last.start()
        return min(cut, last.start())

    def _emit_pem_cutoff(self, buf: bytes, begin: int) -> bytes:
        """An over-long open key block: show what precedes it, drop the block."""
        head = self._process_plain(buf[:begin])
        self.held = b""
        self.discarding = len(buf) - begin
        self.redactions += 1
        return head + b"[REDACTED:private-key]"

    def _process_plain(self, buf: bytes) -> bytes:
        saved, self.held = self.held, b""
        try:
            return self._process(buf, len(buf), final=True)
        finally:
            self.held = saved

    def _skip_pem(self, buf: bytes) -> bytes:
        """Drop bytes of a cut-off key block up to its END line (or the discard cap)."""
        m = _PEM_END.search(buf)
        if m:
            self.discarding = 0
            return buf[m.end():]
        keep = 64  # an END line split across reads
        self.discarding += max(0, len(buf) - keep)
        if self.discarding > PEM_DISCARD_MAX:
            self.discarding = 0
            return buf[-keep:]
        self.held = buf[-keep:]
        return b""


def scrub(text: str, patterns: list[Pattern] | None = None) -> str:
    """Redact one complete string (an event's detail line)."""
    r = Redactor(patterns)
    r.held = text.encode("utf-8", "surrogateescape")
    return r.close().decode("utf-8", "replace")
