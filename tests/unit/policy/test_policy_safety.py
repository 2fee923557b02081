"""A reload can only make the guard safer or leave it as it is (issue 11).

Each test is a failure seen on main: an emptied file served as a 0-rule policy, a reload that
dropped every rule, a half-written file read, and `policy check` accepting all of them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from sendguard.cli import policy as policy_cli
from sendguard.errors import PolicyError
from sendguard.inspect import inspect_sync
from sendguard.model import Action, Envelope
from sendguard.parse.limits import ParseLimits
from sendguard.policy import holder as holder_module
from sendguard.policy.holder import PolicyHolder
from sendguard.policy.load import load_policy
from sendguard.usecases.cases import smtp_bytes

PPAP_MESSAGE = Path(__file__).resolve().parents[3] / "policies" / "tests" / "ppap.eml"

ORG = '[organisation]\ninternal_domains = ["example.co.jp"]\n'
PPAP = """
[[rule]]
id = "reject-encrypted-zip"
description = "PPAP is not allowed"
action = "reject"
recipients = "any-external"
when.any = [{ detector = "uninspectable-attachment", code = "encrypted" }]
"""
HOLD = """
[[rule]]
id = "hold-lookalike"
description = "Hold lookalike domains"
action = "hold"
when.any = [{ detector = "lookalike-domain" }]
"""


def _check(directory: Path) -> int:
    parser = argparse.ArgumentParser(prog="sendguard")
    policy_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["policy", "check", str(directory)])
    code: int = args.func(args)
    return code


def _failed(logs: list[dict[str, object]]) -> dict[str, object]:
    [event] = [e for e in logs if e["event"] == "policy_reload_failed"]
    assert event["log_level"] == "error"
    return event


def test_truncated_file_is_refused_and_ppap_stays_rejected(
    write_policy: Callable[..., Path],
) -> None:
    """`: > default.toml`: the reload is refused naming the file; encrypted ZIPs to the
    outside are still rejected by the last good policy."""
    directory = write_policy(default=ORG + PPAP)
    holder = PolicyHolder(directory)
    (directory / "default.toml").write_bytes(b"")
    with capture_logs() as logs:
        assert holder.reload() is False
    event = _failed(logs)
    assert event["file"] == str(directory / "default.toml")
    assert "empty" in str(event["error"])
    assert event["files_without_rules_now"] == [str(directory / "default.toml")]
    assert [r.id for r in holder.current.policy.rules] == ["reject-encrypted-zip"]
    envelope = Envelope("a@example.co.jp", ("b@client.example",))
    data = smtp_bytes(PPAP_MESSAGE.read_bytes())
    inspection = inspect_sync(envelope, data, holder.current, ParseLimits(), offline=True)
    assert inspection.verdict.action is Action.REJECT


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_empty_file_is_refused_by_load_check_and_start(
    write_policy: Callable[..., Path], text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """An empty file (nothing, blank lines, comments) is refused everywhere, naming it."""
    directory = write_policy(default=ORG + PPAP, extra=text)
    with pytest.raises(PolicyError, match=r"extra\.toml: the file is empty") as caught:
        load_policy(directory)
    assert caught.value.file == str(directory / "extra.toml")
    with pytest.raises(PolicyError, match="empty"):
        PolicyHolder(directory)
    assert _check(directory) == 1
    assert "extra.toml: the file is empty" in capsys.readouterr().err


def test_policy_without_rules_needs_allow_empty(
    write_policy: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """No (enabled) rule at all: refused by load, start-up and check unless allow_empty."""
    directory = write_policy(default=ORG)
    with pytest.raises(PolicyError, match=r"has no rule.*allow_empty = true"):
        PolicyHolder(directory)
    assert _check(directory) == 1
    assert "allow_empty = true" in capsys.readouterr().err
    disabled = PPAP.replace('action = "reject"', 'action = "reject"\nenabled = false')
    write_policy(default=ORG + disabled)
    with pytest.raises(PolicyError, match="has no enabled rule"):
        load_policy(directory)
    write_policy(default="allow_empty = true\n" + ORG)
    with capture_logs() as logs:
        holder = PolicyHolder(directory)
    assert holder.current.policy.rules == ()
    [loaded] = logs
    assert (loaded["event"], loaded["log_level"], loaded["allow_empty"]) == (
        "policy_loaded",
        "warning",
        True,
    )
    assert _check(directory) == 0


def test_reload_dropping_every_rule_is_refused_when_other_files_remain(
    write_policy: Callable[..., Path],
) -> None:
    """org.toml stays, the files with the rules are deleted or emptied of rules: refused, and
    the event names the files that lost their rules."""
    directory = write_policy(org=ORG, ppap=PPAP, hold=HOLD)
    holder = PolicyHolder(directory)
    good = holder.current
    (directory / "ppap.toml").unlink()
    (directory / "hold.toml").write_text("# rules moved elsewhere\n[settings]\n", "utf-8")
    with capture_logs() as logs:
        assert holder.reload() is False
    event = _failed(logs)
    assert "has no rule" in str(event["error"])
    assert event["files_without_rules_now"] == [
        str(directory / "hold.toml"),
        str(directory / "ppap.toml"),
    ]
    assert holder.current is good
    # Dropping some rules is an ordinary edit.
    (directory / "hold.toml").write_text(HOLD, "utf-8")
    assert holder.reload() is True
    assert [r.id for r in holder.current.policy.rules] == ["hold-lookalike"]


def test_emptied_directory_after_a_refused_reload_keeps_the_good_policy(
    write_policy: Callable[..., Path],
) -> None:
    """Truncate, then remove everything: the policy serving is still the one with rules."""
    directory = write_policy(default=ORG + PPAP)
    holder = PolicyHolder(directory)
    (directory / "default.toml").write_bytes(b"")
    assert holder.reload() is False
    (directory / "default.toml").unlink()
    assert holder.reload() is False
    assert len(holder.current.policy.rules) == 1


async def test_watcher_never_reads_a_file_being_written(
    write_policy: Callable[..., Path],
) -> None:
    """A slow writer (a copy, an editor writing in pieces) passes through states that are valid
    TOML with fewer rules; the watcher waits until the file has settled and loads only the
    finished file."""
    directory = write_policy(default=ORG + PPAP)
    holder = PolicyHolder(directory, settle=0.4)
    seen: set[tuple[str, ...]] = set()
    task = asyncio.create_task(holder.watch(interval=0.02))
    final = ORG + HOLD + PPAP.replace("reject-encrypted-zip", "reject-ppap")
    pieces = [final[: final.index(PPAP[:10])], final]  # first only the hold rule, then all
    try:
        path = directory / "default.toml"
        with path.open("w", encoding="utf-8") as fh:
            written = ""
            for piece in pieces:
                for char in piece[len(written) :]:
                    fh.write(char)
                    fh.flush()
                    if char == "\n":
                        seen.add(tuple(r.id for r in holder.current.policy.rules))
                        await asyncio.sleep(0.01)
                written = piece
                for _ in range(10):  # a pause shorter than `settle`
                    seen.add(tuple(r.id for r in holder.current.policy.rules))
                    await asyncio.sleep(0.02)
        async with asyncio.timeout(5):
            while len(holder.current.policy.rules) != 2:
                seen.add(tuple(r.id for r in holder.current.policy.rules))
                await asyncio.sleep(0.02)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert seen == {("reject-encrypted-zip",)}
    assert [r.id for r in holder.current.policy.rules] == ["hold-lookalike", "reject-ppap"]


def test_load_racing_a_writer_is_thrown_away(
    write_policy: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGHUP while a file is being written: a file that changed during the read is not
    served; the reload is deferred (the watcher retries once it has settled)."""
    directory = write_policy(default=ORG + PPAP)
    holder = PolicyHolder(directory)
    good = holder.current
    real = holder_module.load_policy

    def racing(path: Path):  # type: ignore[no-untyped-def]
        loaded = real(path)
        with (directory / "default.toml").open("a", encoding="utf-8") as fh:
            fh.write("# more to come\n")
        return loaded

    (directory / "default.toml").write_text(ORG + HOLD, "utf-8")
    monkeypatch.setattr(holder_module, "load_policy", racing)
    with capture_logs() as logs:
        assert holder.reload() is False
    assert holder.current is good
    assert logs[0]["event"] == "policy_reload_deferred"
    assert logs[0]["file"] == str(directory / "default.toml")
    monkeypatch.setattr(holder_module, "load_policy", real)
    assert holder.reload() is True
    assert [r.id for r in holder.current.policy.rules] == ["hold-lookalike"]


@pytest.mark.parametrize("text", ["", ORG])
def test_serve_refuses_to_start_on_an_empty_or_rule_less_policy(
    write_policy: Callable[..., Path], text: str, tmp_path: Path
) -> None:
    """`sendguard serve` (a real process) exits 2 with the reason before it listens."""
    directory = write_policy(default=text)
    env = {**os.environ, "SENDGUARD_POLICY_DIR": str(directory), "SENDGUARD_WORKERS": "1"}
    env["SENDGUARD_LISTEN"] = "127.0.0.1:0"
    done = subprocess.run(
        [sys.executable, "-m", "sendguard", "serve"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert str(directory / "default.toml") in done.stderr
    assert ("the file is empty" if not text else "allow_empty = true") in done.stderr


def test_check_refuses_a_file_that_keeps_changing_while_read(
    write_policy: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`policy check` waits for a writer like the relay does, then refuses, naming the file."""
    directory = write_policy(default=ORG + PPAP)
    real = holder_module.load_policy

    def racing(path: Path):  # type: ignore[no-untyped-def]
        loaded = real(path)
        with (directory / "default.toml").open("a", encoding="utf-8") as fh:
            fh.write("# still writing\n")
        return loaded

    monkeypatch.setattr(holder_module, "load_policy", racing)
    assert _check(directory) == 1
    err = capsys.readouterr().err
    assert "default.toml: changed while it was being read" in err
