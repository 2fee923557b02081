"""Signed links in notices: one action on one message, expiring, single-use, never a GET.

A link is ``BASE/review/link/TOKEN``; the token is an itsdangerous timed signature (HMAC
with the link key, `sendguard.web.keys`) over the action, the queue id and a random nonce.
Opening it shows a confirmation page; only the POST from that page acts, and the store
records the nonce (`Store.use_once`) before acting, so a replayed link changes nothing.
Who acts is not in the link: it is the entry's sender as
the relay verified it (`link_actor`), and the review rules decide as for anyone else.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Literal, get_args

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from sendguard.entry import Entry, NoticeKind
from sendguard.notify.settings import Language
from sendguard.policy.people import People
from sendguard.review.actor import Actor

LinkAction = Literal["cancel", "send_now", "confirm", "request_review"]
LINK_ACTIONS: tuple[LinkAction, ...] = get_args(LinkAction)
_SALT = "sendguard-link-v1"


class LinkError(Exception):
    """The link cannot be used; `why` is ``expired`` or ``invalid`` (forged or altered)."""

    def __init__(self, why: Literal["expired", "invalid"]) -> None:
        super().__init__(why)
        self.why = why


@dataclass(frozen=True, slots=True)
class Link:
    """What a verified token says."""

    action: LinkAction
    queue_id: str
    nonce: str


class LinkSigner:
    """Makes and checks signed links for one base URL."""

    def __init__(self, key: bytes, base_url: str, *, hours: float) -> None:
        self._serializer = URLSafeTimedSerializer(key, salt=_SALT)
        self.base_url = base_url.rstrip("/")
        self.max_age = int(hours * 3600)
        self.hours = hours

    def token(self, action: LinkAction, queue_id: str) -> str:
        """A fresh signed token (a new nonce each time)."""
        payload = {"a": action, "q": queue_id, "n": secrets.token_urlsafe(12)}
        return self._serializer.dumps(payload)

    def url(self, action: LinkAction, queue_id: str) -> str:
        """The link to put in a notice."""
        return f"{self.base_url}/review/link/{self.token(action, queue_id)}"

    def console_url(self, queue_id: str) -> str:
        """The console page of one message (sign-in required; not an action)."""
        return f"{self.base_url}/review/q/{queue_id}"

    def read(self, token: str) -> Link:
        """The link `token` names; `LinkError` when forged, altered or expired."""
        try:
            payload = self._serializer.loads(token, max_age=self.max_age)
        except SignatureExpired:
            raise LinkError("expired") from None
        except BadSignature:
            raise LinkError("invalid") from None
        if not isinstance(payload, dict):
            raise LinkError("invalid")
        action, queue_id, nonce = payload.get("a"), payload.get("q"), payload.get("n")
        if action not in LINK_ACTIONS or not isinstance(queue_id, str):
            raise LinkError("invalid")
        if not isinstance(nonce, str) or not nonce:
            raise LinkError("invalid")
        return Link(action=action, queue_id=queue_id, nonce=nonce)

    def notice_links(self, kind: NoticeKind, entry: Entry, language: Language) -> str:
        """The block of links for notice `kind` in `language` ("" when it has none)."""
        lines = [
            f"{_LABELS[language][action]}:\n  {self.url(action, entry.id)}"
            for action in _ACTIONS_BY_KIND.get(kind, ())
            if action != "confirm" or entry.verdict.hold.self_release
        ]
        if kind in ("reviewers", "reminder", "escalation"):
            lines.append(f"{_LABELS[language]['open']}:\n  {self.console_url(entry.id)}")
            return "\n".join(lines)
        if not lines:
            return ""
        note = _NOTE[language].format(hours=f"{self.hours:g}")
        return "\n".join(lines) + "\n" + note


_ACTIONS_BY_KIND: dict[str, tuple[LinkAction, ...]] = {
    "delayed": ("send_now", "cancel"),
    "held": ("confirm", "request_review"),
}
_LABELS: dict[Language, dict[str, str]] = {
    "ja": {
        "send_now": "今すぐ送信する",
        "cancel": "送信を取り消す",
        "confirm": "内容を確認して自分で送信する",
        "request_review": "承認者に確認を依頼する",
        "open": "送信ガードの確認画面で開く",
    },
    "en": {
        "send_now": "Send it now",
        "cancel": "Cancel sending",
        "confirm": "Confirm and send it yourself",
        "request_review": "Ask the reviewers to decide",
        "open": "Open it in the sendguard console",
    },
}
_NOTE: dict[Language, str] = {
    "ja": "(リンクは確認画面を開くだけです。画面のボタンを押すまで何も変わりません。"
    "有効期限は {hours} 時間、1回限りです。)",
    "en": "(A link only opens a confirmation page; nothing changes until you press its "
    "button. Valid for {hours} hours, once.)",
}


def link_actor(entry: Entry, people: People) -> Actor:
    """The sender of `entry` as the relay verified it, acting through a signed link.

    Authenticated mail: the AUTH login (and its ``[people]`` entry). Mail from a trusted
    network: the one listed person owning the envelope sender, else the address itself.
    """
    env = entry.envelope
    if env.auth_user:
        login = env.auth_user.strip().casefold()
        return Actor(login=login, person=people.person(login), verified_by="link")
    address = env.mail_from.strip().casefold()
    owners = people.by_address(address)
    if len(owners) == 1:
        return Actor(login=owners[0].login, person=owners[0], verified_by="link")
    return Actor(login=address, person=people.person(address), verified_by="link")
