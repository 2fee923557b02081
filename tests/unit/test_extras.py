"""Optional dependencies: a single SQLite node needs neither the PostgreSQL driver nor the
document builders the tests use, and a PostgreSQL store without its extra fails at start
with the command that installs it.

"Not installed" is simulated in a child interpreter by a meta path finder that refuses the
modules, so the test needs no second virtual environment.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
POSTGRES = ("psycopg", "psycopg_pool")
TEST_ONLY = ("openpyxl", "docx", "pptx", "pyzipper")

_BLOCK = """
import sys

class _NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _NotInstalled())
"""


def _python_without(
    blocked: tuple[str, ...], code: str, cwd: Path
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENDGUARD_")}
    env |= {"SENDGUARD_CONFIG": "", "SENDGUARD_POLICY_DIR": str(REPO / "policies")}
    script = f"BLOCKED = {set(blocked)!r}\n{_BLOCK}\n{code}"
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_every_module_imports_without_the_optional_packages(tmp_path: Path) -> None:
    """Only the PostgreSQL store itself may need psycopg; nothing may need a test builder."""
    code = """
import importlib, pkgutil, sendguard
skip = {"sendguard.__main__", "sendguard.queue.postgres"}
names = [m.name for m in pkgutil.walk_packages(sendguard.__path__, "sendguard.")]
for name in names:
    if name not in skip:
        importlib.import_module(name)
print(len(names))
"""
    result = _python_without(POSTGRES + TEST_ONLY, code, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert int(result.stdout) > 100  # the walk really found the package


@pytest.mark.parametrize(
    "command",
    [
        ["serve", "--listen", "127.0.0.1:0"],
        ["serve", "--listen", "127.0.0.1:0", "--workers", "2"],
        ["queue", "list"],
        ["audit", "verify"],
    ],
)
def test_a_postgres_store_without_the_extra_names_the_install_command(
    tmp_path: Path, command: list[str]
) -> None:
    """Exit 2 with one line saying what to install, no traceback, before any connection."""
    argv = [*command, "--store", "postgresql://sendguard@127.0.0.1:1/none"]
    code = f"from sendguard.cli.main import main\nraise SystemExit(main({argv!r}))"
    result = _python_without(POSTGRES, code, tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "pip install 'sendguard[postgres]'" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_runtime_dependencies_leave_out_postgres_and_the_test_builders() -> None:
    """`pip install sendguard` is enough for a SQLite node; the extras hold the rest."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))["project"]

    def names(requirements: list[str]) -> set[str]:
        return {
            r.split("[")[0].split(">")[0].split("<")[0].split("=")[0].strip() for r in requirements
        }

    runtime = names(project["dependencies"])
    extras = project["optional-dependencies"]
    assert not runtime & {
        "psycopg",
        "psycopg-pool",
        "openpyxl",
        "python-docx",
        "python-pptx",
        "pyzipper",
    }
    assert {"psycopg", "psycopg-pool"} <= names(extras["postgres"])
    assert {"openpyxl", "python-docx", "python-pptx", "pyzipper", "sendguard"} <= names(
        extras["test"]
    )
