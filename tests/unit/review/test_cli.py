"""`sendguard queue …` and `sendguard audit …` through `sendguard.cli.main.main`, on SQLite."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from sendguard.cli.main import main
from sendguard.model import Action, HoldParams
from sendguard.queue.store import Entry, open_store
from sendguard.queue.testing import sample_envelope, sample_message, sample_verdict


@pytest.fixture
def url(tmp_path: Path) -> str:
    """A SQLite store URL in the test's directory."""
    return f"sqlite:///{tmp_path / 'q.db'}"


def _enqueue(url: str, state: str = "held", hold: HoldParams | None = None) -> Entry:
    """Put one message from tanaka into the store (outside any running loop)."""

    async def go() -> Entry:
        store = await open_store(url)
        action = Action.HOLD if state == "held" else Action.DELAY
        entry = await store.enqueue(
            envelope=sample_envelope("tanaka@corp.example", "a@client.example"),
            data=sample_message(),
            verdict=sample_verdict(action, hold=hold, delay_minutes=5),
            state=state,  # type: ignore[arg-type]
        )
        await store.close()
        return entry

    return asyncio.run(go())


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the command line; return exit code, stdout, stderr."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_json_lines_and_state_filter(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """list --json prints one JSON object per entry; --state filters."""
    held = _enqueue(url)
    delayed = _enqueue(url, "delayed")
    code, out, _ = _cli(capsys, "queue", "list", "--json", "--store", url)
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0
    assert [(r["id"], r["state"]) for r in rows] == [(held.id, "held"), (delayed.id, "delayed")]
    assert rows[0]["rule_id"] == "hold-my-number"
    assert rows[0]["rcpt_tos"] == ["a@client.example"]
    code, out, _ = _cli(capsys, "queue", "list", "--state", "delayed", "--store", url)
    assert code == 0
    assert delayed.id in out
    assert held.id not in out


def test_show_prints_findings_masked_and_attachments(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """show prints the envelope, subject, masked evidence and the attachment list."""
    entry = _enqueue(url)
    code, out, _ = _cli(capsys, "queue", "show", entry.id, "--store", url)
    assert code == 0
    assert "RCPT TO:    <a@client.example>" in out
    assert "Subject: 見積書の送付" in out
    assert "1234****9012" in out
    assert "顧客.csv (text/csv" in out
    assert "123456789012" not in out


def test_release_by_sender_exits_1_and_by_reviewer_0(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The sender's own release is refused (exit 1, reason on stderr); a reviewer's works."""
    entry = _enqueue(url)
    code, _, err = _cli(capsys, "queue", "release", entry.id, "--actor", "tanaka", "--store", url)
    assert code == 1
    assert "does not allow the sender to release" in err
    code, out, _ = _cli(capsys, "queue", "release", entry.id, "--actor", "boss", "--store", url)
    assert (code, out.strip()) == (0, f"{entry.id}: released by boss")


def test_release_all_needs_the_literal(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """'all' in lower case is refused; ALL releases every held entry and reports each."""
    a, b = _enqueue(url), _enqueue(url)
    code, _, err = _cli(capsys, "queue", "release", "all", "--actor", "boss", "--store", url)
    assert code == 1
    assert "literal ALL in capitals" in err
    code, out, _ = _cli(capsys, "queue", "release", "ALL", "--actor", "boss", "--store", url)
    assert code == 0
    assert f"{a.id}: released by boss" in out
    assert f"{b.id}: released by boss" in out


def test_approvals_are_reported_until_enough(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """With two approvals required the first release prints 1/2 and the second releases."""
    entry = _enqueue(url, hold=HoldParams(approvals_required=2))
    _, out, _ = _cli(capsys, "queue", "release", entry.id, "--actor", "boss", "--store", url)
    assert "approved by boss (1/2 approvals)" in out
    _, out, _ = _cli(capsys, "queue", "release", entry.id, "--actor", "sec", "--store", url)
    assert "released by sec" in out


def test_reject_cancel_delete_purge(
    url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """reject needs --reason; cancel uses $USER as the actor; delete and purge report."""
    held = _enqueue(url)
    delayed = _enqueue(url, "delayed")
    with pytest.raises(SystemExit):
        main(["queue", "reject", held.id, "--store", url])
    capsys.readouterr()
    code, out, _ = _cli(
        capsys, "queue", "reject", held.id, "--reason", "誤送信", "--actor", "boss", "--store", url
    )
    assert (code, out.strip()) == (0, f"{held.id}: rejected by boss")
    monkeypatch.delenv("SUDO_USER", raising=False)
    monkeypatch.setenv("USER", "suzuki")
    code, _, err = _cli(capsys, "queue", "cancel", delayed.id, "--store", url)
    assert code == 1
    assert "only the sender" in err
    monkeypatch.setenv("USER", "tanaka")
    code, out, _ = _cli(capsys, "queue", "cancel", delayed.id, "--store", url)
    assert (code, out.strip()) == (0, f"{delayed.id}: cancelled; it will not be sent")
    code, out, _ = _cli(capsys, "queue", "purge", "--older-than", "0s", "--store", url)
    assert (code, out.strip()) == (0, "purged 2 finished entries")
    code, _, err = _cli(capsys, "queue", "delete", held.id, "--store", url)
    assert code == 1
    assert f"no queue entry {held.id}" in err


def test_bad_duration_is_a_usage_error(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """purge --older-than with a malformed duration exits 2 naming the expected form."""
    with pytest.raises(SystemExit) as exc:
        main(["queue", "purge", "--older-than", "thirty days", "--store", url])
    assert exc.value.code == 2
    assert "like 30d" in capsys.readouterr().err


def test_unknown_store_scheme_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    """A store URL of an unknown kind exits 1 and says which URLs work."""
    code, _, err = _cli(capsys, "queue", "list", "--store", "mysql://x")
    assert code == 1
    assert "use sqlite:///PATH or postgresql://" in err


def test_audit_export_and_verify(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """export prints every decision as JSON lines in order; verify reports the chain intact."""
    entry = _enqueue(url)
    _cli(capsys, "queue", "release", entry.id, "--actor", "boss", "--store", url)
    code, out, _ = _cli(capsys, "audit", "export", "--store", url)
    records = [json.loads(line) for line in out.splitlines()]
    assert code == 0
    assert [(r["seq"], r["event"], r["actor"]) for r in records] == [
        (1, "queued", "system"),
        (2, "released", "boss"),
    ]
    queued = records[0]["details"]
    assert (queued["action"], queued["rule"], queued["state"]) == ("hold", "hold-my-number", "held")
    assert queued["findings"] == ["personal-data/my-number:3"]
    assert records[1]["details"]["approvals"] == ["boss"]
    assert records[1]["prev_hash"] == records[0]["hash"]
    code, out, _ = _cli(capsys, "audit", "export", "--after-seq", "1", "--store", url)
    assert [json.loads(line)["seq"] for line in out.splitlines()] == [2]
    code, out, _ = _cli(capsys, "audit", "verify", "--store", url)
    assert (code, out.strip()) == (0, "audit log OK: 2 records, chain intact")


def test_audit_verify_exits_1_on_tampering(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A changed record makes verify exit 1 and name the record."""
    import sqlite3

    entry = _enqueue(url)
    _cli(capsys, "queue", "release", entry.id, "--actor", "boss", "--store", url)
    conn = sqlite3.connect(url.removeprefix("sqlite:///"))
    conn.execute("DROP TRIGGER audit_no_update")
    conn.execute("UPDATE audit SET actor = 'someone-else' WHERE seq = 2")
    conn.commit()
    conn.close()
    code, _, err = _cli(capsys, "audit", "verify", "--store", url)
    assert code == 1
    assert "BROKEN at record 2" in err
