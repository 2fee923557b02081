"""The DATA payload prepared a piece at a time is the payload prepared at once: the same bytes,
and the same refusal of bare line endings, wherever the pieces are cut."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from sendguard.deliver.smtp import dot_stuffed, stuffed_pieces
from sendguard.parse.lines import has_bare_line_ending

# Lines made of the characters that matter here: dots, CR, LF, and something else.
_DATA = st.lists(st.sampled_from([b".", b"\r", b"\n", b"\r\n", b"a", b"..", b"\r\n."]), max_size=60)


@settings(max_examples=400, deadline=None)
@given(parts=_DATA, piece=st.integers(min_value=1, max_value=12))
def test_pieces_join_to_the_whole_payload(parts: list[bytes], piece: int) -> None:
    data = b"".join(parts)
    pieces = asyncio.run(stuffed_pieces(data, piece))
    if has_bare_line_ending(data):
        assert pieces is None
    else:
        assert pieces is not None
        assert b"".join(pieces) == dot_stuffed(data)


def test_a_big_message_yields_to_the_event_loop_between_pieces() -> None:
    """Other connections of the process run while a big payload is prepared."""
    data = b"".join(b".line %d\r\n" % i for i in range(200_000))  # ~2.5 MB, leading dots

    async def run() -> tuple[list[bytes] | None, int]:
        ticks = 0
        done = asyncio.Event()

        async def other_connection() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0)

        other = asyncio.create_task(other_connection())
        await asyncio.sleep(0)
        pieces = await stuffed_pieces(data, 64 * 1024)
        done.set()
        await other
        return pieces, ticks

    pieces, ticks = asyncio.run(run())
    assert pieces is not None and len(pieces) > 30
    assert b"".join(pieces) == dot_stuffed(data)
    assert ticks >= len(pieces) - 1  # the other task ran between pieces
