"""Value types of the correspondent history: what is recorded and what detectors see.

They live here, beside `sendguard.model`, because parse and the detectors name them; the
`sendguard.history` package that records and looks them up sits above the queue.

Addresses are kept as written (lower-cased): explanations need them ("you have written to
t***@tanaka-shoji.co.jp 12 times") and the store is on premises beside the queue, which
holds whole messages. Thread ids (Message-ID, In-Reply-To, References) are only compared,
never shown, so they are stored as keyed hashes (`thread_key`).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

_MSGID = re.compile(r"<[^<>\s]+>")


def message_ids(text: str) -> tuple[str, ...]:
    """The ``<id>`` tokens of a Message-ID, In-Reply-To or References value, in order."""
    return tuple(_MSGID.findall(text))


def thread_key(message_id: str, key: bytes = b"") -> str:
    """A keyed hash of one message id: equal ids give equal keys; the id itself is not kept."""
    digest = hashlib.blake2b(
        message_id.strip().encode("utf-8", "surrogateescape"),
        digest_size=16,
        key=key[:64],
        person=b"sg-thread",
    )
    return digest.hexdigest()


def name_key(display_name: str) -> str:
    """A display name as compared: NFKC, case-folded, without spaces, dots or quotes
    (``田中 太郎``, ``田中太郎`` and ``"Tanaka, Taro"`` → comparable forms)."""
    text = unicodedata.normalize("NFKC", display_name).casefold()
    return re.sub(r"[\s.,'\"()・　]+", "", text)


@dataclass(frozen=True, slots=True)
class Recipient:
    """One external recipient of a delivered message."""

    address: str
    """``local@domain`` lower-cased, domain in A-label form."""
    domain: str
    """Registrable domain (``mail.tanaka.co.jp`` → ``tanaka.co.jp``)."""
    name: str = ""
    """`name_key` of the display name the sender used in To/Cc ("" when none)."""

    @property
    def local(self) -> str:
        """The local part."""
        return self.address.rpartition("@")[0]


@dataclass(frozen=True, slots=True)
class Delivery:
    """One delivered message as the history records it (no content, no internal recipients)."""

    key: str
    """Idempotency key: the same message recorded twice (an import run again) counts once."""
    sender: str
    """The authenticated identity where there is one, else the envelope sender (lower case)."""
    at: datetime
    recipients: tuple[Recipient, ...]
    threads: tuple[str, ...] = ()
    """`thread_key`s of its Message-ID, In-Reply-To and References."""


@dataclass(frozen=True, slots=True)
class Known:
    """A known correspondent of the sender (or of the organisation), for explanations."""

    address: str
    count: int
    name: str = ""


@dataclass(frozen=True, slots=True)
class HistorySnapshot:
    """What the history says about one message's sender and external recipients.

    Built by `lookup.History.snapshot` (or read from a JSON file for ``policy explain``);
    every mapping covers only this message's external recipients.
    """

    sender: str
    sender_messages: int = 0
    """Distinct external correspondents this sender has on record, counted up to 1000 (a
    new employee or a cold start has few: first contacts then mean little)."""
    written: Mapping[str, int] = field(default_factory=dict)
    """Recipient address → messages this sender has sent to it."""
    domains: Mapping[str, int] = field(default_factory=dict)
    """Recipient registrable domain → messages anyone here has sent there."""
    same_local: Mapping[str, tuple[Known, ...]] = field(default_factory=dict)
    """New recipient address → the sender's correspondents at other domains with its local part."""
    same_name: Mapping[str, tuple[Known, ...]] = field(default_factory=dict)
    """New recipient address → the sender's correspondents at other domains with its name."""
    neighbours: Mapping[str, tuple[Known, ...]] = field(default_factory=dict)
    """Recipient registrable domain → addresses there anyone here has written to (capped)."""
    thread_known: bool = False
    """The message replies to (or references) a message the history has recorded."""
    thread_domains: frozenset[str] = frozenset()
    """Registrable domains that took part in that thread."""

    def to_json(self) -> dict[str, object]:
        """A JSON-able form (``history snapshot`` writes it, ``policy explain`` reads it)."""

        def known(m: Mapping[str, tuple[Known, ...]]) -> dict[str, list[list[object]]]:
            return {k: [[x.address, x.count, x.name] for x in v] for k, v in m.items()}

        return {
            "sender": self.sender,
            "sender_messages": self.sender_messages,
            "written": dict(self.written),
            "domains": dict(self.domains),
            "same_local": known(self.same_local),
            "same_name": known(self.same_name),
            "neighbours": known(self.neighbours),
            "thread_known": self.thread_known,
            "thread_domains": sorted(self.thread_domains),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> HistorySnapshot:
        """Read what `to_json` wrote; ValueError on a malformed value."""

        def known(value: object) -> dict[str, tuple[Known, ...]]:
            if not isinstance(value, dict):
                return {}
            return {
                str(k): tuple(Known(str(a), int(n), str(nm)) for a, n, nm in v)
                for k, v in value.items()
            }

        def counts(value: object) -> dict[str, int]:
            return {str(k): int(v) for k, v in value.items()} if isinstance(value, dict) else {}

        try:
            threads = data.get("thread_domains", [])
            return cls(
                sender=str(data.get("sender", "")),
                sender_messages=int(str(data.get("sender_messages", 0))),
                written=counts(data.get("written")),
                domains=counts(data.get("domains")),
                same_local=known(data.get("same_local")),
                same_name=known(data.get("same_name")),
                neighbours=known(data.get("neighbours")),
                thread_known=bool(data.get("thread_known", False)),
                thread_domains=frozenset(str(d) for d in threads)
                if isinstance(threads, list)
                else frozenset(),
            )
        except (TypeError, ValueError) as exc:
            raise ValueError(f"not a history snapshot: {exc}") from exc
