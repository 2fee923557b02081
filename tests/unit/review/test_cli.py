"""`sendguard queue …` and `sendguard audit …` through `sendguard.cli.main.main`, on SQLite.

The acting account is the process's effective uid: these tests set it (``os.geteuid``) to
Debian system accounts that the test policy's ``[people]`` maps (`REVIEW_POLICY`): daemon
reviews for boss@, bin for security@, sys is an admin, mail sent the mail, nobody is not
listed. `tests/e2e/test_review_accounts.py` runs the real process as those accounts.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import pwd
from collections.abc import Callable
from pathlib import Path

import pytest

from sendguard import settings as settings_module
from sendguard.cli.main import main
from sendguard.entry import Entry
from sendguard.model import Action, HoldParams
from sendguard.queue.backends import open_store
from tests.support.review import write_review_policy
from tests.support.store import sample_envelope, sample_message, sample_verdict

Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def url(tmp_path: Path) -> str:
    """A SQLite store URL in the test's directory."""
    return f"sqlite:///{tmp_path / 'q.db'}"


@pytest.fixture(autouse=True)
def policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The test policy with [people]; no settings file (not even /etc's); not under sudo."""
    directory = write_review_policy(tmp_path / "policies")
    monkeypatch.setenv("SENDGUARD_CONFIG", "")
    monkeypatch.setenv("SENDGUARD_POLICY_DIR", str(directory))
    monkeypatch.delenv("SENDGUARD_STORE", raising=False)
    monkeypatch.delenv("SUDO_UID", raising=False)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # not a terminal
    return directory


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    """Run the command line as an account (default daemon); return exit code, out, err."""

    def run(*argv: str, user: str = "daemon") -> tuple[int, str, str]:
        uid = pwd.getpwnam(user).pw_uid
        monkeypatch.setattr(os, "geteuid", lambda: uid)
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


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


def _states(url: str) -> dict[str, str]:
    async def go() -> dict[str, str]:
        store = await open_store(url)
        try:
            return {e.id: e.state for e in await store.list()}
        finally:
            await store.close()

    return asyncio.run(go())


def test_list_json_lines_and_state_filter(url: str, cli: Cli) -> None:
    """list --json prints one JSON object per entry; --state filters."""
    held = _enqueue(url)
    delayed = _enqueue(url, "delayed")
    code, out, _ = cli("queue", "list", "--json", "--store", url, user="nobody")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0
    assert [(r["id"], r["state"]) for r in rows] == [(held.id, "held"), (delayed.id, "delayed")]
    assert rows[0]["rule_id"] == "hold-my-number"
    assert rows[0]["rcpt_tos"] == ["a@client.example"]
    code, out, _ = cli("queue", "list", "--state", "delayed", "--store", url)
    assert code == 0
    assert delayed.id in out
    assert held.id not in out


def test_show_prints_findings_masked_and_attachments(url: str, cli: Cli) -> None:
    """show prints the envelope, subject, masked evidence and the attachment list."""
    entry = _enqueue(url)
    code, out, _ = cli("queue", "show", entry.id, "--store", url)
    assert code == 0
    assert "RCPT TO:    <a@client.example>" in out
    assert "Subject: 見積書の送付" in out
    assert "1234****9012" in out
    assert "顧客.csv (text/csv" in out
    assert "123456789012" not in out


def test_release_by_sender_exits_1_and_by_reviewer_0(url: str, cli: Cli) -> None:
    """The sender's own release is refused (exit 1, reason on stderr); a reviewer's works."""
    entry = _enqueue(url)
    code, _, err = cli("queue", "release", entry.id, "--store", url, user="mail")
    assert code == 1
    assert "does not allow the sender to release" in err
    code, out, _ = cli("queue", "release", entry.id, "--store", url, user="daemon")
    assert (code, out.strip()) == (0, f"{entry.id}: released by daemon")


def test_user_variables_do_not_change_who_acts(
    url: str, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """$USER, $LOGNAME and $SUDO_USER naming a reviewer do not make nobody one."""
    entry = _enqueue(url)
    for name in ("USER", "LOGNAME", "SUDO_USER"):
        monkeypatch.setenv(name, "daemon")
    code, _, err = cli("queue", "release", entry.id, "--store", url, user="nobody")
    assert code == 1
    assert "nobody is not listed in the policy's [people]" in err
    assert _states(url)[entry.id] == "held"


def test_actor_is_for_admins_and_counts_their_own_identity(url: str, cli: Cli) -> None:
    """approvals=2: a reviewer's second release under another --actor is refused (the
    old hole: one person, two approvals); an unlisted account is refused; the admin's
    --actor is recorded and counts once; a second reviewer releases."""
    entry = _enqueue(url, hold=HoldParams(reviewers=("boss@corp.example",), approvals_required=3))
    _, out, _ = cli("queue", "release", entry.id, "--store", url, user="daemon")
    assert out.strip() == f"{entry.id}: approved by daemon (1/3 approvals)"
    code, _, err = cli("queue", "release", entry.id, "--actor", "random-intern", "--store", url)
    assert code == 1
    assert "--actor is for admins: you are daemon (reviewer)" in err
    code, _, err = cli("queue", "release", entry.id, "--store", url, user="nobody")
    assert code == 1
    assert "nobody is not listed" in err
    code, out, _ = cli("queue", "release", entry.id, "--actor", "boss", "--store", url, user="sys")
    assert (code, out.strip()) == (0, f"{entry.id}: approved by boss, by admin sys (2/3 approvals)")
    code, _, err = cli("queue", "release", entry.id, "--actor", "kacho", "--store", url, user="sys")
    assert code == 1
    assert "sys has already approved" in err
    code, _, err = cli("queue", "release", entry.id, "--store", url, user="bin")
    assert code == 1
    assert "none of bin's addresses is among the reviewers" in err
    assert _states(url)[entry.id] == "held"


def test_release_all_needs_the_literal_and_a_confirmation(
    url: str, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """'all' in lower case is refused. ALL lists what it would release; without a terminal
    it refuses unless --yes; on a terminal it asks and 'n' releases nothing."""
    a, b = _enqueue(url), _enqueue(url)
    code, _, err = cli("queue", "release", "all", "--store", url)
    assert code == 1
    assert "literal ALL in capitals" in err
    code, out, err = cli("queue", "release", "ALL", "--store", url)
    assert code == 1
    assert f"{a.id}  tanaka@corp.example  rule=hold-my-number  1 rcpt  → released" in out
    assert b.id in out
    assert "no terminal to ask on; add --yes" in err
    assert set(_states(url).values()) == {"held"}

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stdin", Terminal("n\n"))
    code, out, err = cli("queue", "release", "ALL", "--store", url)
    assert code == 1
    assert "Release (or approve) these 2 message(s)? [y/N]" in out
    assert "nothing released" in err
    assert set(_states(url).values()) == {"held"}
    monkeypatch.setattr("sys.stdin", Terminal("y\n"))
    code, out, _ = cli("queue", "release", "ALL", "--store", url)
    assert code == 0
    assert f"{a.id}: released by daemon" in out
    assert f"{b.id}: released by daemon" in out


def test_release_all_with_yes_skips_what_the_actor_may_not_release(url: str, cli: Cli) -> None:
    """--yes releases without asking; entries the actor may not decide are shown as skipped,
    left held, and make the exit status 1."""
    mine = _enqueue(url)
    other = _enqueue(url, hold=HoldParams(reviewers=("security@corp.example",)))
    code, out, _ = cli("queue", "release", "ALL", "--yes", "--store", url)
    assert code == 1
    assert f"{other.id}  tanaka@corp.example  rule=hold-my-number  1 rcpt  → skipped: " in out
    assert f"{mine.id}: released by daemon" in out
    assert _states(url) == {mine.id: "released", other.id: "held"}
    code, out, _ = cli("queue", "release", "ALL", "--yes", "--store", url, user="bin")
    assert (code, out.splitlines()[-1]) == (0, f"{other.id}: released by bin")
    code, out, _ = cli("queue", "release", "ALL", "--store", url)
    assert (code, out.strip()) == (0, "no held entries")


def test_reject_cancel_delete_purge(url: str, cli: Cli) -> None:
    """reject needs --reason and a reviewer; cancel is the sender's; delete and purge are
    an admin's, and purge asks unless --yes."""
    held = _enqueue(url)
    delayed = _enqueue(url, "delayed")
    with pytest.raises(SystemExit):
        main(["queue", "reject", held.id, "--store", url])
    code, _, err = cli(
        "queue", "reject", held.id, "--reason", "誤送信", "--store", url, user="mail"
    )
    assert code == 1
    assert "mail is listed as a sender, not a reviewer" in err
    code, out, _ = cli("queue", "reject", held.id, "--reason", "誤送信", "--store", url)
    assert (code, out.strip()) == (0, f"{held.id}: rejected by daemon")
    code, _, err = cli("queue", "cancel", delayed.id, "--store", url, user="nobody")
    assert code == 1
    assert "only the sender" in err
    code, out, _ = cli("queue", "cancel", delayed.id, "--store", url, user="mail")
    assert (code, out.strip()) == (0, f"{delayed.id}: cancelled; it will not be sent")
    code, _, err = cli("queue", "purge", "--older-than", "0s", "--store", url)
    assert code == 1
    assert "only an admin may purge the queue: daemon is reviewer" in err
    code, out, err = cli("queue", "purge", "--older-than", "0s", "--store", url, user="sys")
    assert code == 1
    assert "purge would remove 2 finished entries (1 cancelled, 1 rejected)" in out
    assert "add --yes" in err
    assert len(_states(url)) == 2
    code, out, _ = cli("queue", "purge", "--older-than", "0s", "--yes", "--store", url, user="sys")
    assert (code, out.splitlines()[-1]) == (0, "purged 2 finished entries")
    code, out, _ = cli("queue", "purge", "--older-than", "0s", "--store", url, user="sys")
    assert (code, out.strip()) == (0, "nothing to purge")
    other = _enqueue(url)
    code, _, err = cli("queue", "delete", other.id, "--store", url)
    assert code == 1
    assert "only an admin may delete queued mail" in err
    code, out, _ = cli("queue", "delete", other.id, "--store", url, user="sys")
    assert (code, out.strip()) == (0, f"{other.id}: deleted")
    code, _, err = cli("queue", "delete", held.id, "--store", url, user="sys")
    assert code == 1
    assert f"no queue entry {held.id}" in err


def test_bad_duration_is_a_usage_error(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """purge --older-than with a malformed duration exits 2 naming the expected form."""
    with pytest.raises(SystemExit) as exc:
        main(["queue", "purge", "--older-than", "thirty days", "--store", url])
    assert exc.value.code == 2
    assert "like 30d" in capsys.readouterr().err


def test_unknown_store_scheme_is_a_clear_error(cli: Cli) -> None:
    """A store URL of an unknown kind exits 1 and says which URLs work."""
    code, _, err = cli("queue", "list", "--store", "mysql://x")
    assert code == 1
    assert "use sqlite:///PATH or postgresql://" in err


def test_a_missing_store_is_refused_not_created(
    tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run from a directory that is not the relay's: the default ./var/sendguard.db is not
    created; the error names the absolute path and how to point at the relay's store (on
    main this printed "queue is empty" and left a new empty database behind)."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    for argv in (["queue", "list"], ["audit", "verify"], ["queue", "release", "X"]):
        code, out, err = cli(*argv)
        assert (code, out) == (1, "")
        assert f"no queue store at {elsewhere / 'var' / 'sendguard.db'}" in err
        assert "SENDGUARD_CONFIG" in err and "SENDGUARD_STORE" in err
    assert list(elsewhere.iterdir()) == []


def test_settings_file_is_found_like_serve(
    url: str, tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store comes from SENDGUARD_CONFIG, else from /etc/sendguard/sendguard.toml when
    it exists (here a stand-in path), from any working directory."""
    entry = _enqueue(url)
    config = tmp_path / "sendguard.toml"
    config.write_text(f'store = "{url}"\n', "utf-8")
    monkeypatch.chdir(tmp_path / "policies")
    monkeypatch.setenv("SENDGUARD_CONFIG", str(config))
    code, out, _ = cli("queue", "list")
    assert code == 0 and entry.id in out
    monkeypatch.delenv("SENDGUARD_CONFIG")
    monkeypatch.setattr(settings_module, "DEFAULT_CONFIG", config)
    code, out, _ = cli("queue", "list")
    assert code == 0 and entry.id in out
    monkeypatch.setattr(settings_module, "DEFAULT_CONFIG", tmp_path / "absent.toml")
    code, _, err = cli("queue", "list")
    assert code == 1 and "no queue store at" in err


def test_a_policy_that_does_not_load_stops_decisions_not_reading(
    url: str, cli: Cli, policy: Path
) -> None:
    """Decisions need [people]: a broken policy exits 2 naming the directory; list works."""
    entry = _enqueue(url)
    (policy / "people.toml").write_text("[people.daemon]\nrole = 'boss'\n", "utf-8")
    code, _, err = cli("queue", "release", entry.id, "--store", url)
    assert code == 2
    assert f"the policy in {policy} does not load" in err
    code, out, _ = cli("queue", "list", "--store", url)
    assert code == 0 and entry.id in out


def test_audit_export_and_verify(url: str, cli: Cli) -> None:
    """export prints every decision as JSON lines in order; verify reports the chain intact."""
    entry = _enqueue(url)
    cli("queue", "release", entry.id, "--actor", "boss", "--store", url, user="sys")
    code, out, _ = cli("audit", "export", "--store", url)
    records = [json.loads(line) for line in out.splitlines()]
    assert code == 0
    assert [(r["seq"], r["event"], r["actor"]) for r in records] == [
        (1, "queued", "system"),
        (2, "released", "boss, by admin sys"),
    ]
    queued = records[0]["details"]
    assert (queued["action"], queued["rule"], queued["state"]) == ("hold", "hold-my-number", "held")
    assert queued["findings"] == ["personal-data/my-number:3"]
    released = records[1]["details"]
    assert (released["approvals"], released["by"], released["verified_by"]) == (
        ["sys"],
        "sys",
        "os",
    )
    assert records[1]["prev_hash"] == records[0]["hash"]
    code, out, _ = cli("audit", "export", "--after-seq", "1", "--store", url)
    assert [json.loads(line)["seq"] for line in out.splitlines()] == [2]
    code, out, _ = cli("audit", "verify", "--store", url)
    assert (code, out.strip()) == (0, "audit log OK: 2 records, chain intact")


def test_audit_verify_exits_1_on_tampering(url: str, cli: Cli) -> None:
    """A changed record makes verify exit 1 and name the record."""
    import sqlite3

    entry = _enqueue(url)
    cli("queue", "release", entry.id, "--store", url)
    conn = sqlite3.connect(url.removeprefix("sqlite:///"))
    conn.execute("DROP TRIGGER audit_no_update")
    conn.execute("UPDATE audit SET actor = 'someone-else' WHERE seq = 2")
    conn.commit()
    conn.close()
    code, _, err = cli("audit", "verify", "--store", url)
    assert code == 1
    assert "BROKEN at record 2" in err


@pytest.mark.postgres
def test_an_unmigrated_postgres_schema_is_refused_not_migrated(cli: Cli) -> None:
    """A PostgreSQL schema serve never migrated is refused (no tables are created in it);
    once serve has created the store the same command works."""
    from tests.support.store import postgres_schema

    with postgres_schema() as pg:
        code, _, err = cli("queue", "list", "--store", pg)
        assert code == 1
        assert "has no sendguard queue tables in its search_path" in err
        code, _, err = cli("queue", "list", "--store", pg)
        assert "has no sendguard queue tables" in err  # still none: nothing was created
        _enqueue(pg)
        code, out, _ = cli("queue", "list", "--store", pg)
        assert code == 0 and "held" in out


def test_times_are_shown_in_the_one_display_zone(
    url: str, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`queue list` and `queue show` write times in ``notify.timezone``, like the notices and
    the console, not in the zone of the machine the command runs on (here New York)."""
    import time
    from zoneinfo import ZoneInfo

    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    monkeypatch.setenv("SENDGUARD_NOTIFY__TIMEZONE", "Asia/Tokyo")
    try:
        entry = _enqueue(url)
        tokyo = entry.created_at.astimezone(ZoneInfo("Asia/Tokyo"))
        _, listed, _ = cli("queue", "list", "--store", url)
        _, shown, _ = cli("queue", "show", entry.id, "--store", url)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert tokyo.strftime("%Y-%m-%d %H:%M") in listed
    assert f"Created:    {tokyo:%Y-%m-%d %H:%M:%S} JST" in shown
