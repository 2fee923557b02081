"""Line endings of a message's bytes: the one check for a bare CR or LF, and its repair.

The intake refuses (or normalises) a message with a bare CR or LF (SMTP smuggling, RFC 5321
§2.3.8); the upstream client sends a CRLF-only message by its fast path. Both ask here.
"""

from __future__ import annotations

import re

_BARE = re.compile(rb"\r(?!\n)|(?<!\r)\n")


def has_bare_line_ending(data: bytes) -> bool:
    """A CR or LF that is not part of CRLF. Three C-level counts: this runs on every message."""
    pairs = data.count(b"\r\n")
    return data.count(b"\r") != pairs or data.count(b"\n") != pairs


def normalise_line_endings(data: bytes) -> bytes:
    """Every bare CR or LF becomes CRLF (Postfix 3.9's `smtpd_forbid_bare_newline=normalize`)."""
    return _BARE.sub(b"\r\n", data)
