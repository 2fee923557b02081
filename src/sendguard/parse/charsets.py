"""Byte → text decoding for headers and bodies, tuned for Japanese office mail.

Sits under every reader in `sendguard.parse`: RFC 2047 encoded words in headers, declared
MIME charsets on bodies, CSV files with no declaration at all. Japanese mail is full of
mislabelled text (Shift_JIS sent as ``iso-2022-jp``, CP932-only characters such as ①
declared as ``shift_jis``), so a declared charset is tried first, strictly, and anything
that fails falls back to detection rather than to mojibake or an exception.
"""

from __future__ import annotations

import binascii
import codecs
import re
import unicodedata

# Declared name → codecs to try in order. CP932 is a superset of Shift_JIS that Windows
# actually writes (NEC/IBM extensions), and the ISO-2022-JP extensions cover half-width
# kana and JIS X 0212 that Outlook and old Becky! emit under the plain label.
_JAPANESE_CHAINS: dict[str, tuple[str, ...]] = {
    "shift_jis": ("cp932", "shift_jis_2004"),
    "iso2022_jp": ("iso2022_jp", "iso2022_jp_ext", "iso2022_jp_2004", "iso2022_jp_3"),
    "euc_jp": ("euc_jp", "euc_jis_2004", "cp932"),
    "cp932": ("cp932", "shift_jis_2004"),
}
_JAPANESE_LEGACY = frozenset({"cp932", "euc_jp", "iso2022_jp"})
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_ENCODED_WORD = re.compile(r"=\?([^?\s]{1,64})\?([bBqQ])\?([^?\s]*)\?=")
_DETECT_SAMPLE = 64 * 1024


def codec_chain(declared: str | None) -> tuple[str, ...]:
    """Codecs to try, strictly, for a declared charset label; () when unknown or absent."""
    if not declared:
        return ()
    label = declared.strip().strip('"').lower()
    try:
        name = codecs.lookup(label).name
    except LookupError:
        return ()
    if name in ("utf-8", "ascii"):
        # us-ascii labels on 8-bit text are common; UTF-8 is the superset to try.
        return ("utf-8",)
    if name in _JAPANESE_CHAINS:
        return _JAPANESE_CHAINS[name]
    return (name,)


def _strict(data: bytes, chain: tuple[str, ...]) -> str | None:
    for name in chain:
        try:
            return data.decode(name)
        except (UnicodeDecodeError, LookupError):
            continue
    return None


def _looks_iso2022(data: bytes) -> bool:
    # One memchr for ESC first: four 3-byte searches cost ~30 ms on a 10 MB CSV that has none.
    return b"\x1b" in data and (
        b"\x1b$B" in data or b"\x1b$@" in data or b"\x1b(J" in data or b"\x1b(I" in data
    )


def decode_bytes(data: bytes, declared: str | None = None) -> str:
    """Decode *data* to text: BOM, then the declared charset, then UTF-8, then detection.

    Never raises; the last resort is CP932 with replacement characters, so a hostile or
    broken body still yields inspectable text.
    """
    for bom, name in _BOMS:
        if data.startswith(bom):
            return data[len(bom) :].decode(name, errors="replace")
    if _looks_iso2022(data):
        text = _strict(data, _JAPANESE_CHAINS["iso2022_jp"])
        if text is not None:
            return text
    chain = codec_chain(declared)
    text = _strict(data, chain)
    legacy = not chain or chain[0] in _JAPANESE_LEGACY
    if text is not None and (not legacy or _japanese_score(text) > 0.9):
        return text
    utf8 = _strict(data, ("utf-8",))
    if utf8 is not None:
        return utf8  # valid UTF-8 is strong evidence; mislabelled UTF-8 is common
    if chain == ("utf-8",):
        lenient = data.decode("utf-8", errors="replace")
        if lenient.count("\ufffd") <= max(2, len(data) // 200):
            return lenient  # declared UTF-8 with a few broken bytes (cut QP, bad base64)
    if not legacy:
        return _detect(data)
    # Japanese labels lie often (EUC-JP bytes also "decode" as CP932, into half-width
    # kana): keep the candidate that reads most like Japanese.
    candidates = [t for t in (text, _strict(data, ("cp932",)), _strict(data, ("euc_jp",))) if t]
    best = max(candidates, key=_japanese_score, default=None)
    if best is None or _japanese_score(best) < 0.5:
        return _detect(data)  # not Japanese at all: let charset-normalizer guess
    return best


def _detect(data: bytes) -> str:
    """Guess the charset of undeclared or mislabelled text; Japanese first, then detection."""
    for chain in (("cp932",), ("euc_jp",)):
        text = _strict(data, chain)
        if text is not None and _mostly_japanese(text):
            return text
    # charset-normalizer is slow on big inputs, so it sees a sample only.
    from charset_normalizer import from_bytes

    best = from_bytes(data[:_DETECT_SAMPLE]).best()
    if best is not None:
        try:
            return data.decode(best.encoding, errors="replace")
        except LookupError:
            pass
    return data.decode("cp932", errors="replace")


def _japanese_score(text: str) -> float:
    """Share of non-ASCII characters that are kana, kanji, full-width forms or symbols.

    Half-width katakana scores as bad: it is what mis-decoded EUC-JP looks like in CP932.
    """
    non_ascii = [c for c in text[:4096] if ord(c) > 0x7F]
    if not non_ascii:
        return 1.0
    good = sum(
        1
        for c in non_ascii
        if "\u3000" <= c <= "\u30ff"
        or "\u4e00" <= c <= "\u9fff"
        or "\uff01" <= c <= "\uff60"
        or "\u2460" <= c <= "\u24ff"
        or c in "×÷°±§¶"
    )
    return good / len(non_ascii)


def _mostly_japanese(text: str) -> bool:
    """True when non-ASCII characters are mostly kana/kanji/full-width (not accidental pairs)."""
    return _japanese_score(text) > 0.8


def _decode_word(encoding: str, payload: str) -> bytes | None:
    try:
        if encoding in "bB":
            padded = payload + "=" * (-len(payload) % 4)
            return binascii.a2b_base64(padded)
        return binascii.a2b_qp(payload.encode("ascii"), header=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return None


def decode_rfc2047(text: str) -> str:
    """Decode RFC 2047 encoded words (also inside quotes, as real clients write them).

    Adjacent encoded words in one charset are joined as bytes before decoding, because
    some Japanese mailers split an ISO-2022-JP or UTF-8 sequence across two words.
    """
    if "=?" not in text:
        return text
    out: list[str] = []
    run: list[tuple[str, bytes]] = []
    pos = 0
    for match in _ENCODED_WORD.finditer(text):
        between = text[pos : match.start()]
        payload = _decode_word(match.group(2), match.group(3))
        if payload is None:
            continue
        if not (run and between.strip(" \t\r\n") == ""):
            out.extend(decode_bytes(data, cs) for cs, data in run)
            run = []
            out.append(between)
        charset = match.group(1).split("*", 1)[0]
        if run and run[-1][0].lower() == charset.lower():
            run[-1] = (run[-1][0], run[-1][1] + payload)
        else:
            run.append((charset, payload))
        pos = match.end()
    out.extend(decode_bytes(data, cs) for cs, data in run)
    out.append(text[pos:])
    return "".join(out)


def normalise(text: str) -> str:
    """NFKC, so full-width digits and letters compare equal to their ASCII forms."""
    return unicodedata.normalize("NFKC", text)
