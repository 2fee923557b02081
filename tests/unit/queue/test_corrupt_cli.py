"""`sendguard queue list|show|recover|delete` on a corrupt entry (issue 11), through the real
command line on SQLite (the store behaviour itself is tested on both backends)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from sendguard.cli.main import main
from sendguard.entry import Entry
from sendguard.model import HoldParams
from sendguard.queue.backends import open_store
from tests.support.store import damage_row, sample_envelope, sample_message, sample_verdict


@pytest.fixture
def url(tmp_path: Path) -> str:
    """A SQLite store URL in the test's directory."""
    return f"sqlite:///{tmp_path / 'q.db'}"


def _corrupt_entry(url: str) -> tuple[Entry, str]:
    """A held entry whose verdict was damaged, found by the store (so now `corrupt`); and
    the verdict as it was, to repair it with."""

    async def go() -> Entry:
        store = await open_store(url)
        entry = await store.enqueue(
            envelope=sample_envelope("tanaka@corp.example", "a@client.example"),
            data=sample_message(),
            verdict=sample_verdict(hold=HoldParams(notify_sender=False, notify_reviewers=False)),
            state="held",
        )
        await store.close()
        return entry

    entry = asyncio.run(go())
    good = _verdict_text(url, entry.id)
    damage_row(url, entry.id, "verdict", '{"v":7}')
    return entry, good


def _verdict_text(url: str, queue_id: str) -> str:
    import sqlite3

    conn = sqlite3.connect(url.removeprefix("sqlite:///"))
    try:
        (text,) = conn.execute(
            "SELECT verdict FROM queue_entry WHERE id = ?", (queue_id,)
        ).fetchone()
    finally:
        conn.close()
    return str(text)


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_and_show_a_corrupt_entry_then_recover_it(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The admin sees the entry as corrupt with the problem (never its content), repairs the
    row, and `recover` puts it back to held."""
    entry, good = _corrupt_entry(url)
    code, out, _ = _cli(capsys, "queue", "list", "--store", url)
    assert code == 0
    assert entry.id in out and "corrupt" in out
    code, out, _ = _cli(capsys, "queue", "list", "--json", "--store", url)
    (row,) = [json.loads(line) for line in out.splitlines()]
    assert (row["id"], row["state"], row["mail_from"]) == (
        entry.id,
        "corrupt",
        "tanaka@corp.example",
    )
    code, out, _ = _cli(capsys, "queue", "show", entry.id, "--store", url)
    assert code == 0
    assert "blob schema version 7" in out
    assert "sendguard queue recover" in out and "sendguard queue delete" in out

    code, _, err = _cli(capsys, "queue", "recover", entry.id, "--actor", "admin", "--store", url)
    assert code == 1  # still unreadable: refused, and it stays corrupt
    assert "blob schema version 7" in err
    damage_row(url, entry.id, "verdict", good)  # the repair
    code, out, _ = _cli(capsys, "queue", "recover", entry.id, "--actor", "admin", "--store", url)
    assert code == 0  # recorded as "admin, by admin <verified login>" (review/actor.py)
    assert out.strip().startswith(f"{entry.id}: recovered to held by admin, by admin ")
    code, out, _ = _cli(capsys, "queue", "list", "--json", "--store", url)
    assert json.loads(out)["state"] == "held"


def test_delete_a_corrupt_entry(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """An admin can remove an entry that cannot be read at all (audited like any delete)."""
    entry, _ = _corrupt_entry(url)
    code, out, _ = _cli(capsys, "queue", "delete", entry.id, "--actor", "admin", "--store", url)
    assert (code, out.strip()) == (0, f"{entry.id}: deleted")
    code, out, _ = _cli(capsys, "queue", "list", "--store", url)
    assert "queue is empty" in out
