"""The streaming redactor (cocode/redact.py): pure, no processes."""

from __future__ import annotations

import pytest

from cocode.logs import redact, redact_rules
from cocode.logs.redact import Redactor, compile_patterns, scrub

GHP = "ghp_" + "A1b2C3d4E5" * 4  # 44 characters
# Per label: tokens that must be redacted, and look-alikes that must not be.
CORPUS: dict[str, tuple[list[str], list[str]]] = {
    "github-token": ([GHP, "gho_" + "z" * 36, "ghs_" + "Q" * 36, "ghu_" + "9" * 36, "ghr_" + "R" * 36,
                      "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz0123"],
                     ["ghp_short", "ghx_" + "a" * 36]),
    "gitlab-token": (["glpat-" + "x1Y2z3" * 4], ["glpat-short"]),
    "anthropic-key": (["sk-ant-api03-" + "c" * 40, "sk-ant-admin01-" + "Zz09_-" * 6], ["sk-ant-short"]),
    "openai-key": (["sk-" + "a" * 48, "sk-proj-" + "b1-_" * 12, "sk-svcacct-" + "K" * 30],
                   ["sk-short", "risk-assessment-for-the-whole-project"]),
    "slack-token": (["xoxb-123456789012-1234567890123-" + "aB3" * 8, "xoxp-" + "1234567890-" * 3 + "abcd" * 8,
                     "xoxa-2-" + "f" * 20, "xoxe-1-" + "E" * 30, "xapp-1-A0123456789-1234567890-" + "ab" * 20],
                    ["xoxb-123", "xoxz-" + "1" * 20]),
    "slack-webhook": (["hooks.slack.com/services/T00000000/B00000000/" + "X" * 24], ["hooks.slack.com/apps"]),
    "google-api-key": (["AIza" + "SyA1b2C3d4E5f6G7h8I9j0K_L-mNoPqRsTu"], ["AIzaShort"]),
    "npm-token": (["npm_" + "aB3dE6gH9j" * 3 + "kLmNoP"], ["npm_install", "npm_" + "a" * 20]),
    "huggingface-token": (["hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGh"], ["hf_hub_download", "hf_" + "x" * 10]),
    "stripe-key": (["sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc", "rk_test_" + "9" * 24], ["sk_live_"]),
    "jwt": (["eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"],
            ["eyJhbGciOiJIUzI1NiJ9"]),
    "aws-access-key": (["AKIAIOSFODNN7EXAMPLE", "ASIAY34FZKBOKMUTVV7A"], ["AKIA123", "AKIAIOSFODNN7EXAMPLE1234"]),
    "aws-secret-key": (["aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"],
                       ["secret_access_key = short"]),
    "private-key": (["-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA=\n-----END OPENSSH PRIVATE KEY-----"],
                    ["-----BEGIN PUBLIC KEY-----"]),
    "bearer": (["Authorization: Bearer abc.DEF-123_xyz~+/="], ["a bearer of news"]),
    "url-password": (["https://user:ghtoken123@github.com/o/r.git"], ["https://github.com/o/r.git"]),
}
SECRETS = {label: [s for s in pos if "\n" not in s and " " not in s] for label, (pos, _) in CORPUS.items()}
SECRETS = {k: v for k, v in SECRETS.items() if v and k not in ("url-password",)}


def run(chunks, r=None):
    r = r or Redactor()
    return b"".join(r.feed(c) for c in chunks) + r.close()


@pytest.mark.parametrize("label,secret", [(k, s) for k, v in SECRETS.items() for s in v])
def test_each_token_kind_is_replaced(label, secret):
    line = f"before {secret} after\n".encode()
    out = run([line])
    assert secret.encode() not in out
    assert out == f"before [REDACTED:{label}] after\n".encode()


def test_every_rule_has_a_corpus():
    assert set(CORPUS) == set(redact_rules.LABELS)


@pytest.mark.parametrize("label", list(CORPUS))
def test_corpus(label):
    positives, negatives = CORPUS[label]
    for token in positives:
        for text in (f"x {token} y\n", f"{token}\n", f"said:{token}.\n"):
            out = run([text.encode()])
            assert f"[REDACTED:{label}]".encode() in out, (token, out)
            secret_part = token.split("= ")[-1].split("Bearer ")[-1].split(":")[-1].split("@")[0]
            assert secret_part.encode() not in out, (token, out)
    for text in negatives:
        assert run([f"x {text} y\n".encode()]) == f"x {text} y\n".encode(), text


@pytest.mark.parametrize("glued", ["_" + GHP, "token" + GHP, "KEY=xoxb-" + "1" * 12 + "-abcdefABCDEF",
                                   "xAIza" + "B" * 35, "my_npm_" + "c" * 36, "TOK_hf_" + "D" * 34,
                                   "_sk-ant-api03-" + "e" * 30])
def test_a_distinctive_token_glued_to_a_word_is_redacted(glued):
    out = run([f"line {glued} end\n".encode()])
    assert b"[REDACTED:" in out and glued[-12:].encode() not in out, out


def test_a_glued_token_split_across_an_idle_flush_is_held():
    r = Redactor()
    head = r.feed(b"value=_ghp_") + r.flush()
    assert head == b"value=_"
    rest = r.feed(GHP[4:].encode() + b"\n") + r.close()
    assert GHP[4:].encode() not in head + rest and b"[REDACTED:github-token]" in head + rest


def test_context_patterns_keep_their_context():
    text = (b"Authorization: Bearer abc.DEF-123_xyz~+/=\n"
            b"aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n"
            b"DATABASE_URL=postgres://app:s3cr3t-pw@db.internal:5432/app\n"
            b"git remote: https://user:ghtoken123@github.com/o/r.git\n")
    out = run([text])
    for s in (b"abc.DEF-123_xyz", b"wJalrXUtnFEMI", b"s3cr3t-pw", b"ghtoken123"):
        assert s not in out
    assert b"Authorization: Bearer [REDACTED:bearer]\n" in out
    assert b"aws_secret_access_key = [REDACTED:aws-secret-key]\n" in out
    assert b"postgres://app:[REDACTED:url-password]@db.internal:5432/app" in out


def test_private_key_block_across_many_chunks():
    key = b"-----BEGIN RSA PRIVATE KEY-----\n" + b"MIIEowIBAAKCAQEA7\n" * 60 + b"-----END RSA PRIVATE KEY-----\n"
    text = b"key follows\n" + key + b"done\n"
    out = run([text[i : i + 100] for i in range(0, len(text), 100)])
    assert out == b"key follows\n[REDACTED:private-key]\ndone\n"


def test_unterminated_overlong_private_key_is_dropped_not_shown():
    r = Redactor()
    head = r.feed(b"ok\n-----BEGIN PRIVATE KEY-----\n")
    body = b"".join(r.feed(b"QUJD" * 1024 + b"\n") for _ in range(20))  # 80 KB, no END
    rest = r.feed(b"-----END PRIVATE KEY-----\nvisible again\n") + r.close()
    out = head + body + rest
    assert b"QUJD" not in out
    assert out.startswith(b"ok\n") and b"[REDACTED:private-key]" in out and out.endswith(b"visible again\n")


def test_harmless_text_is_untouched():
    text = (b"task-list sk- gh ghp_short Bearer\n"
            b"commit 3f2a9c1e0b7d4a6f8e2c1b0a9f8e7d6c5b4a3f2e\n"
            b"https://example.com/path?q=1 and a secret word\n"
            b"\xff\xfe invalid utf-8 \x00 NUL \r progress\n")
    assert run([text]) == text
    assert run([text[i : i + 3] for i in range(0, len(text), 3)]) == text


def test_a_secret_split_at_every_position_is_caught():
    line = f"token={GHP} and Bearer abcdefghijklmnop end\n".encode()
    whole = run([line])
    for i in range(1, len(line)):
        assert run([line[:i], line[i:]]) == whole, i


def test_split_with_an_idle_flush_between_parts():
    # The shipper flushes a quiet stream; the start of a token waits for the rest.
    for cut in (2, 3, 4, 10, 30):
        r = Redactor()
        out = r.feed(b"printing " + GHP[:cut].encode())
        out += r.flush()
        out += r.feed(GHP[cut:].encode() + b" ok\n") + r.close()
        assert GHP.encode() not in out and out == b"printing [REDACTED:github-token] ok\n", cut


def test_idle_flush_releases_ordinary_partial_lines():
    r = Redactor()
    assert r.feed(b"Continue? [y/N] ") == b""  # held: no newline yet
    assert r.flush() == b"Continue? [y/N] "
    assert r.pending == 0


def test_long_line_without_newline_is_held_only_boundedly():
    r = Redactor()
    out = b""
    for _ in range(256):
        out += r.feed(b"X" * 4096)
        assert r.pending <= redact.HOLD
    out += r.close()
    assert out == b"X" * (256 * 4096)


def test_progress_bars_and_carriage_returns_pass_through():
    text = b"10%\r20%\r" + GHP.encode() + b"\r100%\n"
    out = run([text[i : i + 5] for i in range(0, len(text), 5)])
    assert out == b"10%\r20%\r[REDACTED:github-token]\r100%\n"


def test_config_patterns_whole_match_and_secret_group():
    pats = compile_patterns([r"ACME-[0-9]{6}", r"(?i)password=(?P<secret>\S+)"])
    text = b"id ACME-123456 and PASSWORD=hunter2 here\n"
    out = run([text[:8], text[8:20], text[20:]], Redactor(pats))
    assert out == b"id [REDACTED:custom-1] and PASSWORD=[REDACTED:custom-2] here\n"


def test_scrub_a_string():
    assert scrub(f"failed: {GHP}") == "failed: [REDACTED:github-token]"
    assert scrub("plain") == "plain"


def test_concatenated_output_equals_whole_redaction_for_any_chunking():
    text = (b"a line\n" + f"x {GHP} y\n".encode() + b"sk-" + b"k" * 30 + b"\n" + b"tail without newline") * 20
    whole = run([text])
    for size in (1, 7, 64, 4096):
        assert run([text[i : i + size] for i in range(0, len(text), size)]) == whole
