"""How queue values become database columns and back, shared by both store backends.

Envelope and verdict are stored as JSON (pydantic's adapters for the frozen model types, so
the full trace round-trips) and carry a blob schema version (``"v"``; a blob without one is
version 1); message bytes are optionally sealed with AES-256-GCM, bound to
the queue id so a ciphertext cannot be moved to another row; audit records are hashed in a
canonical form so any later change breaks the chain.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import TypeAdapter, ValidationError
from ulid import ULID

from sendguard.entry import STATES, Entry, State
from sendguard.errors import ConfigError, StoreError
from sendguard.model import Action, Envelope, Verdict
from sendguard.queue.auditkey import AuditKey
from sendguard.queue.store import AuditCheck, AuditHead, AuditRecord, CorruptEntry

_ENVELOPE = TypeAdapter(Envelope)
_VERDICT = TypeAdapter(Verdict)
_PLAIN = b"\x00"
_SEALED = b"\x01"
GENESIS = "0" * 64
"""`prev_hash` of the first audit record."""
BLOB_VERSION = 2
"""Schema version written into every envelope and verdict blob. 1: the bare JSON object (rows
written before versions existed); 2: the same object with ``"v": 2`` as its first key."""
_READABLE_BLOB_VERSIONS = (1, 2)

ENTRY_COLUMNS = (
    "id, state, envelope, verdict, created_at, updated_at, size, release_at, expires_at, "
    "released_at, attempts, next_attempt_at, last_error, approvals, decided_by, decided_at, "
    "reason, claimed_by, claim_until, delivered_to, quarantined_from, mail_from, rule_id"
)
"""Columns in the order `entry_from_row` reads them (``data`` may follow as the last one)."""
INSERT_COLUMNS = f"{ENTRY_COLUMNS}, auth_user, transaction_id, data"
"""Columns `enqueue` writes, in order."""


def new_queue_id(now: dt.datetime) -> str:
    """A sortable, unguessable id: a ULID (48-bit milliseconds + 80 random bits, Crockford
    base32, 26 characters).

    Fresh random bits for every id, not `ULID.from_datetime`: python-ulid's default generator
    adds 1 to the previous id within a millisecond (guessable from a neighbour), and a
    generator with its pure-random policy costs ~13 % more per id than this.
    """
    stamp = int(now.timestamp() * 1000).to_bytes(6, "big")
    return str(ULID.from_bytes(stamp + os.urandom(10)))


def dump_envelope(envelope: Envelope) -> str:
    """Envelope as versioned JSON text."""
    return _versioned(_ENVELOPE.dump_json(envelope))


def dump_verdict(verdict: Verdict) -> str:
    """Verdict with its full trace as versioned JSON text."""
    return _versioned(_VERDICT.dump_json(verdict))


def _versioned(body: bytes) -> str:
    # A dataclass always dumps as a non-empty JSON object: put the version first in it.
    return f'{{"v":{BLOB_VERSION},{body.decode()[1:]}'


def _load_blob(adapter: TypeAdapter[Any], text: object, what: str, queue_id: str) -> Any:
    """A versioned (or version-1) blob; `CorruptEntry` saying what is wrong, not what it holds."""
    try:
        value = json.loads(text if isinstance(text, str | bytes) else str(text))
    except ValueError as exc:
        raise CorruptEntry(queue_id, f"{what} is not JSON ({type(exc).__name__})") from exc
    if not isinstance(value, dict):
        raise CorruptEntry(queue_id, f"{what} is not a JSON object")
    version = value.pop("v", 1)
    if version not in _READABLE_BLOB_VERSIONS:
        raise CorruptEntry(
            queue_id,
            f"{what} has blob schema version {version!r}; this sendguard reads "
            f"{', '.join(map(str, _READABLE_BLOB_VERSIONS))} (written by a newer sendguard?)",
        )
    try:
        return adapter.validate_python(value)
    except ValidationError as exc:
        # Only where it failed: the error's own text quotes the values (addresses, evidence).
        where = ".".join(str(p) for p in exc.errors()[0]["loc"]) or "top level"
        raise CorruptEntry(
            queue_id, f"{what} does not decode ({exc.error_count()} errors, first at {where})"
        ) from exc


def dump_approvals(approvals: tuple[str, ...]) -> str:
    """Approvals as a JSON array."""
    return json.dumps(list(approvals), ensure_ascii=False)


def aware(value: dt.datetime | str | None) -> dt.datetime | None:
    """A database time value as aware UTC (SQLite gives ISO text, PostgreSQL datetimes)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def iso(value: dt.datetime | None) -> str | None:
    """A time as fixed-width ISO text in UTC, so text comparison orders it (SQLite)."""
    if value is None:
        return None
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")


def entry_from_row(row: tuple[Any, ...], data: bytes = b"") -> Entry:
    """Build an `Entry` from columns in `ENTRY_COLUMNS` order; `CorruptEntry` if it cannot be."""
    queue_id = str(row[0])
    state = _state(row[1], queue_id, "state")
    quarantined = None if row[20] is None else _state(row[20], queue_id, "quarantined_from")
    try:
        created = aware(row[4])
        updated = aware(row[5])
        if created is None or updated is None:
            raise CorruptEntry(queue_id, "it has no timestamps")
        return Entry(
            id=queue_id,
            state=state,
            envelope=_load_blob(_ENVELOPE, row[2], "envelope", queue_id),
            verdict=_load_blob(_VERDICT, row[3], "verdict", queue_id),
            data=data,
            created_at=created,
            updated_at=updated,
            size=int(row[6]),
            release_at=aware(row[7]),
            expires_at=aware(row[8]),
            released_at=aware(row[9]),
            attempts=int(row[10]),
            next_attempt_at=aware(row[11]),
            last_error=str(row[12] or ""),
            approvals=_strings(row[13], queue_id, "approvals"),
            decided_by=row[14],
            decided_at=aware(row[15]),
            reason=str(row[16] or ""),
            claimed_by=row[17],
            claim_until=aware(row[18]),
            delivered_to=_strings(row[19], queue_id, "delivered_to"),
            quarantined_from=quarantined,
        )
    except (ValueError, TypeError) as exc:  # a time or number column that does not parse
        raise CorruptEntry(queue_id, f"a column does not decode ({type(exc).__name__})") from exc


def _state(value: object, queue_id: str, column: str) -> State:
    text = str(value)
    for state in STATES:
        if state == text:
            return state
    raise CorruptEntry(queue_id, f"{column} {text[:20]!r} is not a known state")


def _strings(text: object, queue_id: str, column: str) -> tuple[str, ...]:
    try:
        value = json.loads(str(text or "[]"))
    except ValueError as exc:
        raise CorruptEntry(queue_id, f"{column} is not JSON") from exc
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise CorruptEntry(queue_id, f"{column} is not a list of strings")
    return tuple(value)


def corrupt_stand_in(row: tuple[Any, ...], problem: str) -> Entry:
    """What `list` and `get` show for a row that cannot be decoded: state ``corrupt``, the
    problem as its reason, and only the plain columns that still read (sender, rule, size)."""

    def safely(read: Any, default: Any) -> Any:
        try:
            value = read()
        except (ValueError, TypeError):
            return default
        return default if value is None else value

    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    # Already moved aside: the state it came from is in its own column.
    stored = str(row[20] if str(row[1]) == "corrupt" else row[1])
    return Entry(
        id=str(row[0]),
        state="corrupt",
        envelope=Envelope(mail_from=str(row[21] or ""), rcpt_tos=()),
        verdict=Verdict(action=Action.HOLD, rule_id=row[22], reason="unreadable queue entry"),
        data=b"",
        created_at=safely(lambda: aware(row[4]), epoch),
        updated_at=safely(lambda: aware(row[5]), epoch),
        size=safely(lambda: int(row[6]), 0),
        attempts=safely(lambda: int(row[10]), 0),
        last_error=str(row[12] or ""),
        reason=problem,
        quarantined_from=next((s for s in STATES if s == stored and s != "corrupt"), None),
    )


@dataclass(frozen=True, slots=True)
class Sealer:
    """Seals message bytes for storage; with no key they are stored as they are."""

    key: bytes | None

    @property
    def key_id(self) -> bytes:
        """First 8 bytes of the key's SHA-256: tells a wrong key from a corrupt row."""
        return hashlib.sha256(self.key or b"").digest()[:8]

    def seal(self, queue_id: str, data: bytes) -> bytes:
        """Bytes to store for `data` of entry `queue_id`."""
        if self.key is None:
            return _PLAIN + data
        nonce = os.urandom(12)
        sealed = AESGCM(self.key).encrypt(nonce, data, queue_id.encode())
        return _SEALED + self.key_id + nonce + sealed

    def open(self, queue_id: str, stored: bytes) -> bytes:
        """The original bytes of entry `queue_id`; `CorruptEntry` with the reason if not possible.

        The first byte is the data blob's format version: 0 plain, 1 sealed (key id, nonce,
        AES-GCM)."""
        stored = bytes(stored)
        if stored[:1] == _PLAIN:
            return stored[1:]
        if stored[:1] != _SEALED:
            raise CorruptEntry(queue_id, "the stored message has an unknown format")
        if self.key is None:
            raise CorruptEntry(
                queue_id, "the message is encrypted; set SENDGUARD_QUEUE__ENCRYPTION_KEY"
            )
        if stored[1:9] != self.key_id:
            raise CorruptEntry(
                queue_id,
                "the message was encrypted with a different key "
                "(wrong SENDGUARD_QUEUE__ENCRYPTION_KEY)",
            )
        try:
            return AESGCM(self.key).decrypt(stored[9:21], stored[21:], queue_id.encode())
        except InvalidTag as exc:
            raise CorruptEntry(queue_id, "the stored message is corrupt (bad tag)") from exc


def canonical_details(details: Mapping[str, object]) -> str:
    """Details as canonical JSON (sorted keys, no spaces): what is stored and hashed."""
    return json.dumps(
        dict(details), sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )


def chain_hash(
    prev_hash: str,
    *,
    seq: int,
    at: dt.datetime,
    event: str,
    actor: str,
    queue_id: str | None,
    transaction_id: str | None,
    details: str,
) -> str:
    """SHA-256 over the previous hash and every field of the record."""
    body = json.dumps(
        [seq, iso(at), event, actor, queue_id, transaction_id, details],
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


def keyed_hash(
    key: AuditKey,
    prev_hash: str,
    *,
    seq: int,
    at: dt.datetime,
    event: str,
    actor: str,
    queue_id: str | None,
    transaction_id: str | None,
    details: str,
) -> str:
    """HMAC-SHA256 (audit key) over the previous hash and every field of a ``v = 2`` record."""
    body = json.dumps(
        [2, key.key_id, seq, iso(at), event, actor, queue_id, transaction_id, details],
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return key.mac((prev_hash + body).encode())


def record_hash(record: AuditRecord, key: AuditKey | None) -> str:
    """What `record.hash` must be, by its version (`AuditKeyError` if the key is needed)."""
    fields = {
        "seq": record.seq,
        "at": record.at,
        "event": record.event,
        "actor": record.actor,
        "queue_id": record.queue_id,
        "transaction_id": record.transaction_id,
        "details": record.details,
    }
    if record.v == 1:
        return chain_hash(record.prev_hash, **fields)  # type: ignore[arg-type]
    if key is None:
        raise AuditKeyError(
            f"audit records from {record.seq} on are keyed (HMAC): the audit key is needed to"
            " check them; set SENDGUARD_AUDIT_KEY to the relay's key file"
        )
    if record.key_id != key.key_id:
        raise AuditKeyError(
            f"audit record {record.seq} was made with audit key {record.key_id}, not with"
            f" {key.key_id} from {key.path or 'the given key'}: wrong SENDGUARD_AUDIT_KEY?"
        )
    return keyed_hash(key, record.prev_hash, **fields)  # type: ignore[arg-type]


class AuditKeyError(ConfigError):
    """The audit key needed to check or extend the chain is missing or is another key."""


@dataclass
class ChainWalk:
    """Checks the chain batch by batch (`feed`), then the anchored heads (`finish`)."""

    key: AuditKey | None
    heads: Sequence[AuditHead] = ()
    prev_hash: str = GENESIS
    prev_seq: int = 0
    keyed_from: int | None = None
    seen_heads: set[int] = field(default_factory=set)

    def _fail(self, seq: int, problem: str) -> AuditCheck:
        return AuditCheck(False, self.prev_seq, seq, problem, keyed_from=self.keyed_from)

    def feed(self, records: list[AuditRecord]) -> AuditCheck | None:
        """Check one batch against the chain so far; a failed `AuditCheck`, or None."""
        for record in records:
            if record.seq != self.prev_seq + 1:
                return self._fail(record.seq, f"record {self.prev_seq + 1} missing")
            if record.prev_hash != self.prev_hash:
                return self._fail(
                    record.seq, f"record {record.seq} does not follow record {self.prev_seq}"
                )
            if record.v not in (1, 2):
                return self._fail(record.seq, f"record {record.seq} has unknown version {record.v}")
            if record.v == 1 and self.keyed_from is not None:
                return self._fail(
                    record.seq,
                    f"record {record.seq} is unkeyed after keyed records: the chain was"
                    " rewritten without the audit key",
                )
            if record_hash(record, self.key) != record.hash:
                return self._fail(
                    record.seq, f"record {record.seq} was changed after it was written"
                )
            if record.v == 2 and self.keyed_from is None:
                self.keyed_from = record.seq
            for i, head in enumerate(self.heads):
                if head.seq in (record.seq, 0) and head.hash == record.hash:
                    self.seen_heads.add(i)
                elif head.seq == record.seq:
                    return self._fail(
                        record.seq,
                        f"record {record.seq} is not the anchored head {head.hash[:16]}…:"
                        " the log was rewritten from here",
                    )
            self.prev_hash, self.prev_seq = record.hash, record.seq
        return None

    def finish(self) -> AuditCheck:
        """The result once every record was fed: anchored heads missing mean truncation."""
        for i, head in enumerate(self.heads):
            if i in self.seen_heads:
                continue
            where = f"record {head.seq}" if head.seq else f"a record with hash {head.hash[:16]}…"
            return AuditCheck(
                False,
                self.prev_seq,
                head.seq or None,
                f"the anchored head ({where}) is not in the log, which ends at record"
                f" {self.prev_seq}: records were cut off or the chain was rewritten",
                keyed_from=self.keyed_from,
            )
        if self.key is not None and self.prev_seq and self.keyed_from is None:
            return AuditCheck(
                False,
                self.prev_seq,
                self.prev_seq,
                f"the newest record {self.prev_seq} is unkeyed although an audit key is given:"
                " the chain was rewritten without the key (or no relay has run with the key"
                " since the upgrade: start `sendguard serve` once, it seals the chain)",
            )
        return AuditCheck(
            True, self.prev_seq, keyed_from=self.keyed_from, anchors=len(self.seen_heads)
        )


def audit_from_row(row: tuple[Any, ...]) -> AuditRecord:
    """Build an `AuditRecord` from (seq, at, event, actor, queue_id, transaction_id,
    details, prev_hash, hash[, v, key_id])."""
    at = aware(row[1])
    if at is None:
        raise StoreError(f"audit record {row[0]} has no time")
    return AuditRecord(
        seq=int(row[0]),
        at=at,
        event=str(row[2]),
        actor=str(row[3]),
        queue_id=row[4],
        transaction_id=row[5],
        details=str(row[6]),
        prev_hash=str(row[7]),
        hash=str(row[8]),
        v=int(row[9]) if len(row) > 9 else 1,
        key_id=row[10] if len(row) > 10 else None,
    )
