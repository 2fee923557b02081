"""The To/Cc rewrite on a real-world MIME corpus: only the address fields ever change."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sendguard.actions.rewrite import apply_verdict
from sendguard.model import Action, Envelope, Organisation, Verdict
from tests.conftest import CORPUS

MESSAGES = sorted(
    p for p in CORPUS.rglob("*") if p.is_file() and p.name not in {"LICENSE", "SOURCE"}
)
ORG = Organisation(internal_domains=frozenset({"example.co.jp"}))
REWRITE = Verdict(action=Action.REWRITE, rule_id="r", rewrite="undisclosed")
# A field with obsolete space before the colon; continuation lines start with white space,
# and a stray line without a colon counts with the field above it.
ADDRESS_FIELDS = re.compile(
    rb"^(?:resent-)?(?:to|cc|bcc)[ \t]*:[^\n]*\n(?:(?:[ \t][^\n]*|[^\n:\r][^\n:]*)\n)*", re.I | re.M
)


def _header(data: bytes) -> bytes:
    end = data.find(b"\r\n\r\n")
    return data if end < 0 else data[: end + 2]


def test_corpus_is_present() -> None:
    """The vendored corpus is there (otherwise the parametrised test would silently shrink)."""
    assert len(MESSAGES) > 50


@pytest.mark.parametrize("path", MESSAGES, ids=lambda p: p.relative_to(CORPUS).as_posix())
def test_rewrite_changes_only_address_fields(path: Path) -> None:
    """Outside To/Cc/Bcc (and their Resent- forms) every byte is kept; no outside address is
    left in those fields."""
    data = re.sub(rb"(?<!\r)\n", b"\r\n", path.read_bytes())
    env = Envelope("tanaka@example.co.jp", ("someone@client.example",))
    [out] = apply_verdict(data, REWRITE, env, ORG)
    rewritten = out.data
    if rewritten.startswith(b"X-Sendguard-Rewritten: "):
        rewritten = rewritten.split(b"\r\n", 1)[1]
    assert ADDRESS_FIELDS.sub(b"", _header(rewritten)) == ADDRESS_FIELDS.sub(b"", _header(data))
    assert rewritten[len(_header(rewritten)) :] == data[len(_header(data)) :]
    for match in ADDRESS_FIELDS.finditer(_header(rewritten)):
        assert b"@" not in match.group(), match.group()
    assert out.rcpt_tos == env.rcpt_tos
