"""The SMTP reply for a reject verdict: 550 5.7.1 (or 451 4.7.1 with soft reject).

Called by `sendguard.pipeline` when the verdict is REJECT. The text names the deciding rule,
a short ASCII reason and a reference the admin can search the logs and audit trail for.
It never echoes message content: the reason comes from the policy (validated ASCII) or from
detector/code ids, and everything is forced to printable ASCII on one line anyway.
"""

from __future__ import annotations

import re

from sendguard.model import Reply, Verdict

_NOT_PRINTABLE = re.compile(r"[^\x20-\x7e]+")


def _ascii(text: str, limit: int) -> str:
    return _NOT_PRINTABLE.sub("?", text).strip()[:limit]


def reject_reply(verdict: Verdict, reference: str, *, soft: bool) -> Reply:
    """``550 5.7.1 Rejected by policy rule R: reason (ref X)``; 451 4.7.1 when ``soft``."""
    rule = _ascii(verdict.rule_id or "policy", 64)
    reason = _ascii(verdict.reason or "rejected by policy", 120)
    ref = _ascii(reference, 64) or "none"
    if soft:
        return Reply(451, f"4.7.1 Deferred by policy rule {rule}: {reason} (ref {ref})")
    return Reply(550, f"5.7.1 Rejected by policy rule {rule}: {reason} (ref {ref})")
