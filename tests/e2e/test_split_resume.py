"""Issue 11: a live `split` rewrite whose 3rd of 5 copies is refused. The client must not be
told to resend copies that already went: the rest is queued and sent by the worker."""

from __future__ import annotations

import asyncio
import smtplib
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from sendguard.correspondence import Recipient
from sendguard.queue.backends import open_store
from tests.support.attachments import build_message
from tests.support.relay import running_relay, write_policy
from tests.support.store import FakeClock
from tests.support.upstream import RecordingUpstream

POLICY = """\
[organisation]
internal_domains = ["example.co.jp"]

[detectors.unresolvable-domain]
enabled = false

[[rule]]
id = "split-external"
description = "each outside recipient gets their own copy"
action = "rewrite-bcc"
rewrite = "split"
recipients = "any-external"
when.any = [{ detector = "visible-recipients", code = "external-visible" }]
"""
SENDER = "tanaka@example.co.jp"
RCPTS = [f"customer{i}@client{i}.example" for i in range(1, 6)]


def _send(port: int, data: bytes) -> tuple[int, str]:
    """One transaction to all five; the reply to the final dot (code, text)."""
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
        client.ehlo()
        client.mail(SENDER)
        for rcpt in RCPTS:
            client.rcpt(rcpt)
        code, text = client.data(data)
        return code, text.decode()


def _copies(upstream: RecordingUpstream) -> Counter[str]:
    """How many copies each recipient got from the sender."""
    return Counter(r for m in upstream.messages if m.mail_from == SENDER for r in m.rcpt_tos)


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    """The split policy in its own directory."""
    return write_policy(tmp_path / "policies", POLICY)


async def _until(check: object, within: float = 20.0) -> None:
    async with asyncio.timeout(within):
        while not check():  # type: ignore[operator]  # noqa: ASYNC110  # the worker's doing
            await asyncio.sleep(0.05)


async def test_a_refused_third_copy_is_queued_and_the_client_is_not_told_to_resend(
    upstream: RecordingUpstream, policy_dir: Path, tmp_path: Path
) -> None:
    """The upstream refuses copy 3 once (452). The client gets 250 naming the queue entry
    (before issue 11: the 452, and its retry sent copies 1 and 2 again); the worker then
    sends copies 3, 4 and 5; every recipient gets exactly one copy, showing only itself."""
    upstream.fail_next("RCPT", "452 4.2.2 mailbox full", rcpt=RCPTS[2])
    data = build_message(from_=("田中", SENDER), to=[("", r) for r in RCPTS], subject="ご案内")
    store_url = f"sqlite:///{tmp_path / 'queue.db'}"
    async with running_relay(
        upstream=upstream.url, policy_dir=policy_dir, store=store_url,
        queue={"poll_interval": 0.1, "retry_backoff": [0.1]},
    ) as app:  # fmt: skip
        code, text = await asyncio.to_thread(_send, app.bound[0][1], data)
        assert code == 250, text
        assert "2 of 5 copies delivered, the rest queued as" in text
        await _until(lambda: sum(_copies(upstream).values()) >= 5)
        await asyncio.sleep(0.3)  # time for a duplicate, if any
    assert _copies(upstream) == Counter(dict.fromkeys(RCPTS, 1))
    for message in upstream.messages:
        (own,) = message.rcpt_tos
        header = message.data.split(b"\r\n\r\n", 1)[0]
        assert [r for r in RCPTS if r.encode() in header] == [own]
    store = await open_store(store_url, clock=FakeClock())
    (entry,) = await store.list()
    assert (entry.state, sorted(entry.delivered_to)) == ("delivered", sorted(RCPTS))
    await store.close()


async def test_a_permanently_refused_copy_bounces_to_the_sender_and_the_rest_still_go(
    upstream: RecordingUpstream, policy_dir: Path, tmp_path: Path
) -> None:
    """Copy 3's recipient does not exist (550, every time): the client still gets 250, copies
    4 and 5 go, nobody gets a second copy, and the sender gets a bounce for that recipient."""
    for _ in range(2):  # live, then the worker's attempt
        upstream.fail_next("RCPT", "550 5.1.1 no such user", rcpt=RCPTS[2])
    data = build_message(from_=("田中", SENDER), to=[("", r) for r in RCPTS], subject="ご案内")
    store_url = f"sqlite:///{tmp_path / 'queue.db'}"
    async with running_relay(
        upstream=upstream.url, policy_dir=policy_dir, store=store_url,
        queue={"poll_interval": 0.1}, notify={"from_address": "sendguard@example.co.jp"},
    ) as app:  # fmt: skip
        code, text = await asyncio.to_thread(_send, app.bound[0][1], data)
        assert code == 250, text
        await _until(lambda: any(m.rcpt_tos == (SENDER,) for m in upstream.messages))
        await asyncio.sleep(0.3)
        # The correspondent history learns who got the message, never the refused address
        # (before: all five were learned at the 250, and 4 and 5 a second time on delivery).
        assert app.history is not None
        await app.history.flush()
        wanted = [Recipient(r, r.partition("@")[2]) for r in RCPTS]
        snap = await app.history.store.snapshot(SENDER, wanted)
        assert snap.written == {r: 1 for r in RCPTS if r != RCPTS[2]}
    assert _copies(upstream) == Counter({r: 1 for r in RCPTS if r != RCPTS[2]})
    store = await open_store(store_url, clock=FakeClock())
    (entry,) = await store.list()
    assert entry.state == "failed"
    assert RCPTS[2] not in entry.delivered_to
    await store.close()


async def test_when_the_rest_cannot_be_queued_the_client_gets_451_saying_so(
    upstream: RecordingUpstream, policy_dir: Path, tmp_path: Path
) -> None:
    """Copy 3 is refused and the store cannot take the rest (its table is gone): no 250 for
    mail nobody holds. The client gets 451 saying that copies went and a retry repeats them."""
    upstream.fail_next("RCPT", "452 4.2.2 mailbox full", rcpt=RCPTS[2])
    data = build_message(from_=("田中", SENDER), to=[("", r) for r in RCPTS], subject="ご案内")
    db = tmp_path / "queue.db"
    async with running_relay(
        upstream=upstream.url, policy_dir=policy_dir, store=f"sqlite:///{db}"
    ) as app:
        with sqlite3.connect(db) as broken:  # the store fails behind the relay's back
            broken.execute("ALTER TABLE queue_entry RENAME TO queue_entry_gone")
        code, text = await asyncio.to_thread(_send, app.bound[0][1], data)
    assert code == 451
    assert "2 of 5 copies were delivered but the rest could not be queued" in text
    assert sum(_copies(upstream).values()) == 2
