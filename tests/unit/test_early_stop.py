"""The relay's early stop (`policy.ceiling`): once the parts read already reach the most
severe action the policy could take for the envelope, the rest is not read — and the
action is always the one `policy explain` (everything read, the exhaustive paths) gives."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sendguard.detect.base import DetectContext
from sendguard.detect.registry import Detectors, build, run_content
from sendguard.inspect import Inspector, inspect_sync
from sendguard.model import Action, Envelope, Mail
from sendguard.parse import parse_message
from sendguard.parse.limits import ParseLimits
from sendguard.parse.pool import ExtractionPool
from sendguard.policy.ceiling import PREFIX_ROWS, early_stop, row_prefix
from sendguard.policy.evaluate import evaluate
from sendguard.policy.holder import PolicyHolder
from sendguard.policy.load import LoadedPolicy, load_policy
from tests.eval.evaluate import all_cases
from tests.support.attachments import Attachment, build_message, xlsx, zip_archive

from .detect.numbers import my_number

SHIPPED = Path(__file__).resolve().parents[2] / "policies"
LIMITS = ParseLimits.model_validate({})
SENDER = "tanaka@example.co.jp"
OUTSIDE = Envelope(SENDER, ("sato@customer.example",))
INSIDE = Envelope(SENDER, ("suzuki@example.co.jp",))

# Only the two rules these tests are about, so no DNS or other network detector decides.
_POLICY = """
[detectors.unresolvable-domain]
nameservers = ["127.0.0.1"]
port = 9
query_timeout = 0.2
budget = 0.5

[organisation]
internal_domains = ["example.co.jp"]

[[rule]]
id = "hold-my-number-external"
description = "My Numbers going outside"
action = "hold"
recipients = "any-external"
when.any = [{ detector = "personal-data", code = ["my-number"] }]

[[rule]]
id = "tag-confidential"
description = "Marked confidential"
action = "tag"
when.any = [{ detector = "confidential-marker" }]
"""
_EXCEPTED = _POLICY.replace(
    'when.any = [{ detector = "personal-data", code = ["my-number"] }]',
    'when.any = [{ detector = "personal-data", code = ["my-number"] }]\n'
    'when.none = [{ detector = "personal-data", code = ["phone"] }]',
)


def _policy(tmp_path: Path, text: str) -> Path:
    directory = tmp_path / "policies"
    directory.mkdir()
    (directory / "default.toml").write_text(text, encoding="utf-8")
    return directory


def _ledger(rows: int, seed: int) -> bytes:
    rng = random.Random(seed)
    sheet: list[list[object]] = [["伝票番号", "日付", "品目", "数量", "金額"]]
    for n in range(rows):
        sheet.append(
            [f"S{n:07d}", "2026-04-01", "ボルト M8", rng.randint(1, 500), rng.randint(1, 9)]
        )
    return xlsx({"明細": sheet})


def _many_attachments(first: bytes) -> bytes:
    """Eight attachments; the first is `first`, the others harmless ledgers."""
    files = [Attachment("1.txt", first, "text/plain")]
    files += [Attachment(f"{n}.xlsx", _ledger(300, n)) for n in range(2, 9)]
    return build_message(from_=("田中", SENDER), to=[("佐藤", "sato@customer.example")],
                         subject="資料", body="資料を添付します。", attachments=files)  # fmt: skip


_MY_NUMBER = f"個人番号: {my_number(random.Random(3))}\n".encode()


@pytest.fixture
async def pool() -> AsyncIterator[ExtractionPool]:
    """One real extraction worker process."""
    extraction = ExtractionPool(workers=1)
    try:
        yield extraction
    finally:
        await extraction.close()


def test_the_ceiling_depends_on_the_envelope_and_ignores_warn_and_disabled_rules(
    tmp_path: Path,
) -> None:
    policy = load_policy(_policy(tmp_path, _POLICY + _POLICY_EXTRA))
    outside = early_stop(policy, OUTSIDE)
    assert outside is not None and outside.action is Action.HOLD
    assert [r.id for r in outside.policy.policy.rules] == ["hold-my-number-external"]
    inside = early_stop(policy, INSIDE)  # the hold rule is for outside mail only
    assert inside is not None and inside.action is Action.TAG


_POLICY_EXTRA = """
[[rule]]
id = "reject-in-trial"
description = "Warn mode never acts"
mode = "warn"
action = "reject"
when.any = [{ detector = "confidential-marker" }]

[[rule]]
id = "reject-switched-off"
description = "Disabled rules never match"
enabled = false
action = "reject"
when.any = [{ detector = "confidential-marker" }]
"""


def test_no_stop_when_every_ceiling_rule_has_an_exception(tmp_path: Path) -> None:
    """More findings could un-match a rule with ``none``: never stop on it."""
    assert early_stop(load_policy(_policy(tmp_path, _EXCEPTED)), OUTSIDE) is None


async def test_relay_stops_after_the_part_that_reaches_the_ceiling(
    tmp_path: Path, pool: ExtractionPool
) -> None:
    directory = _policy(tmp_path, _POLICY)
    raw = _many_attachments(_MY_NUMBER)
    inspector = Inspector(policy=PolicyHolder(directory), limits=LIMITS, pool=pool)
    relay = await inspector.inspect(OUTSIDE, raw)
    explain = inspect_sync(
        OUTSIDE, raw, load_policy(directory), LIMITS, offline=True, exhaustive=True
    )
    assert relay.verdict.action is explain.verdict.action is Action.HOLD
    assert relay.mail.stopped_early and not explain.mail.stopped_early
    assert len(relay.mail.parts) == 2  # the body and the first attachment
    assert len(explain.mail.parts) == 9
    personal = [
        {f.code for f in i.findings if f.detector == "personal-data"} for i in (relay, explain)
    ]
    assert personal[0] == personal[1] == {"my-number"}


async def test_relay_reads_everything_below_the_ceiling(tmp_path: Path) -> None:
    """Nothing reaches the hold (no pool: the in-process path stops the same way)."""
    directory = _policy(tmp_path, _POLICY)
    inspector = Inspector(policy=PolicyHolder(directory), limits=LIMITS)
    raw = _many_attachments("社外秘\n".encode())
    relay = await inspector.inspect(OUTSIDE, raw)
    assert relay.verdict.action is Action.TAG
    assert not relay.mail.stopped_early and len(relay.mail.parts) == 9


async def test_relay_reads_everything_when_the_rule_has_an_exception(tmp_path: Path) -> None:
    inspector = Inspector(policy=PolicyHolder(_policy(tmp_path, _EXCEPTED)), limits=LIMITS)
    relay = await inspector.inspect(OUTSIDE, _many_attachments(_MY_NUMBER))
    assert relay.verdict.action is Action.HOLD
    assert not relay.mail.stopped_early and len(relay.mail.parts) == 9


async def test_a_bomb_after_the_stop_still_holds(tmp_path: Path) -> None:
    """Fail closed: what is not read can never make the mail pass; the hold stands."""
    directory = _policy(tmp_path, _POLICY)
    bomb = zip_archive({f"{n}.txt": b"0" * (8 << 20) for n in range(40)})
    files = [Attachment("1.txt", _MY_NUMBER, "text/plain"), Attachment("b.zip", bomb)]
    raw = build_message(attachments=files)
    relay = await Inspector(policy=PolicyHolder(directory), limits=LIMITS).inspect(OUTSIDE, raw)
    assert relay.verdict.action is Action.HOLD and relay.mail.stopped_early


def _relay(
    policy: LoadedPolicy, detectors: Detectors, mail: Mail, envelope: Envelope, ctx: DetectContext
) -> tuple[Action, int]:
    """What the relay decides on `mail`: the fast paths, and the early stop between parts as
    `parse_message` asks it (each part on its own, then every part read so far), and how
    many parts were read."""
    stop = early_stop(policy, envelope)
    parts = mail.parts
    if stop is not None:
        for index, part in enumerate(parts[:-1]):
            view = dataclasses.replace(mail, parts=(part,))
            if stop.reached(run_content(detectors, view, ctx), view):
                parts = parts[: index + 1]
                break
    read = dataclasses.replace(mail, parts=parts)
    return evaluate(policy, run_content(detectors, read, ctx), envelope, read).action, len(parts)


def test_relay_and_explain_agree_on_every_evaluation_case() -> None:
    """The shipped policy: the relay (early stop between parts) and `policy explain` (every
    part) give the same action on every case of tests/eval, each alone and followed by the
    parts of the next case (so that the stop is taken). Explain's exhaustive paths give the
    very findings of the fast ones on every case: tests/unit/detect/test_fast_paths.py."""
    policy = load_policy(SHIPPED)
    detectors = build(policy.detector_settings, enabled=policy.enabled_detectors())
    cases = all_cases()
    stopped = 0
    for case, after in zip(cases, [*cases[1:], cases[0]], strict=True):
        envelope = Envelope(SENDER, case.recipients)
        ctx = dataclasses.replace(case.ctx(), envelope=envelope)
        longer = dataclasses.replace(case.mail, parts=case.mail.parts + after.mail.parts)
        for mail in (case.mail, longer):
            explain = evaluate(policy, run_content(detectors, mail, ctx), envelope, mail).action
            relay, read = _relay(policy, detectors, mail, envelope, ctx)
            assert relay is explain, case.name
            stopped += read < len(mail.parts)
    assert stopped > len(cases) // 10, stopped  # the stop is taken often


def test_parts_read_alone_first_give_the_same_findings(tmp_path: Path) -> None:
    """Below the ceiling every part is judged alone and then in the whole message (each
    read once, `DetectContext.memo`): the findings are exactly those of one plain pass."""
    from sendguard.inspect import detect_context, parse_and_detect

    policy = load_policy(_policy(tmp_path, _POLICY))
    rows = [("氏名", "電話番号", "メール")] + [
        ("山田 太郎", f"090-1234-{n:04d}", f"u{n}@example.jp") for n in range(50)
    ]
    files = [
        Attachment("a.csv", "\r\n".join(",".join(r) for r in rows).encode("cp932"), "text/csv"),
        Attachment("b.xlsx", xlsx({"s": rows[:30]})),
        Attachment("c.txt", "社外秘 090-1234-0007\n".encode(), "text/plain"),
    ]
    raw = build_message(attachments=files)
    detectors = build(policy.detector_settings, enabled=policy.enabled_detectors())
    ctx = detect_context(OUTSIDE, policy.organisation)
    stop = early_stop(policy, OUTSIDE)
    assert stop is not None
    staged = parse_and_detect(raw, LIMITS, detectors, ctx, stop)
    plain = parse_and_detect(raw, LIMITS, detectors, ctx)
    assert not staged[0].stopped_early
    assert staged[1] == plain[1]
    assert {f.code for f in plain[1]} >= {"phone", "email-address", "customer-list", "marker"}


@pytest.mark.parametrize("rows", [2, 5, 20])
def test_relay_on_row_prefixes_and_explain_agree_on_every_evaluation_case(rows: int) -> None:
    """The shipped policy: judging each long table on its first `rows` rows when they already
    reach the ceiling (`row_prefix`, 1,000 rows in the relay: cut here to a few so that
    every case with a table is cut) gives the action of `policy explain`, which reads every
    row on the exhaustive paths, on every case of tests/eval."""
    policy = load_policy(SHIPPED)
    detectors = build(policy.detector_settings, enabled=policy.enabled_detectors())
    cut = reached = 0
    for case in all_cases():
        envelope = Envelope(SENDER, case.recipients)
        ctx = dataclasses.replace(case.ctx(), envelope=envelope)
        exhaustive = dataclasses.replace(ctx, exhaustive=True)
        mail = case.mail
        explain = evaluate(policy, run_content(detectors, mail, exhaustive), envelope, mail)
        stop = early_stop(policy, envelope)
        view = row_prefix(mail, rows)
        if stop is None or view is None:
            continue
        cut += 1
        found = run_content(detectors, view, ctx)
        if stop.reached(found, view):
            reached += 1
            relay = evaluate(policy, found, envelope, mail)
            assert relay.action is explain.action, case.name
    assert reached >= 10, (cut, reached)  # the cut is taken often


def _customers(rows: int) -> bytes:
    sheet: list[list[object]] = [["氏名", "電話番号", "メール", "生年月日"]]
    for n in range(rows):
        sheet.append(
            [f"山田 太郎{n}", f"090-{n // 10000:04d}-{n % 10000:04d}", f"u{n}@mail.example",
             f"19{60 + n % 40}-0{1 + n % 9}-1{n % 10}"]
        )  # fmt: skip
    return xlsx({"顧客": sheet})


def test_a_long_customer_list_is_held_on_its_first_rows(tmp_path: Path) -> None:
    """The relay holds a 2,500-row customer list on its first 1,000 rows; explain holds it
    too and counts every row."""
    from sendguard.inspect import detect_context, parse_and_detect

    directory = _policy(tmp_path, _POLICY.replace('code = ["my-number"]', 'code = ["phone"]'))
    policy = load_policy(directory)
    raw = build_message(attachments=[Attachment("顧客.xlsx", _customers(2500))])
    detectors = build(policy.detector_settings, enabled=policy.enabled_detectors())
    stop = early_stop(policy, OUTSIDE)
    assert stop is not None
    ctx = detect_context(OUTSIDE, policy.organisation)
    relay = parse_and_detect(raw, LIMITS, detectors, ctx, stop)
    explain = inspect_sync(OUTSIDE, raw, policy, LIMITS, offline=True, exhaustive=True)
    phones = [{f.code: f.count for f in found}["phone"] for found in (relay[1], explain.findings)]
    assert phones[0] < PREFIX_ROWS < phones[1] == 2500  # a lower bound; explain is exact
    # ... and the relay's finding says so, for the reviewer and the notice.
    [phone] = [f for f in relay[1] if f.code == "phone"]
    assert f"at least: only the first {PREFIX_ROWS} rows" in phone.render()
    assert all("at least" not in f.render() for f in explain.findings)
    assert evaluate(policy, relay[1], OUTSIDE, relay[0]).action is Action.HOLD
    assert explain.verdict.action is Action.HOLD


def test_a_long_table_below_the_ceiling_is_read_whole(tmp_path: Path) -> None:
    """A 2,500-row ledger reaches nothing on its first rows: every row is read, and the
    findings are those of one plain pass."""
    from sendguard.inspect import detect_context, parse_and_detect

    policy = load_policy(_policy(tmp_path, _POLICY))
    raw = build_message(attachments=[Attachment("l.xlsx", _ledger(2500, 1))])
    detectors = build(policy.detector_settings, enabled=policy.enabled_detectors())
    stop = early_stop(policy, OUTSIDE)
    assert stop is not None
    ctx = detect_context(OUTSIDE, policy.organisation)
    mail = parse_message(raw, LIMITS)
    assert row_prefix(mail) is not None  # long enough to be cut
    assert parse_and_detect(raw, LIMITS, detectors, ctx, stop) == parse_and_detect(
        raw, LIMITS, detectors, ctx
    )
