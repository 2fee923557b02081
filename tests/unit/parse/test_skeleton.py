"""The MIME fast paths give exactly the stdlib parse of the original bytes (issue 12).

`parse_bytes` feeds the parser a skeleton (long base64 runs as one placeholder line each) and
puts the runs back; `precheck` finds its regex matches from literal starts; `payload_bytes`
validates base64 without a regex and decodes with pybase64. Each is compared here with the
reference it replaces, on the vendored corpus, on every evaluation case that has a message,
and on generated messages built to put runs where the parser gives lines a meaning.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from email.message import Message

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sendguard import compat
from sendguard.parse import mime, skeleton
from sendguard.parse.limits import ParseLimits
from tests.conftest import CORPUS
from tests.eval.evaluate import all_cases
from tests.eval.mime import message_bytes

CORPUS_FILES = sorted(
    p for p in CORPUS.rglob("*") if p.is_file() and p.name not in ("LICENSE", "SOURCE")
)


def _shape(message: Message) -> list[object]:
    """Everything the parser decided, in order: headers, preamble, epilogue, defects, texts."""
    out: list[object] = []
    stack: list[Message] = [message]
    while stack:
        part = stack.pop()
        payload = compat.parsed_payload(part)
        out.append(
            (
                part.items(),
                part.get_unixfrom(),
                part.preamble,
                part.epilogue,
                [type(d).__name__ for d in part.defects],
                payload if isinstance(payload, str) else len(payload or ()),
            )
        )
        if isinstance(payload, list):
            stack.extend(reversed(payload))
    return out


def _reference(data: bytes) -> Message:
    return mime._feed(data, 1 << 16)


def _same_parse(data: bytes) -> None:
    assert _shape(mime.parse_bytes(data)) == _shape(_reference(data))


@pytest.fixture
def short_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Collapse runs of 2+ lines, so small messages exercise the skeleton too."""
    monkeypatch.setattr(skeleton, "MIN_RUN_LINES", 1)


def test_long_attachment_is_collapsed_and_restored() -> None:
    """A 300 KB attachment: the parser sees a skeleton of a few hundred bytes, the payload
    comes back byte for byte."""
    blob = bytes(range(256)) * 1200
    data = _message([("application/octet-stream", _b64(blob, 76))])
    shell = skeleton.collapse(data)
    assert shell is not None and len(shell.runs) == 1 and len(shell.text) < 1000
    parsed = mime.parse_bytes(data)
    assert _shape(parsed) == _shape(_reference(data))
    leaf = parsed.get_payload()[0]
    assert mime.payload_bytes(leaf, "x") == (blob, None)


def test_corpus_parses_the_same(short_runs: None) -> None:
    """Every corpus message (CRLF, as sent) parses to the same tree both ways."""
    collapsed = 0
    for path in CORPUS_FILES:
        raw = path.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        collapsed += skeleton.collapse(raw) is not None
        _same_parse(raw)
    assert collapsed > 10  # the corpus does exercise the skeleton


def test_evaluation_messages_parse_the_same(short_runs: None) -> None:
    """Every evaluation case with an attachment, as its message: the same tree both ways."""
    count = collapsed = 0
    for case in all_cases():
        if case.content is None or not case.fmt:
            continue
        data = message_bytes(case)
        collapsed += skeleton.collapse(data) is not None
        _same_parse(data)
        count += 1
    assert count > 80 and collapsed > 40


def _b64(data: bytes, width: int, eol: bytes = b"\r\n") -> bytes:
    text = base64.b64encode(data)
    return b"".join(text[i : i + width] + eol for i in range(0, len(text), width))


def _message(parts: list[tuple[str, bytes]], boundary: str = "b1") -> bytes:
    head = f'Content-Type: multipart/mixed; boundary="{boundary}"\r\nSubject: t\r\n\r\n'
    body = [head.encode()]
    for ctype, payload in parts:
        cte = "base64" if not ctype.startswith(("multipart", "message")) else "7bit"
        body.append(
            f"--{boundary}\r\nContent-Type: {ctype}\r\n"
            f"Content-Transfer-Encoding: {cte}\r\n\r\n".encode()
        )
        body.append(payload)
    body.append(f"--{boundary}--\r\n".encode())
    return b"".join(body)


_RUN = st.builds(
    _b64,
    st.one_of(st.binary(max_size=60), st.binary(min_size=150, max_size=600)),
    st.sampled_from([40, 57, 60, 64, 76]),
    st.sampled_from([b"\r\n", b"\r\n", b"\n"]),
)
_TYPES = st.sampled_from(
    [
        "application/octet-stream",
        "text/plain",
        "message/rfc822",
        "message/delivery-status",
        "multipart/mixed",
        "multipart/alternative; boundary=b2",
    ]
)
_NOISE = st.sampled_from(
    [b"", b"\r\n", b"--b1\r\n", b"--b2\r\n", b"--b1--\r\n", b"X-A: 1\r\n", b" cont\r\n", b"-x\r\n"]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(_TYPES, st.lists(st.one_of(_RUN, _NOISE), min_size=1, max_size=5)),
        min_size=1,
        max_size=4,
    ),
    st.one_of(st.just(b""), _RUN),
    st.one_of(st.just(b""), _RUN),
)
def test_generated_messages_parse_the_same(
    parts: list[tuple[str, list[bytes]]], preamble: bytes, epilogue: bytes
) -> None:
    """Runs in bodies, nested messages, delivery-status blocks, preambles and epilogues, next
    to boundaries, blank lines and headers: always the tree of the original bytes."""
    saved = skeleton.MIN_RUN_LINES
    skeleton.MIN_RUN_LINES = 1
    try:
        data = _message([(t, b"".join(chunks)) for t, chunks in parts])
        head, _, rest = data.partition(b"\r\n\r\n")
        _same_parse(head + b"\r\n\r\n" + preamble + rest + epilogue)
        _same_parse(data[: len(data) // 2])  # cut short: no closing boundary
    finally:
        skeleton.MIN_RUN_LINES = saved


def test_run_in_a_preamble_falls_back(short_runs: None) -> None:
    """A placeholder the parser puts in a preamble is not restored: the bytes are parsed."""
    run = _b64(b"x" * 300, 60)
    data = (
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n' + run + b"--b\r\n\r\nhi\r\n--b--\r\n"
    )
    shell = skeleton.collapse(data)
    assert shell is not None
    assert not skeleton.restore(_reference(shell.text), shell, data)
    _same_parse(data)


def test_token_is_never_one_the_message_holds(
    short_runs: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A message that holds the first token drawn gets another one."""
    taken = "0" * 32
    draws = [taken, "1" * 32]
    monkeypatch.setattr(skeleton.secrets, "token_hex", lambda _n: draws.pop(0) if draws else taken)
    data = b"Subject: " + taken.encode() + b"\r\n\r\n" + _b64(b"y" * 400, 64)
    shell = skeleton.collapse(data)
    assert shell is not None and shell.token == "1" * 32
    monkeypatch.undo()
    _same_parse(data)


def test_foreign_placeholder_is_refused(short_runs: None) -> None:
    """A placeholder with this skeleton's token but a number it never made: refused."""
    data = b"Subject: s\r\n\r\n" + _b64(b"z" * 400, 64) + b"end\r\n"
    shell = skeleton.collapse(data)
    assert shell is not None
    forged = shell.text.replace(b"00000000Z", b"00000007Z")
    assert not skeleton.restore(_reference(forged), shell, data)


# --- precheck: matches found from literal starts are the regex's own ------------------------


def _old_precheck_matches(data: bytes) -> tuple[list[bytes], list[tuple[int, int]], int]:
    boundaries = [a or b for a, b in mime._BOUNDARY.findall(data)]
    delimiters = [m.span() for m in mime._DELIMITER.finditer(data)]
    return boundaries, delimiters, len(mime._RFC822.findall(data))


def _new_precheck_matches(data: bytes) -> tuple[list[bytes], list[tuple[int, int]], int]:
    named, heads = mime._ci_starts(data, b"boundary", b"content-type:")
    found = mime._matches(mime._BOUNDARY, data, named)
    delimiters = mime._matches(mime._DELIMITER, data, mime._delimiter_starts(data))
    return (
        [m.group(1) or m.group(2) for m in found],
        [m.span() for m in delimiters],
        sum(1 for _ in mime._matches(mime._RFC822, data, mime._line_starts(data, heads))),
    )


_PIECES = st.sampled_from(
    [
        b"boundary=",
        b"BoUnDaRy = ",
        b'boundary="q',
        b'"',
        b"boundaryboundary=x",
        b"\n--",
        b"\r\n--b--",
        b"--",
        b"Content-Type: message/rfc822",
        b"content-TYPE:\r\n message/RFC822",
        b"\n",
        b"\r",
        b" ",
        b"x",
        b"b",
        b";",
    ]
)


@settings(max_examples=500, deadline=None)
@given(st.lists(_PIECES, max_size=40), st.integers(min_value=1, max_value=9))
def test_precheck_matches_are_the_regexes_own(pieces: list[bytes], chunk: int) -> None:
    """Same boundaries, delimiter lines and forwarded-message count as `finditer`, also when
    a needle straddles the lowering chunks (chunks of a few bytes here)."""
    data = b"".join(pieces)
    saved = mime._CI_CHUNK
    mime._CI_CHUNK = chunk
    try:
        assert _new_precheck_matches(data) == _old_precheck_matches(data)
    finally:
        mime._CI_CHUNK = saved


def test_precheck_limits_still_hold() -> None:
    """Depth and part limits are still found on a large message (chunked search)."""
    nested = b"".join(
        f'--b{n}\r\nContent-Type: multipart/mixed; boundary="b{n + 1}"\r\n\r\n'.encode()
        for n in range(40)
    )
    data = b'Content-Type: multipart/mixed; boundary="b0"\r\n\r\n' + b"A" * 3_000_000 + nested
    problem = mime.precheck(data, ParseLimits.model_validate({"max_mime_depth": 20}))
    assert problem is not None and problem.code == "mime-depth"


# --- payload_bytes: pybase64 and the translate check against the regex and binascii ---------

_OLD_OK = re.compile(rb"[A-Za-z0-9+/]*={0,2}")


def _old_payload(raw: bytes) -> tuple[bytes, bool]:
    cleaned = raw.translate(None, b" \t\n\r\x0b\x0c")
    bad = False
    if not _OLD_OK.fullmatch(cleaned) or len(cleaned.rstrip(b"=")) % 4 == 1:
        bad = True
        cleaned = re.sub(rb"[^A-Za-z0-9+/]", b"", cleaned)
        cleaned = cleaned[: len(cleaned) - len(cleaned) % 4]
    try:
        return binascii.a2b_base64(cleaned + b"=" * (-len(cleaned) % 4)), bad
    except binascii.Error:
        return b"", True


def _cases() -> Iterator[st.SearchStrategy[bytes]]:
    yield st.binary(max_size=200).map(base64.b64encode)
    yield st.text("ABCab019+/=\r\n -_*", max_size=120).map(str.encode)
    yield st.binary(max_size=120).map(lambda b: base64.b64encode(b).rstrip(b"="))
    yield st.binary(max_size=120).map(lambda b: base64.b64encode(b) + b"=")


@settings(max_examples=1000, deadline=None)
@given(st.one_of(*_cases()))
def test_payload_bytes_decodes_as_before(raw: bytes) -> None:
    """Same bytes and the same bad-base64 verdict as the regex + binascii implementation."""
    part = Message()
    part["Content-Transfer-Encoding"] = "base64"
    part.set_payload(raw.decode("ascii"))
    data, problem = mime.payload_bytes(part, "x")
    assert (data, problem is not None) == _old_payload(raw)


@pytest.mark.timeout(60)
def test_many_blank_lines_before_long_lines_stay_linear() -> None:
    """A message of blank lines each followed by a 40-character line (every one a candidate
    that is no run) is read in one pass: with a look at the rest of the message per
    candidate this 11 MB message would take minutes (quadratic), not a fraction of a second."""
    data = b"Subject: s\r\n\r\n" + b"\r\n\r\n".join([b"A" * 40] * 250_000) + b"\r\n"
    assert skeleton.collapse(data) is None
    aligned = b"Subject: s\r\n\r\n" + (b"A" * 40 + b"\r\n") * 200_000
    shell = skeleton.collapse(aligned)
    assert shell is not None and shell.runs == ((14, 14 + 199_999 * 42),)


def test_run_is_proven_piece_by_piece(monkeypatch: pytest.MonkeyPatch) -> None:
    """A character outside the alphabet deep in a long run, past the first proof piece:
    no run."""
    monkeypatch.setattr(skeleton, "_PROOF_PIECE", 42 * 100)
    lines = [b"A" * 40] * 1000
    lines[700] = b"A" * 39 + b"-"
    data = b"Subject: s\r\n\r\n" + b"\r\n".join(lines) + b"\r\n"
    assert skeleton.collapse(data) is None
    lines[700] = b"A" * 40
    shell = skeleton.collapse(b"Subject: s\r\n\r\n" + b"\r\n".join(lines) + b"\r\n")
    assert shell is not None and len(shell.runs) == 1
