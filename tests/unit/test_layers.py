"""The layers of docs/design.md hold: import-linter's contracts in pyproject.toml are kept.

Imports inside functions and under ``TYPE_CHECKING`` count: a cycle cannot hide in a
function body. On main, `policy` ↔ `inspect`, `settings` → `deliver` → `settings`,
`queue` ↔ `notify` and `queue.store` ↔ `queue.sqlite` were such cycles.
"""

from __future__ import annotations

import pkgutil
import tomllib
from pathlib import Path

import pytest
from importlinter import cli

import sendguard

PYPROJECT = Path(__file__).parents[2] / "pyproject.toml"


def test_the_import_contracts_are_kept(capsys: pytest.CaptureFixture[str]) -> None:
    """`lint-imports`: every package imports only the layers below it, and no package has
    modules that import each other in a circle."""
    code = cli.lint_imports(config_filename=str(PYPROJECT), no_cache=True, no_logo=True)
    report = capsys.readouterr().out
    assert code == 0, report
    assert "2 kept, 0 broken" in report


def test_every_part_of_sendguard_has_its_layer() -> None:
    """A new top-level module or package is placed in the layers, not left outside them
    (import-linter checks only the modules a contract names)."""
    config = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
    [layers] = [
        c["layers"] for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers"
    ]
    named = {part.strip() for layer in layers for part in layer.split("|")}
    parts = {f"sendguard.{m.name}" for m in pkgutil.iter_modules(sendguard.__path__)}
    assert parts == named
