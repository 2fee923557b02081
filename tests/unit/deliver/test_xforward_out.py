"""What sendguard forwards to an upstream that offers XFORWARD: printable xtext that the
intake's decoder reads back unchanged, within XFORWARD's 255 characters."""

from __future__ import annotations

import pytest

from sendguard.deliver.smtp import _xforward_addr, _xtext
from sendguard.intake.forward import xtext_decode


@pytest.mark.parametrize("value", ["pc7.example", "a+b=c", "[UNAVAILABLE]x", "x" * 255])
def test_xtext_round_trips(value: str) -> None:
    assert xtext_decode(_xtext(value)) == value


def test_spaces_controls_and_non_ascii_become_question_marks() -> None:
    assert _xtext("my pc\r日本") == "my?pc???"


def test_too_long_is_unavailable_and_ipv6_is_prefixed() -> None:
    assert _xtext("x" * 256) == "[UNAVAILABLE]"
    assert _xtext("=" * 90) == "[UNAVAILABLE]"  # 270 characters once encoded
    assert _xforward_addr("2001:db8::7") == "IPV6:2001:db8::7"
    assert _xforward_addr("192.0.2.7") == "192.0.2.7"
