"""Act on a verdict's header edits: Bcc removal, tag headers and the To/Cc → Bcc rewrite.

Called by `sendguard.pipeline` for pass/tag/rewrite verdicts and by the queue worker when a
held or delayed message (whose verdict may carry a rewrite) is released. The envelope is
the truth: every envelope recipient still receives the message; only what the headers show
changes. First, a ``Bcc:``/``Resent-Bcc:`` field the client left in the message is removed
(Postfix's cleanup does the same; ``bcc_header=keep`` keeps it), whatever the verdict.
External addresses leave To/Cc and Resent-To/Resent-Cc; To becomes
``undisclosed-recipients:;`` or the sender when nobody visible is left, or, in ``split``
mode, each external recipient gets a copy showing only their own address. Bytes outside the
changed fields are identical; new fields are prepended.
"""

from __future__ import annotations

import re

import structlog

from sendguard.actions.headers import (
    HeaderBlock,
    RawField,
    field_value,
    format_mailbox,
    render_field,
    render_simple,
    split_headers,
)
from sendguard.detect.domains import is_internal
from sendguard.model import (
    Action,
    Address,
    Envelope,
    HeaderField,
    Organisation,
    Outgoing,
    RewriteMode,
    Verdict,
)
from sendguard.parse.addresses import parse_address_header

log = structlog.get_logger(__name__)

UNDISCLOSED = "undisclosed-recipients:;"
_MAX_ADDRESSES = 100_000  # far above any intake limit: never truncate what we must hide
_BCC_FIELDS = frozenset({"bcc", "resent-bcc"})
# Cheap C-level look-outs, so a message without Bcc is never split into fields or copied
# (a leading literal newline lets `re` skip ahead; the first line is matched on its own).
_BCC_FIRST = re.compile(rb"(?:resent-)?bcc[ \t]*:", re.I)
_BCC_LINE = re.compile(rb"\n(?:resent-)?bcc[ \t]*:", re.I)


def remove_bcc(data: bytes) -> tuple[bytes, int]:
    """*data* without its top-level Bcc:/Resent-Bcc: fields, and how many were removed.

    Continuation lines leave with their field; every other byte is kept, and a message
    without such a field is returned as the very same object.
    """
    end = data.find(b"\n\r\n")
    end = len(data) if end < 0 else end
    lf_only = data.find(b"\n\n", 0, end)  # a message with bare LF line endings
    end = end if lf_only < 0 else lf_only
    if _BCC_FIRST.match(data) is None and _BCC_LINE.search(data, 0, end) is None:
        return data, 0
    drop = [f for f in split_headers(data).fields if f.name.lower() in _BCC_FIELDS]
    if not drop:
        return data, 0
    out = bytearray()
    pos = 0
    for field in drop:
        out += data[pos : field.start]
        pos = field.end
    out += data[pos:]
    return bytes(out), len(drop)


def apply_verdict(
    data: bytes,
    verdict: Verdict,
    envelope: Envelope,
    organisation: Organisation,
    *,
    keep_bcc: bool = False,
) -> tuple[Outgoing, ...]:
    """The copies to deliver for a verdict; PASS returns the original bytes untouched,
    except for a Bcc:/Resent-Bcc: field, which is removed unless *keep_bcc*. Live mail and
    released held or delayed mail (its stored verdict) go through this one function."""
    if verdict.action is Action.REJECT:
        raise ValueError("a rejected message is never delivered")
    if not keep_bcc:
        data, removed = remove_bcc(data)
        if removed:
            log.info("bcc_header_removed", fields=removed)
    tags = verdict.tag_headers
    if verdict.action is Action.TAG and not tags:
        tags = (("X-Sendguard-Verdict", f"tag; rule={verdict.rule_id or 'none'}"),)
    mode: RewriteMode | None = verdict.rewrite
    if verdict.action is Action.REWRITE and mode is None:
        mode = "undisclosed"
    if mode is None and not tags:
        return (Outgoing(envelope.rcpt_tos, data),)
    block = split_headers(data)
    prefix = b"".join(render_simple(name, value, block.eol) for name, value in tags)
    if mode is None:
        return (Outgoing(envelope.rcpt_tos, prefix + data),)
    editor = _Editor(data, block, organisation, envelope, verdict, mode)
    if mode != "split":
        return (Outgoing(envelope.rcpt_tos, prefix + editor.rewrite(own=None)),)
    external = tuple(r for r in envelope.rcpt_tos if not is_internal(r, organisation))
    internal = tuple(r for r in envelope.rcpt_tos if is_internal(r, organisation))
    copies = [Outgoing((rcpt,), prefix + editor.rewrite(own=rcpt)) for rcpt in external]
    if internal:
        copies.append(Outgoing(internal, prefix + editor.rewrite(own=None)))
    return tuple(copies)


class _Editor:
    """Rewrites the To/Cc/Bcc fields of one message; the parse is shared by every copy."""

    def __init__(
        self,
        data: bytes,
        block: HeaderBlock,
        organisation: Organisation,
        envelope: Envelope,
        verdict: Verdict,
        mode: RewriteMode,
    ) -> None:
        self.data = data
        self.block = block
        self.mode = mode
        self.envelope = envelope
        self.rule_id = verdict.rule_id or "none"
        self.unreadable = 0
        self.to_fields = self._fields("to")
        self.cc_fields = self._fields("cc")
        self.bcc_fields = self._fields("bcc")
        to = self._addresses(self.to_fields, "to")
        cc = self._addresses(self.cc_fields, "cc")
        bcc = self._addresses(self.bcc_fields, "bcc")
        self.kept_to = [a for a in to if is_internal(a.addr_spec, organisation)]
        self.kept_cc = [a for a in cc if is_internal(a.addr_spec, organisation)]
        # Entries our strict parser could not read are dropped too: a malformed field may
        # still show an outside address to a person, so it never counts as "clean".
        self.removed = (
            len(to) + len(cc) + len(bcc) - len(self.kept_to) - len(self.kept_cc) + self.unreadable
        )
        self.names = {a.addr_spec.lower(): a.display_name for a in (*to, *cc)}
        # Resent-To/Resent-Cc are shown to every recipient too: each such field keeps only
        # its internal addresses, in place (a message resent twice has one per block).
        self.resent: dict[int, bytes] = {}
        for field in self.block.fields:
            name = field.name.lower()
            if name not in ("resent-to", "resent-cc"):
                continue
            before = self.unreadable
            found = self._addresses([field], "resent-to" if name == "resent-to" else "resent-cc")
            kept = [a for a in found if is_internal(a.addr_spec, organisation)]
            dropped = len(found) - len(kept) + self.unreadable - before
            if dropped:
                self.removed += dropped
                items = [format_mailbox(a.display_name, a.addr_spec) for a in kept]
                label = "Resent-To" if name == "resent-to" else "Resent-Cc"
                self.resent[field.start] = render_field(label, items, block.eol) if items else b""

    def _fields(self, name: str) -> list[RawField]:
        return [f for f in self.block.fields if f.name.lower() == name]

    def _addresses(self, fields: list[RawField], kind: HeaderField) -> list[Address]:
        found: list[Address] = []
        for field in fields:
            value = field_value(self.data, field)
            addresses, problems = parse_address_header(value, kind, max_addresses=_MAX_ADDRESSES)
            found.extend(addresses)
            self.unreadable += len(problems)
        return found

    def _placeholder(self) -> str:
        if self.mode == "sender" and self.envelope.mail_from:
            return format_mailbox("", self.envelope.mail_from)
        return UNDISCLOSED

    def rewrite(self, *, own: str | None) -> bytes:
        """The message with external addresses hidden; ``own`` = the split copy's recipient."""
        eol = self.block.eol
        if own is not None:
            to_items = [format_mailbox(self.names.get(own.lower(), ""), own)]
        else:
            to_items = [format_mailbox(a.display_name, a.addr_spec) for a in self.kept_to]
            if not to_items:
                to_items = [self._placeholder()]
        if own is None and self.removed == 0 and not self.bcc_fields and not self.resent:
            return self.data  # nothing outside is visible: leave the bytes alone
        new_to = render_field("To", to_items, eol)
        cc_items = [format_mailbox(a.display_name, a.addr_spec) for a in self.kept_cc]
        new_cc = render_field("Cc", cc_items, eol) if cc_items else b""
        replace: dict[int, bytes] = {
            f.start: b"" for f in (*self.to_fields, *self.cc_fields, *self.bcc_fields)
        }
        replace.update(self.resent)
        if self.to_fields:
            replace[self.to_fields[0].start] = new_to
            if self.cc_fields:
                replace[self.cc_fields[0].start] = new_cc
        elif self.cc_fields:
            replace[self.cc_fields[0].start] = new_to + new_cc
        out = bytearray()
        pos = 0
        for field in self.block.fields:
            if field.start in replace:
                out += self.data[pos : field.start] + replace[field.start]
                pos = field.end
        if not self.to_fields and not self.cc_fields:
            out += self.data[pos : self.block.end] + new_to
            pos = self.block.end
        out += self.data[pos:]
        note = f"to-cc-to-bcc; mode={self.mode}; removed={self.removed}; rule={self.rule_id}"
        return render_simple("X-Sendguard-Rewritten", note, eol) + bytes(out)
