"""The secrets cocode redacts, as data: one Rule per kind of token.

The facts (prefixes, alphabets, lengths) follow the vendors' documented formats
and gitleaks' rule set. cocode/logs/redact.py compiles these and owns the
streaming; tests/unit/test_redact.py holds a corpus per label (each label must
have one). Adding a kind is adding a row here and its corpus there.

Speed (a worker redacts every byte an agent writes): each pattern starts with a
literal, so re's prefix search scans ~1 GB/s; a leading \\b would make it 10-90
MB/s. Where a prefix is common inside words (`sk-` in `risk-…`, `eyJ`), the
match must instead not follow a word character (`word_start`, checked per
match). A distinctive prefix (`ghp_`, `xoxb-`, `AIza`) is caught glued to a word
too (`_ghp_…`, `tokenAIza…`). A rule runs only when one of its `needles` is
in the chunk (lower-cased for a caseless pattern, which cannot use the prefix
search): `in` is a C memmem, several times faster than re's prefix search, so
rare prefixes cost next to nothing.
A group named `secret` means: replace only that part and keep the context.
"""

from __future__ import annotations

from typing import NamedTuple


class Rule(NamedTuple):
    label: str
    pattern: bytes
    needles: tuple[bytes, ...] = ()  # literals one of which must be in the chunk (lower-case if caseless)
    word_start: bool = False  # the match must not follow a word character
    markers: tuple[bytes, ...] = ()  # a stream ending in one of these may be a token's start


_TOKEN = rb"[A-Za-z0-9_\-]"

RULES: tuple[Rule, ...] = (
    Rule("github-token", rb"gh[pousr]_[A-Za-z0-9]{30,255}",
         needles=(b"gh",), markers=(b"ghp_", b"gho_", b"ghs_", b"ghu_", b"ghr_")),
    Rule("github-token", rb"github_pat_[A-Za-z0-9_]{22,255}", needles=(b"github_pat_",), markers=(b"github_pat_",)),
    Rule("gitlab-token", rb"gl(?:pat|ptt|dt|rt)-[A-Za-z0-9_\-]{20,255}", needles=(b"gl",), markers=(b"glpat-",)),
    # Before the generic `sk-` rule: for the same span the first label wins.
    Rule("anthropic-key", rb"sk-ant-" + _TOKEN + rb"{20,}", needles=(b"sk-ant-",), markers=(b"sk-ant-",)),
    Rule("openai-key", rb"sk-(?:proj-|svcacct-|admin-)?" + _TOKEN + rb"{20,}", word_start=True,
         needles=(b"sk-",), markers=(b"sk-",)),
    Rule("slack-token", rb"xox[abeoprs]-[A-Za-z0-9\-]{10,255}", needles=(b"xox",), markers=(b"xox",)),
    Rule("slack-token", rb"xapp-[0-9]-[A-Za-z0-9\-]{10,255}", needles=(b"xapp-",), markers=(b"xapp-",)),
    Rule("slack-webhook", rb"hooks\.slack\.com/(?:services|workflows)/[A-Za-z0-9+/]{20,}",
         needles=(b"hooks.slack.com/",), markers=(b"hooks.slack.com/",)),
    Rule("google-api-key", rb"AIza[0-9A-Za-z_\-]{35}", needles=(b"AIza",), markers=(b"AIza",)),
    Rule("npm-token", rb"npm_[A-Za-z0-9]{36}", needles=(b"npm_",), markers=(b"npm_",)),
    Rule("huggingface-token", rb"hf_[A-Za-z0-9]{30,64}", needles=(b"hf_",), markers=(b"hf_",)),
    # Two rules, not `[sr]k_`: a pattern without a literal start is scanned ~10x slower.
    Rule("stripe-key", rb"sk_(?:live|test)_[A-Za-z0-9]{16,255}", needles=(b"sk_live_", b"sk_test_"), markers=(b"sk_live_", b"sk_test_")),
    Rule("stripe-key", rb"rk_(?:live|test)_[A-Za-z0-9]{16,255}", needles=(b"rk_live_", b"rk_test_"), markers=(b"rk_live_", b"rk_test_")),
    Rule("jwt", rb"eyJ" + _TOKEN + rb"{10,}\." + _TOKEN + rb"{5,}\." + _TOKEN + rb"{5,}", word_start=True,
         needles=(b"eyJ",), markers=(b"eyJ",)),
    Rule("aws-access-key", rb"A(?:KIA|SIA|GPA|IDA|ROA|NPA|NVA|IPA)[A-Z0-9]{16}(?![A-Za-z0-9])",
         word_start=True, markers=(b"AKIA", b"ASIA")),
    Rule("aws-secret-key",
         rb"(?i:secret_?access_?key)[\"']?\s*[:=]\s*[\"']?(?P<secret>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])",
         needles=(b"secret",)),
    Rule("private-key",
         rb"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----",
         markers=(b"-----BEGIN",)),
    Rule("bearer", rb"(?i:bearer)[ \t]+(?P<secret>[A-Za-z0-9\-._~+/]{8,}=*)", needles=(b"bearer",),
         word_start=True),
    # Any URL's password, not only databases': git remotes carry tokens the same way.
    Rule("url-password", rb"://[^\s:/@]*:(?P<secret>[^\s@/]+)@"),
)

LABELS = tuple(dict.fromkeys(r.label for r in RULES))
