"""Only delivered mail is learned, in the background; replay facts rebuild a decision."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from sendguard.correspondence import Recipient
from sendguard.deliver.maildir import MaildirUpstream
from sendguard.history.service import History
from sendguard.history.settings import HistorySettings
from sendguard.history.store import HistoryStore
from sendguard.inspect import Inspection
from sendguard.model import PASS_VERDICT, Action, Envelope, Finding, Mail, Reply, Verdict
from sendguard.pipeline import Pipeline
from sendguard.policy.load import load_policy
from sendguard.policy.replay import from_facts, replay, replay_facts
from tests.support.relay import write_policy

ORG_POLICY = 'allow_empty = true\n[organisation]\ninternal_domains = ["example.jp"]\n'
RCPT = "tanaka@tanaka-shoji.co.jp"
DATA = (
    b"Message-ID: <a1@example.jp>\r\nTo: =?UTF-8?B?55Sw5Lit?= <" + RCPT.encode() + b">\r\n\r\nx\r\n"
)


def _inspection(verdict: Verdict = PASS_VERDICT) -> Inspection:
    return Inspection(Mail(), (), verdict)


@dataclass(frozen=True)
class _Fixed:
    verdict: Verdict

    async def inspect(
        self, envelope: Envelope, data: bytes, *, spooled: object = None
    ) -> Inspection:
        return _inspection(verdict=self.verdict)


@dataclass(frozen=True)
class _Copy:
    rcpt_tos: tuple[str, ...]
    data: bytes


async def _history(tmp_path: Path, **settings: object) -> History:
    policy = load_policy(write_policy(tmp_path / "policies", ORG_POLICY))
    store = await HistoryStore.open(f"sqlite:///{tmp_path}/h.db")
    return History(store, HistorySettings(**settings), lambda: policy.organisation)


def _pipeline(tmp_path: Path, verdict: Verdict, history: History) -> Pipeline:
    return Pipeline(
        inspector=_Fixed(verdict),
        upstream=MaildirUpstream(tmp_path / "maildir"),
        prepare=lambda data, verdict, env, organisation: (_Copy(env.rcpt_tos, data),),
        reject_reply=lambda verdict, ref: Reply(550, f"5.7.1 no (ref {ref})"),
        history=history,
    )


async def test_delivered_mail_is_learned_and_refused_mail_is_not(tmp_path: Path) -> None:
    """A pass is recorded (with its To name); a reject is not; internal recipients never are."""
    history = await _history(tmp_path)
    envelope = Envelope(mail_from="yamada@example.jp", rcpt_tos=(RCPT, "suzuki@example.jp"))
    reply = await _pipeline(tmp_path, PASS_VERDICT, history).handle(envelope, DATA)
    assert reply.ok
    rejected = Verdict(action=Action.REJECT, rule_id="r", reason="no")
    other = Envelope(mail_from="yamada@example.jp", rcpt_tos=("x@rejected.example",))
    assert not (await _pipeline(tmp_path, rejected, history).handle(other, DATA)).ok
    assert await history.flush() == 1
    snap = await history.store.snapshot(
        "yamada@example.jp",
        [
            Recipient(RCPT, "tanaka-shoji.co.jp"),
            Recipient("x@rejected.example", "rejected.example"),
            Recipient("tanaka@other.example", "other.example", "田中"),
        ],
    )
    assert snap.written == {RCPT: 1}
    assert snap.same_name["tanaka@other.example"][0].address == RCPT  # the To name was kept
    assert (await history.store.counts())["history_recipient"] == 1
    await history.store.close()


async def test_a_full_queue_drops_and_logs_instead_of_waiting(tmp_path: Path) -> None:
    """The client never waits for the history: beyond queue_size, records are dropped."""
    history = await _history(tmp_path, queue_size=1)
    envelope = Envelope(mail_from="yamada@example.jp", rcpt_tos=(RCPT,))
    with capture_logs() as logs:
        history.delivered(envelope, DATA)
        history.delivered(envelope, DATA)
    assert [e["event"] for e in logs] == ["history_queue_full"]
    await history.store.close()


def test_replay_facts_rebuild_the_decision(tmp_path: Path) -> None:
    """The audited facts (no content) re-decide a message like the live relay would."""
    policy = load_policy(
        write_policy(
            tmp_path / "strict",
            ORG_POLICY
            + '[[rule]]\nid = "hold-slip"\ndescription = "slip"\naction = "hold"\n'
            + 'recipients = "any-external"\n'
            + 'when.any = [{ detector = "recipient-slip", severity_at_least = "high" }]\n',
        )
    )
    slip = Finding(
        detector="recipient-slip",
        code="autocomplete",
        message="",
        severity="high",
        params={"count": 1},
        where=("envelope",),
    )
    envelope = Envelope(mail_from="yamada@example.jp", rcpt_tos=(RCPT, "b@example.jp"))
    facts = {"action": "pass", "rule": None, **replay_facts(envelope, (slip,))}
    assert "tanaka@" not in str(facts)  # recipients are kept as domains only
    past = from_facts("t1", facts)
    assert past is not None and not past.approximate
    report = replay([past], policy)
    assert (report.changed, dict(report.by_rule)) == (1, {"hold-slip": 1})
    internal_only = from_facts("t2", {"action": "pass", **replay_facts(
        Envelope(mail_from="yamada@example.jp", rcpt_tos=("b@example.jp",)), (slip,)
    )})  # fmt: skip
    assert internal_only is not None
    assert replay([internal_only], policy).changed == 0  # recipients = any-external: not met
    old = from_facts("t3", {"action": "pass", "findings": ["recipient-slip/autocomplete:1"]})
    assert old is not None and old.approximate


def test_policy_explain_reads_a_history_snapshot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`policy explain --history FILE`: the history detectors see the snapshot; without it
    the output says they did not run."""
    from sendguard.cli.main import main as cli
    from sendguard.correspondence import HistorySnapshot, Known

    policy = write_policy(tmp_path / "policies", ORG_POLICY)
    message = tmp_path / "m.eml"
    message.write_bytes(
        b"From: yamada@example.jp\r\nTo: tanaka@other.example\r\nSubject: x\r\n\r\nx\r\n"
    )
    snap = HistorySnapshot(
        sender="yamada@example.jp",
        sender_messages=50,
        written={RCPT: 9},
        domains={"tanaka-shoji.co.jp": 9},
        same_local={"tanaka@other.example": (Known(RCPT, 9),)},
    )
    history = tmp_path / "snap.json"
    history.write_text(json.dumps(snap.to_json()), encoding="utf-8")
    base = ["policy", "explain", str(message), "--mail-from", "yamada@example.jp"]
    base += ["--rcpt", "tanaka@other.example", "--policy-dir", str(policy), "--offline"]
    assert cli([*base, "--history", str(history)]) == 0
    out = capsys.readouterr().out
    assert "recipient-slip" in out and "autocomplete" in out and "new-domain" in out, out
    assert "tanaka@" not in out  # masked
    assert cli(base) == 0
    assert "no correspondent history given" in capsys.readouterr().out


async def test_known_correspondents_need_no_query(tmp_path: Path) -> None:
    """Once the sender's recipients are known, their snapshot comes from memory; a new
    recipient or a reply still asks the store."""
    history = await _history(tmp_path)
    envelope = Envelope(mail_from="yamada@example.jp", rcpt_tos=(RCPT,))
    history.delivered(envelope, DATA)
    await history.flush()
    first = await history.snapshot(envelope, Mail())
    assert first is not None and first.written == {RCPT: 1}
    await history.store.close()  # from here on, any query fails (and is logged, skipped)
    again = await history.snapshot(envelope, Mail())
    assert again is not None and again.written == {RCPT: 1}
    with capture_logs() as logs:
        other = Envelope(mail_from="yamada@example.jp", rcpt_tos=("new@new.example",))
        assert await history.snapshot(other, Mail()) is None
        assert await history.snapshot(envelope, Mail(in_reply_to=("<a1@example.jp>",))) is None
    assert [e["event"] for e in logs] == ["history_lookup_skipped"] * 2
