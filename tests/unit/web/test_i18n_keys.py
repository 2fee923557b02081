"""Every console string exists in Japanese and English; Japanese is the default."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from sendguard.errors import ConfigError
from sendguard.web.i18n import STRINGS, pick_language
from sendguard.web.keys import load_or_create_key


def test_both_languages_have_every_string() -> None:
    assert set(STRINGS["ja"]) == set(STRINGS["en"])
    assert all(v.strip() for lang in STRINGS.values() for v in lang.values())


@pytest.mark.parametrize(
    ("header", "language"),
    [
        ("", "ja"),
        ("en-US,en;q=0.9", "en"),
        ("ja,en-US;q=0.8", "ja"),
        ("en;q=0.5, ja;q=0.9", "ja"),
        ("fr-FR, en;q=0.3", "en"),
        ("de", "ja"),
    ],
)
def test_the_browser_preference_picks_the_language(header: str, language: str) -> None:
    assert pick_language(header) == language


def test_the_link_key_is_created_private_and_then_reused(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "link.key"
    key = load_or_create_key(path)
    assert len(key) == 32
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_or_create_key(path) == key
    path.write_text("short")
    with pytest.raises(ConfigError, match="32 hex digits"):
        load_or_create_key(path)
