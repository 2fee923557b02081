"""Signed links: what they name, when they stop working, who acts through them."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import replace

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from sendguard.entry import Entry
from sendguard.model import Action, HoldParams
from sendguard.policy.people import build_people
from sendguard.web.links import LinkError, LinkSigner, link_actor
from tests.support.store import sample_envelope, sample_message, sample_verdict

KEY = bytes(range(32))
NOW = dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC)


def _entry(state: str = "delayed", *, self_release: bool = False, auth: str | None = "tanaka"
           ) -> Entry:  # fmt: skip
    action = Action.DELAY if state == "delayed" else Action.HOLD
    verdict = sample_verdict(action, hold=HoldParams(reviewers=("boss@corp.example",),
                                                     self_release=self_release))  # fmt: skip
    return Entry(id="20261120-abc", state=state, envelope=sample_envelope(auth_user=auth),  # type: ignore[arg-type]
                 data=sample_message(), verdict=verdict, created_at=NOW, updated_at=NOW,
                 size=10)  # fmt: skip


def test_a_link_names_one_action_on_one_message() -> None:
    signer = LinkSigner(KEY, "https://sendguard.corp.example/", hours=72)
    url = signer.url("cancel", "20261120-abc")
    assert url.startswith("https://sendguard.corp.example/review/link/")
    link = signer.read(url.rsplit("/", 1)[1])
    assert (link.action, link.queue_id) == ("cancel", "20261120-abc")
    assert signer.read(signer.token("cancel", "x")).nonce != link.nonce  # never the same twice


def test_forged_altered_and_expired_links_are_refused() -> None:
    signer = LinkSigner(KEY, "https://x.example", hours=1)
    token = signer.token("send_now", "q1")
    forged = URLSafeTimedSerializer(b"another key", salt="sendguard-link-v1").dumps(
        {"a": "send_now", "q": "q1", "n": "n"}
    )
    with pytest.raises(LinkError) as caught:
        signer.read(forged)
    assert caught.value.why == "invalid"
    # The payload is signed: any edit breaks it. (Not the token's last character: base64's
    # final character may carry only padding bits, so changing it can leave the bytes alone.)
    for at in (5, token.index(".") + 3, len(token) - 6):
        altered = token[:at] + ("A" if token[at] != "A" else "B") + token[at + 1 :]
        with pytest.raises(LinkError):
            signer.read(altered)

    class Old(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - 7200

    old = URLSafeTimedSerializer(KEY, salt="sendguard-link-v1", signer=Old).dumps(
        {"a": "cancel", "q": "q1", "n": "n"}
    )
    with pytest.raises(LinkError) as caught:
        signer.read(old)
    assert caught.value.why == "expired"
    unknown = URLSafeTimedSerializer(KEY, salt="sendguard-link-v1").dumps(
        {"a": "delete", "q": "q1", "n": "n"}
    )
    with pytest.raises(LinkError):
        signer.read(unknown)  # a validly signed link for an action links never do


def test_notices_get_the_links_of_their_kind_in_each_language() -> None:
    signer = LinkSigner(KEY, "https://s.example", hours=72)
    delayed = signer.notice_links("delayed", _entry("delayed"), "ja")
    assert "今すぐ送信する" in delayed and "送信を取り消す" in delayed and "72 時間" in delayed
    held = signer.notice_links("held", _entry("held"), "en")
    assert "Ask the reviewers" in held and "Confirm and send it yourself" not in held
    own = signer.notice_links("held", _entry("held", self_release=True), "ja")
    assert "内容を確認して自分で送信する" in own
    reviewers = signer.notice_links("reviewers", _entry("held"), "ja")
    assert "https://s.example/review/q/20261120-abc" in reviewers
    assert signer.notice_links("rejected", _entry("held"), "ja") == ""


def test_the_link_acts_as_the_verified_sender() -> None:
    people = build_people(
        {
            "tanaka": (("tanaka@corp.example",), "sender"),
            "boss": (("boss@corp.example",), "reviewer"),
        },
        ["corp.example"],
    )
    by_login = link_actor(_entry(auth="Tanaka"), people)
    assert (by_login.login, by_login.verified_by, by_login.person.listed) == (
        "tanaka",
        "link",
        True,
    )
    by_address = link_actor(_entry(auth=None), people)  # trusted network: the MAIL FROM
    assert by_address.login == "tanaka" and by_address.role == "sender"
    stranger = replace(_entry(auth=None), envelope=sample_envelope("ext@corp.example",
                                                                   auth_user=None))  # fmt: skip
    actor = link_actor(stranger, people)
    assert actor.login == "ext@corp.example" and not actor.is_admin
