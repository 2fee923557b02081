"""Helpers for policy tests: write policy directories from TOML text."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def write_policy(tmp_path: Path) -> Callable[..., Path]:
    """Write ``name.toml`` files (keyword arguments) into a fresh policy directory."""

    def write(**files: str) -> Path:
        directory = tmp_path / "policies"
        directory.mkdir(exist_ok=True)
        for name, text in files.items():
            (directory / f"{name}.toml").write_text(text, encoding="utf-8")
        return directory

    return write
