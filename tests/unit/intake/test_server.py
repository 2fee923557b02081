"""`RelaySMTP.clone` builds what `RelaySMTP(...)` builds: nothing of one connection is shared
with another, except what aiosmtpd derives from the handler once (read-only)."""

from __future__ import annotations

import collections
import types
import weakref
from typing import Any

from sendguard.intake.handler import IntakeOptions, RelayHandler
from sendguard.intake.server import Intake, RelaySMTP

# Derived once from the arguments and the handler, only ever read: shared by design.
SHARED = {"loop", "_loop", "event_handler", "_intake", "_handle_hooks", "_auth_callback"}
IMMUTABLE = (type(None), bool, int, float, str, tuple)


HANDLER = RelayHandler(
    None,  # type: ignore[arg-type]  # no message goes through
    IntakeOptions(trusted_networks=(), max_recipients=10, max_message_size=1000),
)


def _build(intake: Intake) -> RelaySMTP:
    return RelaySMTP(
        intake,
        HANDLER,
        hostname="relay.test",
        decode_data=False,
        enable_SMTPUTF8=True,
        data_size_limit=1000,
        timeout=5,
        reply_deadline=3,
    )


def _same_method(got: Any, expected: Any, owner: object) -> bool:
    if isinstance(expected, types.MethodType) and expected.__self__ is not owner:
        return bool(got == expected)  # the handler's own method
    return isinstance(got, types.MethodType) and got.__func__ is expected.__func__


async def test_clone_starts_like_a_freshly_built_protocol() -> None:
    """Every attribute of a clone equals a fresh instance's; every mutable one, every
    method bound to the instance and every asyncio object is the clone's own."""
    intake = Intake(_build)
    prototype, fresh = _build(intake), _build(intake)
    clone = prototype.clone()
    assert vars(clone).keys() == vars(fresh).keys()
    for name, expected in vars(fresh).items():
        got, original = vars(clone)[name], vars(prototype)[name]
        if name in SHARED:
            assert got is original, name
        elif isinstance(expected, IMMUTABLE):
            assert got == expected, name
        else:
            assert got is not original, f"{name} is shared with the prototype"
            if isinstance(expected, types.MethodType):
                assert got.__self__ is clone and _same_method(got, expected, fresh), name
            elif isinstance(expected, weakref.ref):
                assert got() is vars(clone)["_strong_reader"], name
            elif isinstance(expected, collections.defaultdict):
                assert dict(got) == dict(expected) and got["MAIL"] == expected["MAIL"], name
            elif name == "_smtp_methods":
                assert got.keys() == expected.keys()
                assert all(m.__self__ is clone for m in got.values())
                assert all(_same_method(got[k], expected[k], fresh) for k in got)
            elif name == "_auth_methods":
                assert got.keys() == expected.keys()
                for key, attr in got.items():
                    assert attr.is_builtin == expected[key].is_builtin
                    assert _same_method(attr.method, expected[key].method, fresh), key
            else:
                assert type(got) is type(expected), name


async def test_one_connection_changes_nothing_for_the_next() -> None:
    """What one connection does to its limits and state is not seen by the next clone."""
    intake = Intake(_build)
    first = intake._protocol()
    first.command_size_limits["MAIL"] += 36
    first._in_flight.add(None)  # type: ignore[arg-type]
    second = intake._protocol()
    assert second.command_size_limits["MAIL"] == 512
    assert second._in_flight == set() and not second.busy
