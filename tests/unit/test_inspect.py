"""Inspector and inspect_sync: real parsing, real detectors, the policy's verdict."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from sendguard.errors import InspectionError, InspectionTimeout
from sendguard.inspect import _NOT_PLAIN, Inspector, inspect_sync, is_plain
from sendguard.model import Action, Envelope
from sendguard.parse.limits import ParseLimits
from sendguard.parse.pool import ExtractionPool
from sendguard.policy.holder import PolicyHolder
from sendguard.policy.load import load_policy

SHIPPED = Path(__file__).resolve().parents[2] / "policies"
FIXTURES = SHIPPED / "tests"
LIMITS = ParseLimits.model_validate({})
SENDER = "tanaka@example.co.jp"

# DNS answers nothing on this closed loopback port: the DNS detector reports a dns-error
# quickly and the tests never depend on the machine's resolver or network.
NO_DNS = """
[detectors.unresolvable-domain]
nameservers = ["127.0.0.1"]
port = 9
query_timeout = 0.2
budget = 0.5
"""

WARN_LOOKALIKE = (
    NO_DNS
    + """
[organisation]
internal_domains = ["example.co.jp"]

[[rule]]
id = "hold-lookalike"
description = "Hold lookalike domains (trial)"
mode = "warn"
action = "hold"
when.any = [{ detector = "lookalike-domain" }]
"""
)


def _message(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@pytest.fixture
def shipped(tmp_path: Path) -> Path:
    """The shipped policy plus the no-DNS detector settings."""
    directory = tmp_path / "policies"
    directory.mkdir()
    (directory / "default.toml").write_bytes((SHIPPED / "default.toml").read_bytes())
    (directory / "dns.toml").write_text(NO_DNS, encoding="utf-8")
    return directory


@pytest.fixture
async def pool() -> AsyncIterator[ExtractionPool]:
    """One real extraction worker process."""
    extraction = ExtractionPool(workers=1)
    try:
        yield extraction
    finally:
        await extraction.close()


async def test_inspector_in_process_holds_a_customer_list(shipped: Path) -> None:
    """Without a pool, parse + detectors run in-process and the policy holds the list."""
    inspector = Inspector(policy=PolicyHolder(shipped), limits=LIMITS)
    envelope = Envelope(SENDER, ("contact@agency.example",))
    inspection = await inspector.inspect(envelope, _message("customer-list.eml"))
    assert inspection.verdict.action is Action.HOLD
    assert inspection.verdict.rule_id == "hold-customer-list-external"
    assert inspection.verdict.hold.reviewers == ("security@example.co.jp",)
    codes = {(f.detector, f.code) for f in inspection.findings}
    assert ("personal-data", "customer-list") in codes
    assert inspection.mail.subject == "顧客リスト送付"
    assert inspection.verdict.trace.findings == inspection.findings
    assert inspection.organisation.internal_domains == frozenset(
        {"example.co.jp", "example-group.jp"}
    )


async def test_inspector_with_pool_uses_one_worker_round_trip(
    pool: ExtractionPool, shipped: Path
) -> None:
    """With a pool, the same verdict comes back from the worker process."""
    inspector = Inspector(policy=PolicyHolder(shipped), limits=LIMITS, pool=pool)
    envelope = Envelope(SENDER, tuple(f"user{i}@client{i}.example" for i in range(12)))
    inspection = await inspector.inspect(envelope, _message("many-customers.eml"))
    assert inspection.verdict.action is Action.REWRITE
    assert len(inspection.mail.to) == 12


async def test_spooled_message_is_read_by_the_worker_from_its_file(
    pool: ExtractionPool, shipped: Path, tmp_path: Path
) -> None:
    """Given the spool file, the worker reads the message there and judges it as it judges
    the bytes; a file that is gone, or holds other than the octets received, fails closed."""
    inspector = Inspector(policy=PolicyHolder(shipped), limits=LIMITS, pool=pool)
    envelope = Envelope(SENDER, ("contact@agency.example",))
    data = _message("customer-list.eml")
    spooled = tmp_path / "msg.spool"
    spooled.write_bytes(data)
    from_file = await inspector.inspect(envelope, data, spooled=spooled)
    from_bytes = await inspector.inspect(envelope, data)
    assert from_file.verdict.action is Action.HOLD
    assert from_file.findings == from_bytes.findings
    assert from_file.mail == from_bytes.mail
    spooled.write_bytes(data[:-1])
    with pytest.raises(InspectionError, match="spool file holds"):
        await inspector.inspect(envelope, data, spooled=spooled)
    spooled.write_bytes(data + b"x")
    with pytest.raises(InspectionError, match="spool file holds"):
        await inspector.inspect(envelope, data, spooled=spooled)
    spooled.unlink()
    with pytest.raises(InspectionError, match="FileNotFoundError"):
        await inspector.inspect(envelope, data, spooled=spooled)


async def test_inspector_timeout_fails_closed(pool: ExtractionPool, shipped: Path) -> None:
    """A worker that overruns its budget raises InspectionTimeout (never a pass)."""
    inspector = Inspector(
        policy=PolicyHolder(shipped), limits=LIMITS, pool=pool, content_timeout=0.000001
    )
    with pytest.raises(InspectionTimeout):
        await inspector.inspect(Envelope(SENDER, ("a@agency.example",)), _message("ppap.eml"))


async def test_warn_mode_passes_and_logs_the_would_be_action(tmp_path: Path) -> None:
    """A warn-mode rule lets the mail pass and logs policy_rule_warned with the would-be action."""
    (tmp_path / "p.toml").write_text(WARN_LOOKALIKE, encoding="utf-8")
    inspector = Inspector(policy=PolicyHolder(tmp_path), limits=LIMITS)
    with capture_logs() as logs:
        inspection = await inspector.inspect(
            Envelope(SENDER, ("sato@gmial.com",)), _message("lookalike.eml")
        )
    assert inspection.verdict.action is Action.PASS
    assert inspection.verdict.warned == ("hold-lookalike",)
    [event] = [e for e in logs if e["event"] == "policy_rule_warned"]
    assert (event["rule"], event["would_be"], event["actual"]) == ("hold-lookalike", "hold", "pass")
    assert event["findings"] == ["lookalike-domain/lookalike"]


async def test_inspector_follows_a_reload(tmp_path: Path) -> None:
    """After a reload the next message is judged by the new policy."""
    (tmp_path / "p.toml").write_text(WARN_LOOKALIKE, encoding="utf-8")
    holder = PolicyHolder(tmp_path)
    inspector = Inspector(policy=holder, limits=LIMITS)
    envelope = Envelope(SENDER, ("sato@gmial.com",))
    assert (
        await inspector.inspect(envelope, _message("lookalike.eml"))
    ).verdict.action is Action.PASS
    (tmp_path / "p.toml").write_text(WARN_LOOKALIKE.replace('"warn"', '"enforce"'), "utf-8")
    assert holder.reload()
    verdict = (await inspector.inspect(envelope, _message("lookalike.eml"))).verdict
    assert (verdict.action, verdict.trace.policy_version) == (Action.HOLD, holder.current.version)


def test_inspect_sync_offline_notes_skipped_network_detectors() -> None:
    """inspect_sync offline says which detectors did not run and still decides."""
    inspection = inspect_sync(
        Envelope(SENDER, ("contact@agency.example",)),
        _message("ppap.eml"),
        load_policy(SHIPPED),
        LIMITS,
        offline=True,
    )
    assert inspection.notes == ("offline: network detectors not run (unresolvable-domain)",)
    assert inspection.verdict.rule_id == "hold-encrypted-attachment"
    assert not any(f.detector == "unresolvable-domain" for f in inspection.findings)


def test_disabled_detector_does_not_run(tmp_path: Path) -> None:
    """A detector switched off in the policy produces no findings and is noted."""
    (tmp_path / "p.toml").write_text(
        'allow_empty = true\n[organisation]\ninternal_domains = ["example.co.jp"]\n'
        "[detectors.lookalike-domain]\nenabled = false\n",
        encoding="utf-8",
    )
    inspection = inspect_sync(
        Envelope(SENDER, ("sato@gmial.com",)),
        _message("lookalike.eml"),
        load_policy(tmp_path),
        LIMITS,
        offline=True,
    )
    assert not any(f.detector == "lookalike-domain" for f in inspection.findings)
    assert any(f.detector == "external-recipients" for f in inspection.findings)
    assert inspection.notes[0] == "disabled by the policy: lookalike-domain"


@pytest.mark.parametrize(
    ("data", "plain"),
    [
        (b"Subject: x\r\nContent-Type: text/plain; charset=iso-2022-jp\r\n\r\nhi\r\n", True),
        (b"Content-type:\r\n text/html\r\n\r\n<p>hi</p>\r\n", True),
        (
            b"Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\n"
            b"Content-Type: text/html\r\n\r\nhi\r\n--b--\r\n",
            True,
        ),
        (
            b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n"
            b"Content-Type: application/zip; name=a.zip\r\n",
            False,
        ),
        (b"Content-Type: text/plain\r\nContent-Disposition: attachment; filename=a.csv\r\n", False),
        (b"Content-Type: message/rfc822\r\n\r\n", False),
        (
            b"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\nUEsDBA==\r\n",
            True,
        ),
        (b"Content-Type: text/plain\r\nContent-Transfer-Encoding: Quoted-Printable\r\n\r\n", True),
        (b"Content-Type: text/csv; name*=UTF-8''%E9%A1%A7.csv\r\n\r\n", False),
    ],
)
def test_only_text_is_inspected_inline(data: bytes, plain: bool) -> None:
    """Attachments, files and forwarded messages always go to the abandonable pool."""
    assert is_plain(data) is plain


_PLAIN_PIECES = [
    b"Content-Type: ",
    b"CONTENT-DISPOSITION:",
    b"content-type:",
    b"text/plain",
    b"multipart/",
    b"alternative",
    b"mixed",
    b"application/pdf",
    b"attachment",
    b" name=",
    b"NAME*=",
    b"xname=",
    b"_name=",
    b"filename=",
    b"Name",
    b"\r\n",
    b"\n",
    b"\r",
    b" ",
    b"\t",
    b"=?UTF-8?B?",
    b"a",
    b"\xe3\x81\x82",
    b"Content-",
    b"name",
]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(_PLAIN_PIECES), st.binary(max_size=6)), max_size=30))
def test_is_plain_decides_as_the_whole_message_search(pieces: list[bytes]) -> None:
    """The literal pre-test answers exactly as `_NOT_PLAIN.search` over every position."""
    data = b"".join(pieces)
    assert is_plain(data) is (_NOT_PLAIN.search(data) is None)


def test_is_plain_decides_as_the_whole_message_search_on_the_corpus() -> None:
    corpus = sorted((Path(__file__).resolve().parents[1] / "corpus").rglob("*.eml"))
    assert len(corpus) > 50
    answers = set()
    for path in corpus:
        data = path.read_bytes()
        for variant in (data, data.upper(), data.lower()):
            answers.add(is_plain(variant))
            assert is_plain(variant) is (_NOT_PLAIN.search(variant) is None), path.name
    assert answers == {True, False}


async def test_archive_hidden_in_a_text_part_is_reinspected_in_the_pool(tmp_path: Path) -> None:
    """A base64 "text" part that is really a ZIP bomb hits the inline limits and is inspected
    again in the pool with the real limits: the verdict sees it as uninspectable."""
    import base64

    from tests.support.attachments import nested_zip_bomb

    bomb = base64.encodebytes(nested_zip_bomb()).replace(b"\n", b"\r\n")
    data = (
        b"From: a@example.co.jp\r\nTo: b@example.com\r\nSubject: x\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + bomb
    )
    assert is_plain(data) and len(data) < 64 * 1024
    policy_dir = tmp_path / "p"
    policy_dir.mkdir()
    (policy_dir / "p.toml").write_text(
        'allow_empty = true\n[organisation]\ninternal_domains = ["example.co.jp"]\n'
        "[detectors.unresolvable-domain]\nenabled = false\n"
    )
    pool = ExtractionPool(workers=1)
    try:
        inspector = Inspector(policy=PolicyHolder(policy_dir), limits=ParseLimits(), pool=pool)
        envelope = Envelope(mail_from="a@example.co.jp", rcpt_tos=("b@example.com",))
        result = await inspector.inspect(envelope, data)
    finally:
        await pool.close()
    assert result.mail.problems, "the bomb must be reported, not silently read"
    assert any(f.detector == "uninspectable-attachment" for f in result.findings)
