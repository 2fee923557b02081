"""The correspondent history through a real relay: a bootstrap import makes tanaka-shoji.co.jp
a learned lookalike target, a first contact is acted on by a rule, delivered mail is learned,
`history forget` removes an address, and `policy replay` shows a rule's effect on that traffic."""

from __future__ import annotations

import asyncio
import re
import smtplib
from pathlib import Path

import pytest

from sendguard.cli.main import main as cli
from sendguard.correspondence import Recipient
from sendguard.history.store import HistoryStore
from tests.support.attachments import build_message
from tests.support.relay import running_relay, write_policy
from tests.support.upstream import RecordingUpstream

POLICY = """\
[organisation]
internal_domains = ["example.co.jp"]

[detectors.unresolvable-domain]
enabled = false

[detectors.first-contact]
min_sender_history = 1

[[rule]]
id = "hold-lookalike-domain"
description = "lookalike recipient domain"
action = "hold"
reviewers = ["security@example.co.jp"]
when.any = [{ detector = "lookalike-domain" }]

[[rule]]
id = "delay-first-contact"
description = "a domain nobody here has written to"
action = "delay"
delay_minutes = 5
when.any = [{ detector = "first-contact", code = "new-domain" }]
"""

REPLAY_POLICY = """\
[organisation]
internal_domains = ["example.co.jp"]

[[rule]]
id = "hold-any-external"
description = "hold everything going outside"
action = "hold"
recipients = "any-external"
reviewers = ["security@example.co.jp"]
"""

SENDER = "yamada@example.co.jp"
KNOWN = "tanaka@tanaka-shoji.co.jp"


def _send(port: int, rcpt: str) -> tuple[int, str]:
    data = build_message(from_=("山田", SENDER), to=[("田中", rcpt)], subject="お見積り")
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
        client.ehlo()
        client.mail(SENDER)
        client.rcpt(rcpt)
        code, text = client.data(data)
        return code, text.decode()


async def _written(store: HistoryStore, rcpt: str, want: int) -> int:
    """How often the store says SENDER wrote to `rcpt`, waiting briefly for the background."""
    domain = rcpt.partition("@")[2]
    got = 0
    for _ in range(150):
        snap = await store.snapshot(SENDER, [Recipient(rcpt, domain)])
        got = snap.written.get(rcpt, 0)
        if got == want:
            break
        await asyncio.sleep(0.1)
    return got


@pytest.mark.timeout(240)
async def test_learned_lookalike_first_contact_forget_and_replay(
    upstream: RecordingUpstream, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy_dir = write_policy(tmp_path / "policies", POLICY)
    store_url = f"sqlite:///{tmp_path}/queue.db"
    export = tmp_path / "sent.csv"
    rows = [
        f"2026-10-{d:02d}T09:00:00+09:00,{SENDER},{KNOWN},<m{d}@example.co.jp>" for d in range(1, 7)
    ]
    export.write_text("date,sender,recipients,message-id\n" + "\n".join(rows) + "\n")
    args = ["history", "import", str(export), "--format", "csv", "--store", store_url]
    args += ["--policy-dir", str(policy_dir)]
    assert await asyncio.to_thread(cli, args) == 0
    assert "recorded 6" in capsys.readouterr().out
    assert await asyncio.to_thread(cli, args) == 0  # idempotent: a second run adds nothing
    assert "recorded 0, already known 6" in capsys.readouterr().out

    async with running_relay(upstream=upstream.url, policy_dir=policy_dir, store=store_url) as app:
        port = app.bound[0][1]
        # The real correspondent passes and is learned (6 imported + 1 live).
        code, _ = await asyncio.to_thread(_send, port, KNOWN)
        assert code == 250
        assert app.history is not None
        assert await _written(app.history.store, KNOWN, 7) == 7
        # The lookalike of a domain only the history knows is held.
        code, text = await asyncio.to_thread(_send, port, "tanaka@tanaka-shouji.co.jp")
        assert code == 250 and "held by rule hold-lookalike-domain" in text, text
        assert await _written(app.history.store, "tanaka@tanaka-shouji.co.jp", 0) == 0
        # A reviewer releases it: once the worker has delivered it, it is learned too.
        [queue_id] = re.findall(r" as (\S+):", text)
        release = ["queue", "release", queue_id, "--store", store_url, "--actor", "boss"]
        assert await asyncio.to_thread(cli, release) == 0
        assert await _written(app.history.store, "tanaka@tanaka-shouji.co.jp", 1) == 1
        # A domain nobody here has written to is delayed by the first-contact rule.
        code, text = await asyncio.to_thread(_send, port, "ceo@brand-new.example")
        assert code == 250 and "delayed by rule delay-first-contact" in text, text
    sent = [m.rcpt_tos for m in upstream.messages if m.mail_from == SENDER]
    assert sent == [(KNOWN,), ("tanaka@tanaka-shouji.co.jp",)]

    # Replay: the stricter policy would have held the message that passed.
    replay_dir = write_policy(tmp_path / "strict", REPLAY_POLICY)
    replay = ["policy", "replay", str(replay_dir), "--since", "1d", "--store", store_url]
    assert await asyncio.to_thread(cli, replay) == 0
    out = capsys.readouterr().out
    assert "3 past messages re-decided; 2 would change action" in out, out
    assert "pass → hold: 1" in out and "delay → hold: 1" in out, out
    assert re.search(r"rule hold-any-external: 2 changed", out), out

    # A data subject's request: the address is gone from the history.
    forget = ["history", "forget", KNOWN, "--store", store_url]
    assert await asyncio.to_thread(cli, forget) == 0
    assert "forgot 1 history rows" in capsys.readouterr().out
    store = await HistoryStore.open(store_url)
    try:
        assert await _written(store, KNOWN, 0) == 0
    finally:
        await store.close()
