"""The pipeline never passes on doubt: errors and budget overruns tempfail or hold."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from sendguard import replies
from sendguard.deliver.maildir import MaildirUpstream
from sendguard.inspect import Inspection, Inspector
from sendguard.intake.handler import IntakeOptions, RelayHandler
from sendguard.model import PASS_VERDICT, Action, Envelope, Mail, Reply, Verdict
from sendguard.parse.limits import ParseLimits
from sendguard.pipeline import ClientSide, Pipeline, PipelineOptions
from sendguard.policy.holder import PolicyHolder
from sendguard.queue.backends import open_store

from .detect.dnsserver import Zone, dns_server

ENVELOPE = Envelope(mail_from="a@example.jp", rcpt_tos=("b@partner.test",), transaction_id="t1")
DATA = b"Subject: x\r\n\r\nbody\r\n"


def _inspection(verdict: Verdict = PASS_VERDICT) -> Inspection:
    return Inspection(Mail(), (), verdict)


@dataclass(frozen=True)
class _Copy:
    rcpt_tos: tuple[str, ...]
    data: bytes


class _Broken:
    """An inspector with a bug."""

    async def inspect(
        self, envelope: Envelope, data: bytes, *, spooled: object = None
    ) -> Inspection:
        raise KeyError("bug")


class _Slow:
    """An inspector that never finishes."""

    async def inspect(
        self, envelope: Envelope, data: bytes, *, spooled: object = None
    ) -> Inspection:
        await asyncio.sleep(60)
        return _inspection()


def _pipeline(inspector: object, tmp_path: Path, **options: object) -> Pipeline:
    return Pipeline(
        inspector=inspector,  # type: ignore[arg-type]
        upstream=MaildirUpstream(tmp_path / "maildir"),
        prepare=lambda data, verdict, env, organisation: (_Copy(env.rcpt_tos, data),),
        reject_reply=lambda verdict, ref: Reply(550, f"5.7.1 no (ref {ref})"),
        options=PipelineOptions(**options),  # type: ignore[arg-type]
    )


def _delivered(tmp_path: Path) -> list[Path]:
    new = tmp_path / "maildir" / "new"
    return list(new.iterdir()) if new.exists() else []


async def test_inspector_bug_tempfails_and_sends_nothing(tmp_path: Path) -> None:
    """An exception anywhere in inspection answers 451 4.3.0 with a reference; nothing is sent."""
    with capture_logs() as logs:
        reply = await _pipeline(_Broken(), tmp_path).handle(ENVELOPE, DATA)
    assert reply.code == 451 and "4.3.0" in reply.text and "ref " in reply.text
    assert _delivered(tmp_path) == []
    assert any(e["event"] == "inspection_failed" for e in logs)
    [tx] = [e for e in logs if e["event"] == "transaction"]
    assert tx["reply_code"] == 451


async def test_scan_budget_exceeded_tempfails(tmp_path: Path) -> None:
    """Inspection over the scan budget answers 451 within the budget, never 250."""
    started = asyncio.get_running_loop().time()
    reply = await _pipeline(_Slow(), tmp_path, scan_budget=0.3).handle(ENVELOPE, DATA)
    assert reply.code == 451 and "in time" in reply.text
    assert asyncio.get_running_loop().time() - started < 5
    assert _delivered(tmp_path) == []


async def test_on_error_hold_stores_the_message(tmp_path: Path) -> None:
    """With on_error=hold the message is committed to the queue as held, then 250."""
    store = await open_store(f"sqlite:///{tmp_path}/q.db")
    pipeline = _pipeline(_Broken(), tmp_path, on_error="hold")
    pipeline.queue = store
    try:
        reply = await pipeline.handle(ENVELOPE, DATA)
        assert reply.code == 250 and "held by rule on-error" in reply.text
        [listed] = await store.list()
        entry = await store.get(listed.id)
        assert entry.state == "held" and entry.data == DATA
        assert entry.verdict.action is Action.HOLD
    finally:
        await store.close()


async def test_hold_without_a_store_tempfails(tmp_path: Path) -> None:
    """A hold verdict with no queue available is a 451, never a silent pass."""

    class _Holds:
        async def inspect(
            self, envelope: Envelope, data: bytes, *, spooled: object = None
        ) -> Inspection:
            return _inspection(verdict=Verdict(action=Action.HOLD, rule_id="r"))

    reply = await _pipeline(_Holds(), tmp_path).handle(ENVELOPE, DATA)
    assert reply.code == 451
    assert _delivered(tmp_path) == []


async def test_handle_exception_answers_451_not_500() -> None:
    """aiosmtpd's default would answer 500 with the exception text; ours tempfails and logs."""
    handler = RelayHandler(
        _pipeline(_Broken(), Path("unused")),
        IntakeOptions(trusted_networks=(), max_recipients=10, max_message_size=1000),
    )
    with capture_logs() as logs:
        reply = await handler.handle_exception(RuntimeError("secret detail"))
    assert reply.startswith("451 4.3.0") and "secret detail" not in reply
    assert logs[0]["event"] == "internal_error"


@pytest.mark.parametrize("action", [Action.PASS, Action.REJECT])
async def test_every_verdict_is_audited(tmp_path: Path, action: Action) -> None:
    """Pass and reject verdicts are written to the audit log (held ones by the store itself)."""
    store = await open_store(f"sqlite:///{tmp_path}/q.db")

    class _Decides:
        async def inspect(
            self, envelope: Envelope, data: bytes, *, spooled: object = None
        ) -> Inspection:
            return _inspection(verdict=Verdict(action=action, rule_id="r1"))

    pipeline = _pipeline(_Decides(), tmp_path)
    pipeline.queue = store
    try:
        await pipeline.handle(ENVELOPE, DATA)
        await pipeline.drain()
        records = [r for r in await store.audit_records() if r.event == "verdict"]
        assert [json.loads(r.details)["action"] for r in records] == [action.label]
        assert records[0].transaction_id == "t1"
        assert (await store.verify_audit()).ok
    finally:
        await store.close()


class _Hangs:
    """An upstream that takes the message and never answers (cancelled at shutdown)."""

    async def send(self, envelope: Envelope, data: bytes, /) -> Reply:
        await asyncio.sleep(60)
        return Reply(250, "2.0.0 late")

    async def close(self) -> None:
        return None


class _Fine:
    async def inspect(
        self, envelope: Envelope, data: bytes, *, spooled: object = None
    ) -> Inspection:
        return _inspection()


async def test_a_bug_while_acting_still_logs_one_transaction(tmp_path: Path) -> None:
    """An exception after inspection (here in `prepare`) is a 451 with a reference and one
    `transaction` event, not an exception the intake would have to answer."""
    pipeline = _pipeline(_Fine(), tmp_path)
    pipeline.prepare = lambda data, inspected, env: 1 / 0  # type: ignore[assignment,return-value]
    with capture_logs() as logs:
        reply = await pipeline.handle(ENVELOPE, DATA)
    assert reply.code == 451 and "ref " in reply.text
    [tx] = [e for e in logs if e["event"] == "transaction"]
    assert tx["reply_code"] == 451 and tx["action"] == "pass"


async def test_client_not_waiting_commits_nothing(tmp_path: Path) -> None:
    """A client answered early (or gone) resends its message: it is not delivered now."""
    client = ClientSide(answered=Reply(451, "4.4.2 too late"))
    with capture_logs() as logs:
        reply = await _pipeline(_Fine(), tmp_path).handle(ENVELOPE, DATA, client=client)
    assert reply.code == 451 and not client.committed
    assert _delivered(tmp_path) == []
    [tx] = [e for e in logs if e["event"] == "transaction"]
    assert tx["client_reply_code"] == 451 and tx["action"] == "pass"


async def test_cancelled_delivery_is_logged_as_possibly_delivered(tmp_path: Path) -> None:
    """A shutdown that cancels a delivery under way still logs the transaction, and says the
    upstream may have the message."""
    pipeline = _pipeline(_Fine(), tmp_path)
    pipeline.upstream = _Hangs()
    client = ClientSide()
    with capture_logs() as logs:
        task = asyncio.create_task(pipeline.handle(ENVELOPE, DATA, client=client))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert client.committed
    [tx] = [e for e in logs if e["event"] == "transaction"]
    assert tx["reply_code"] == 421 and tx["action"] == "pass"
    [possible] = [e for e in logs if e["event"] == "duplicate_possible"]
    assert possible["transaction_id"] == "t1"


async def test_pass_reply_waits_for_the_durable_verdict_record(tmp_path: Path) -> None:
    """The 250 of passed mail comes only after its verdict record is committed; if the store
    cannot commit it, the client gets 451 (it resends) instead of an unaudited 250."""
    store = await open_store(f"sqlite:///{tmp_path}/q.db")

    class _Passes:
        async def inspect(
            self, envelope: Envelope, data: bytes, *, spooled: object = None
        ) -> Inspection:
            return _inspection(verdict=Verdict(action=Action.PASS))

    pipeline = _pipeline(_Passes(), tmp_path)
    pipeline.queue = store
    reply = await pipeline.handle(ENVELOPE, DATA)
    # No drain: the record is there the moment the reply is.
    records = await store.audit_records()
    assert reply.code == 250 and [r.event for r in records] == ["verdict"]
    await store.close()  # the store is gone: the next record cannot be written
    with capture_logs() as logs:
        reply = await pipeline.handle(ENVELOPE, DATA)
    assert reply.code == 451 and "record the verdict" in reply.text
    assert any(e["event"] == "audit_write_failed" for e in logs)


async def test_a_dns_lookup_past_its_budget_answers_the_budget_reply(tmp_path: Path) -> None:
    """A resolver that never answers, with the DNS detector's own budget longer than the
    network detectors' deadline, is a timeout of inspection: 451 "did not finish in time",
    not "Internal error" (the error's class decides, not its text)."""
    policy = tmp_path / "policy"
    policy.mkdir()
    async with dns_server(Zone(silent={"slow.jp"})) as port:
        (policy / "dns.toml").write_text(
            "allow_empty = true\n[detectors.unresolvable-domain]\n"
            f'nameservers = ["127.0.0.1"]\nport = {port}\nquery_timeout = 5\nbudget = 5\n',
            encoding="utf-8",
        )
        inspector = Inspector(
            policy=PolicyHolder(policy), limits=ParseLimits(), network_timeout=0.3
        )
        envelope = Envelope(mail_from="a@example.jp", rcpt_tos=("b@slow.jp",), transaction_id="t")
        reply = await _pipeline(inspector, tmp_path).handle(envelope, DATA)
    assert reply.code == 451
    assert reply.text.startswith(replies.TEMPFAIL_BUDGET.text)
    assert _delivered(tmp_path) == []
