"""Readers are imported by kind: plain mail never loads the archive/office/sheet libraries."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sendguard.parse import sniff as kinds
from sendguard.parse.extract import _READERS, reader_for

_PROBE = """
import sys
from sendguard.parse.limits import ParseLimits
from sendguard.parse import parse_message
data = (b"From: a@example.co.jp\\r\\nTo: b@example.com\\r\\nSubject: x\\r\\n"
        b"Content-Type: text/plain; charset=utf-8\\r\\n\\r\\nhello\\r\\n")
mail = parse_message(data, ParseLimits.model_validate({}))
assert mail.parts and not mail.problems, mail
print(" ".join(sorted(m for m in ("py7zr", "python_calamine", "olefile", "tnefparse")
                      if m in sys.modules)))
"""


def test_plain_mail_imports_no_attachment_library() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[3],
    )
    assert done.stdout.strip() == ""


def test_every_kind_resolves_to_its_reader() -> None:
    for kind in _READERS:
        reader = reader_for(kind)
        assert callable(reader) and reader.__name__ == _READERS[kind][1]
    assert reader_for(kinds.PLAIN) is reader_for(kinds.PLAIN)
    assert reader_for("application/x-unknown") is None
