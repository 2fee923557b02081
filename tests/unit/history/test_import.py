"""Bootstrap imports: mbox, Maildir, CSV (Exchange-style) and a Postfix maillog, idempotent."""

from __future__ import annotations

import asyncio
import mailbox
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import pytest

from sendguard.cli.main import main as cli
from sendguard.correspondence import Recipient
from sendguard.history.store import HistoryStore
from tests.support.relay import write_policy

SENDER = "yamada@example-corp.co.jp"
POLICY = 'allow_empty = true\n[organisation]\ninternal_domains = ["example-corp.co.jp"]\n'


def _message(n: int, to: str, cc: str = "") -> EmailMessage:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = f"山田 <{SENDER}>"
    msg["To"] = to
    if cc:
        msg["Cc"] = cc
    msg["Subject"] = "ご連絡"
    msg["Date"] = f"Mon, {n + 1} Nov 2026 09:00:00 +0900"
    msg["Message-ID"] = f"<sent{n}@example-corp.co.jp>"
    msg.set_content("本文\n")
    return msg


def _import(tmp_path: Path, source: Path, fmt: str, store: str) -> int:
    policy = write_policy(tmp_path / "policies", POLICY)
    args = ["history", "import", str(source), "--format", fmt, "--store", store]
    return cli([*args, "--policy-dir", str(policy)])


def _written(store_url: str, rcpt: str, sender: str = SENDER) -> int:
    async def read() -> int:
        store = await HistoryStore.open(store_url, migrate=False)
        try:
            snap = await store.snapshot(sender, [Recipient(rcpt, rcpt.partition("@")[2])])
            return snap.written.get(rcpt, 0)
        finally:
            await store.close()

    return asyncio.run(read())


@pytest.mark.parametrize("kind", ["mbox", "maildir"])
def test_sent_mailbox_import_is_idempotent(
    tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Three sent messages (one internal-only, one broken) → two recorded; again → none."""
    path = tmp_path / ("sent.mbox" if kind == "mbox" else "Sent")
    box: mailbox.Mailbox[mailbox.Message]
    box = mailbox.mbox(path) if kind == "mbox" else mailbox.Maildir(path)
    box.add(_message(1, "田中 <tanaka@tanaka-shoji.co.jp>", cc="suzuki@example-corp.co.jp"))
    box.add(_message(2, "tanaka@tanaka-shoji.co.jp, sato@sato.example"))
    box.add(_message(3, "suzuki@example-corp.co.jp"))
    box.add(b"not a message at all")
    box.close()
    store = f"sqlite:///{tmp_path}/h.db"
    assert _import(tmp_path, path, "mailbox", store) == 0
    out = capsys.readouterr().out
    assert "read 4: recorded 2, already known 0, internal only 1, unreadable 1" in out, out
    assert _import(tmp_path, path, "mailbox", store) == 0
    assert "recorded 0, already known 2" in capsys.readouterr().out
    assert _written(store, "tanaka@tanaka-shoji.co.jp") == 2
    assert _written(store, "sato@sato.example") == 1


def test_exchange_csv_keeps_send_events_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exchange message tracking: SEND rows count, RECEIVE/DELIVER rows do not."""
    export = tmp_path / "tracking.csv"
    export.write_text(
        "date-time,sender-address,recipient-address,message-id,event-id\n"
        f"2026-11-01T00:00:00Z,{SENDER},tanaka@tanaka-shoji.co.jp;sato@sato.example,<a@x>,SEND\n"
        f"2026-11-01T00:00:00Z,{SENDER},tanaka@tanaka-shoji.co.jp,<a@x>,RECEIVE\n"
        f"2026-11-02T00:00:00Z,{SENDER},tanaka@tanaka-shoji.co.jp,<b@x>,SEND\n",
        encoding="utf-8",
    )
    store = f"sqlite:///{tmp_path}/h.db"
    assert _import(tmp_path, export, "csv", store) == 0
    assert "read 2: recorded 2" in capsys.readouterr().out
    assert _written(store, "tanaka@tanaka-shoji.co.jp") == 2


def test_csv_without_needed_columns_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A CSV that is not a sent-mail export: exit 1 naming the missing columns."""
    export = tmp_path / "other.csv"
    export.write_text("name,phone\na,b\n", encoding="utf-8")
    assert _import(tmp_path, export, "csv", f"sqlite:///{tmp_path}/h.db") == 1
    assert "needs columns date, sender, recipients" in capsys.readouterr().err


def test_postfix_maillog(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """from= (qmgr), message-id= (cleanup), to=… status=sent (smtp) make one delivery."""
    log = tmp_path / "maillog"
    log.write_text(
        "Nov  3 09:00:00 mx postfix/cleanup[11]: 4AbC1: message-id=<p1@example-corp.co.jp>\n"
        f"Nov  3 09:00:00 mx postfix/qmgr[12]: 4AbC1: from=<{SENDER}>, size=900, "
        "nrcpt=2 (queue active)\n"
        "Nov  3 09:00:01 mx postfix/smtp[13]: 4AbC1: to=<tanaka@tanaka-shoji.co.jp>, "
        "relay=mx[192.0.2.1]:25, delay=1, status=sent (250 2.0.0 Ok)\n"
        "Nov  3 09:00:01 mx postfix/smtp[13]: 4AbC1: to=<nobody@gone.example>, relay=none, "
        "delay=1, status=bounced (host not found)\n"
        "Nov  3 09:00:01 mx postfix/qmgr[12]: 4AbC1: removed\n",
        encoding="utf-8",
    )
    store = f"sqlite:///{tmp_path}/h.db"
    assert _import(tmp_path, log, "postfix", store) == 0
    assert "read 1: recorded 1" in capsys.readouterr().out
    assert _written(store, "tanaka@tanaka-shoji.co.jp") == 1
    assert _written(store, "nobody@gone.example") == 0
