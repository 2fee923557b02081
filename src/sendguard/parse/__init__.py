"""parse stage: message bytes → read-only `Mail` view (addresses, parts, text, tables).

Flow inside `parse_message`, each step bounded by `ParseLimits`:

1. size check on the raw bytes;
2. `headers.split_headers` + `headers.read_addresses`: our own header splitter and
   address tokenizer (never `email.utils`), so addresses survive even when the body is
   hostile;
3. `mime.precheck`: nesting depth and part count measured on the raw bytes, before the
   stdlib parser (which breaks on deep nesting) ever runs;
4. `mime.walk_message` → `extract.extract` for every leaf: sniff by magic bytes, read text
   and tables, recurse into ZIPs, forwarded messages and TNEF.

Nothing here raises for bad input: every limit hit, encrypted or unreadable thing is a
`Problem`, and a spent time budget is a ``timeout`` problem. The function is synchronous
and pure, meant to run in an `ExtractionPool` worker that can be killed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from sendguard.correspondence import message_ids
from sendguard.model import Address, CellDigest, HeaderField, Mail
from sendguard.parse import mime
from sendguard.parse.addresses import parse_addr_spec, parse_address_header, registrable_domain
from sendguard.parse.context import BudgetExceeded, Context, StopScan
from sendguard.parse.headers import (
    HeaderAddresses,
    Headers,
    header_text,
    read_addresses,
    split_headers,
)
from sendguard.parse.limits import ParseLimits
from sendguard.parse.pool import ExtractionPool

__all__ = [
    "ExtractionPool",
    "ParseLimits",
    "parse_addr_spec",
    "parse_address_header",
    "parse_message",
    "registrable_domain",
]


def parse_message(
    data: bytes,
    limits: ParseLimits,
    *,
    stop: Callable[[Mail], bool] | None = None,
    cells_gate: Callable[[CellDigest], bool] | None = None,
    row_cap: int | None = None,
) -> Mail:
    """Build the read-only view of one message; never raises for bad input.

    ``stop`` (the relay's early stop) is asked, while leaves remain, about a view of the
    message holding only the parts read since it was last asked; when it answers True the
    remaining leaves are not read and the view says `Mail.stopped_early`. ``cells_gate``
    (the relay): see `Context.cells_gate`. ``row_cap`` (the relay, with ``stop``): a long
    table is read first to its first rows and kept so when those already make ``stop``
    answer True (`Context.row_cap`; the view then says `Mail.rows_cut`)."""
    ctx = Context.start(limits)
    ctx.cells_gate = cells_gate
    headers, too_big = split_headers(data, limits.max_header_bytes)
    if too_big:
        ctx.add("limit", "header-size", "message", f"header > {limits.max_header_bytes} bytes")
    addresses = read_addresses(headers, limits.max_addresses)
    ctx.problems.extend(addresses.problems)
    if len(data) > limits.max_message_bytes:
        detail = f"{len(data)} bytes > limit {limits.max_message_bytes}"
        ctx.add("limit", "message-size", "message", detail)
    elif not too_big:
        if stop is not None:
            headed = _mail(data, headers, addresses, ctx)
            ctx.stop = lambda parts: stop(replace(headed, parts=parts))
            ctx.row_cap = row_cap
        _read_body(data, ctx)
    return _mail(data, headers, addresses, ctx)


def _read_body(data: bytes, ctx: Context) -> None:
    """Steps 3 and 4; a spent budget or an internal failure becomes a problem."""
    try:
        issue = mime.precheck(data, ctx.limits)
        if issue is not None:
            ctx.problems.append(issue)
            return
        mime.walk_message(mime.parse_bytes(data), (), ctx, 0)
    except StopScan:
        ctx.stopped = True
    except BudgetExceeded:
        detail = f"parsing took more than {ctx.limits.time_budget_seconds} s"
        ctx.add("timeout", "time-budget", "message", detail)
    except RecursionError:
        ctx.add("limit", "mime-depth", "message", "structure too deep to parse")
    except Exception as exc:  # noqa: BLE001 - fail closed: a bug must not let mail pass unread
        ctx.add("malformed", "parser-error", "message", type(exc).__name__)


def _field(addresses: HeaderAddresses, *fields: HeaderField) -> tuple[Address, ...]:
    return tuple(a for f in fields for a in addresses.by_field.get(f, ()))


def _mail(data: bytes, headers: Headers, addresses: HeaderAddresses, ctx: Context) -> Mail:
    return Mail(
        subject=header_text(headers.first("subject")),
        from_=_field(addresses, "from", "sender"),
        to=_field(addresses, "to"),
        cc=_field(addresses, "cc"),
        bcc=_field(addresses, "bcc"),
        reply_to=_field(addresses, "reply-to"),
        resent_to=_field(addresses, "resent-to"),
        resent_cc=_field(addresses, "resent-cc"),
        message_id=headers.first("message-id").strip(),
        in_reply_to=message_ids(headers.first("in-reply-to")),
        references=message_ids(" ".join(headers.get_all("references"))),
        parts=tuple(ctx.parts),
        problems=tuple(ctx.problems),
        header_bytes=headers.size,
        size=len(data),
        stopped_early=ctx.stopped,
        rows_cut=(ctx.row_cap or 0) if ctx.rows_cut else 0,
    )
