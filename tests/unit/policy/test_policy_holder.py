"""PolicyHolder: reloads on demand and on change, and keeps the last good policy on failure."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from sendguard.errors import PolicyError
from sendguard.policy.holder import PolicyHolder

GOOD = """
[[rule]]
id = "tag-marker"
description = "Tag confidential mail"
action = "tag"
when.any = [{ detector = "confidential-marker" }]
"""


def test_start_with_broken_policy_raises(write_policy: Callable[..., Path]) -> None:
    """A relay must not start on an invalid policy: the constructor raises."""
    with pytest.raises(PolicyError):
        PolicyHolder(write_policy(main="[[rule]]\nid = 1\n"))


def test_broken_reload_keeps_last_good_policy_and_logs_why(
    write_policy: Callable[..., Path],
) -> None:
    """A reload of a broken file returns False, logs file/rule/field, and keeps serving."""
    directory = write_policy(main=GOOD)
    holder = PolicyHolder(directory)
    good = holder.current
    (directory / "main.toml").write_text(GOOD.replace('"tag"', '"quarantine"'), encoding="utf-8")
    with capture_logs() as logs:
        assert holder.reload() is False
    assert holder.current is good
    [event] = logs
    assert event["event"] == "policy_reload_failed"
    assert (event["file"], event["rule"], event["field"]) == (
        str(directory / "main.toml"),
        "tag-marker",
        "action",
    )
    assert event["kept_version"] == good.version


def test_good_reload_swaps_and_logs_loaded(write_policy: Callable[..., Path]) -> None:
    """A successful reload serves the new policy and logs policy_loaded with its version."""
    directory = write_policy(main=GOOD)
    holder = PolicyHolder(directory)
    old = holder.current.version
    (directory / "main.toml").write_text(GOOD.replace('"tag"', '"hold"'), encoding="utf-8")
    with capture_logs() as logs:
        assert holder.reload() is True
    assert holder.current.version != old
    assert holder.current.policy.rules[0].action == "hold"
    assert logs[0]["event"] == "policy_loaded"
    assert logs[0]["version"] == holder.current.version


async def _wait_for(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(5):
        while not condition():  # noqa: ASYNC110 - polling the file watcher's effect is the point
            await asyncio.sleep(0.01)


async def test_watch_reloads_when_a_file_changes(write_policy: Callable[..., Path]) -> None:
    """watch() notices an edited file, a new file and a changed list file."""
    directory = write_policy(main=GOOD + '[organisation.groups.sales]\nlist_file = "sales.txt"\n')
    (directory / "sales.txt").write_text("a@example.co.jp\n", encoding="utf-8")
    holder = PolicyHolder(directory, settle=0.05)
    task = asyncio.create_task(holder.watch(interval=0.02))
    try:
        (directory / "extra.toml").write_text(GOOD.replace("tag-marker", "tag-two"), "utf-8")
        await _wait_for(lambda: len(holder.current.policy.rules) == 2)
        (directory / "sales.txt").write_text("a@example.co.jp\nb@example.co.jp\n", "utf-8")
        await _wait_for(lambda: len(holder.current.groups["sales"].addresses) == 2)
        good = holder.current
        (directory / "extra.toml").write_text("broken = [", "utf-8")
        with capture_logs() as logs:
            await _wait_for(lambda: any(e["event"] == "policy_reload_failed" for e in logs))
        assert holder.current is good
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def test_deleted_policy_directory_keeps_serving(write_policy: Callable[..., Path]) -> None:
    """Removing every policy file (a bad deploy) keeps the old policy rather than none."""
    directory = write_policy(main=GOOD)
    holder = PolicyHolder(directory)
    good = holder.current
    (directory / "main.toml").unlink()
    with capture_logs() as logs:
        assert holder.reload() is False
    assert holder.current is good
    assert "no policy files (*.toml) found" in logs[0]["error"]
