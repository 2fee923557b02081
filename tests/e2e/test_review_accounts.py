"""The review CLI as a real process run by different operating-system accounts.

Who acts is the account running ``sendguard queue``, so these tests start the CLI as
Debian's system accounts (daemon, bin, sys, mail, nobody), which the test policy's
``[people]`` maps to reviewers, an admin and the sender (`REVIEW_POLICY`). That needs root;
CI runs as root, elsewhere the tests are skipped.

How a process becomes another account: ``subprocess.run(user=, group=, extra_groups=[])``
(the kernel changes uid and gid before exec) when that account may execute this Python.
When it may not — an interpreter under ``/root`` (pyenv), which is mode 0700 — a root
Python imports sendguard, drops to the account (``initgroups``, ``setgid``, ``setuid``: real,
effective and saved ids all change) and then runs the same ``sendguard.cli.main.main``. In
both cases the CLI sees only the account's ids; ``$USER`` and friends are set to lie.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from sendguard.entry import Entry
from sendguard.model import Action, HoldParams
from sendguard.queue.backends import open_store
from tests.support.review import write_review_policy
from tests.support.store import sample_envelope, sample_message, sample_verdict

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.geteuid() != 0,
        reason="runs the CLI as other operating-system accounts (daemon, bin, sys, mail, "
        "nobody), which only root can do; CI runs the tests as root",
    ),
]

_DROP_AND_RUN = """
import os, pwd, sys
import encodings.idna
import sendguard.cli.main as cli
import sendguard.policy.load, sendguard.queue.sqlite, sendguard.review.service
cli.build_parser()  # imports every sub-command module while this Python can still read them
account = pwd.getpwnam(sys.argv[1])
os.initgroups(account.pw_name, account.pw_gid)
os.setgid(account.pw_gid)
os.setuid(account.pw_uid)
sys.exit(cli.main(sys.argv[2:]))
"""

LIES = {"USER": "sys", "LOGNAME": "sys", "SUDO_USER": "sys"}
"""Client-supplied names claiming the admin; the CLI must ignore them."""


@cache
def _python_runs_as_others() -> bool:
    """Whether another account may execute this interpreter and import sendguard."""
    try:
        probe = subprocess.run(
            [sys.executable, "-c", "import sendguard"],
            user="nobody",
            group=pwd.getpwnam("nobody").pw_gid,
            extra_groups=[],
            capture_output=True,
            check=False,
            timeout=60,
        )
    except PermissionError:
        return False
    return probe.returncode == 0


@dataclass
class Relay:
    """A relay's settings file, policy and store, all readable and writable by anyone."""

    home: Path
    config: Path
    url: str

    def run(
        self,
        *argv: str,
        user: str | None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        config: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``sendguard ARGV`` as `user` (None: as root) with stdin not a terminal."""
        environ = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", **LIES}
        if "PYTHONPATH" in os.environ:
            environ["PYTHONPATH"] = os.environ["PYTHONPATH"]
        environ["SENDGUARD_CONFIG"] = str(self.config) if config else ""
        environ.update(env or {})
        if user is None:
            command = [sys.executable, "-m", "sendguard", *argv]
            ids: dict[str, object] = {}
        elif _python_runs_as_others():
            command = [sys.executable, "-m", "sendguard", *argv]
            account = pwd.getpwnam(user)
            ids = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
        else:
            command = [sys.executable, "-c", _DROP_AND_RUN, user, *argv]
            ids = {}
        return subprocess.run(
            command,
            env=environ,
            cwd=cwd or self.home,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            umask=0,  # the WAL files a CLI run creates stay usable by the next account
            check=False,
            timeout=60,
            **ids,  # type: ignore[call-overload]
        )

    def enqueue(self, hold: HoldParams, state: str = "held", *, rcpts: int = 1) -> Entry:
        """Queue a message from tanaka@corp.example (AUTH tanaka) as the relay would."""

        async def go() -> Entry:
            store = await open_store(self.url)
            try:
                return await store.enqueue(
                    envelope=sample_envelope(
                        "tanaka@corp.example", *(f"c{i}@client.example" for i in range(rcpts))
                    ),
                    data=sample_message(),
                    verdict=sample_verdict(
                        Action.HOLD if state == "held" else Action.DELAY,
                        hold=hold,
                        delay_minutes=5,
                    ),
                    state=state,  # type: ignore[arg-type]
                )
            finally:
                await store.close()

        entry = asyncio.run(go())
        _open_up(self.home)
        return entry

    def states(self) -> dict[str, str]:
        """Each entry's state."""

        async def go() -> dict[str, str]:
            store = await open_store(self.url)
            try:
                return {e.id: e.state for e in await store.list()}
            finally:
                await store.close()

        return asyncio.run(go())


def _open_up(directory: Path) -> None:
    for path in [directory, *directory.rglob("*")]:
        path.chmod(0o777 if path.is_dir() else 0o666)


@pytest.fixture
def relay() -> Iterator[Relay]:
    """A relay home outside pytest's 0700 temporary tree, open to every account."""
    home = Path(tempfile.mkdtemp(prefix="sendguard-review-"))
    try:
        policies = write_review_policy(home / "policies")
        url = f"sqlite:///{home / 'var' / 'sendguard.db'}"
        config = home / "sendguard.toml"
        config.write_text(f'store = "{url}"\npolicy_dir = "{policies}"\n', "utf-8")
        asyncio.run(_create(url))
        _open_up(home)
        yield Relay(home=home, config=config, url=url)
    finally:
        shutil.rmtree(home, ignore_errors=True)


async def _create(url: str) -> None:
    store = await open_store(url)  # what serve does on its first start
    await store.close()


def test_second_approval_needs_a_second_listed_reviewer(relay: Relay) -> None:
    """approvals = 2: the reviewer who approved cannot approve again by naming someone else
    with --actor (when it was free text, `--actor random-intern` released the mail), nor can
    an account that [people] does not list, whatever $USER says; a second reviewer can."""
    hold = HoldParams(
        reviewers=("boss@corp.example", "security@corp.example"), approvals_required=2
    )
    entry = relay.enqueue(hold)
    first = relay.run("queue", "release", entry.id, user="daemon")
    assert (first.returncode, first.stdout.strip()) == (
        0,
        f"{entry.id}: approved by daemon (1/2 approvals)",
    )
    again = relay.run("queue", "release", entry.id, "--actor", "random-intern", user="daemon")
    assert again.returncode == 1
    assert "--actor is for admins: you are daemon (reviewer)" in again.stderr
    stranger = relay.run("queue", "release", entry.id, user="nobody", env={"USER": "daemon"})
    assert stranger.returncode == 1
    assert "nobody is not listed in the policy's [people]" in stranger.stderr
    sender = relay.run("queue", "release", entry.id, user="mail")
    assert sender.returncode == 1
    assert "does not allow the sender to release it" in sender.stderr
    assert relay.states() == {entry.id: "held"}
    second = relay.run(
        "queue",
        "release",
        entry.id,
        user="bin",
        env={"SUDO_UID": str(pwd.getpwnam("daemon").pw_uid)},
    )
    assert (second.returncode, second.stdout.strip()) == (0, f"{entry.id}: released by bin")
    audit = relay.run("audit", "export", user="nobody")
    decided = [json.loads(line) for line in audit.stdout.splitlines()][1:]
    assert [(r["event"], r["actor"], r["details"]["verified_by"]) for r in decided] == [
        ("approved", "daemon", "os"),
        ("released", "bin", "os"),
    ]


def test_root_is_one_admin_and_sudo_is_the_invoking_account(relay: Relay) -> None:
    """Root may act for a named reviewer (recorded as such) but approves once; under sudo
    the invoking account acts, with its own rights."""
    hold = HoldParams(reviewers=("boss@corp.example",), approvals_required=3)
    entry = relay.enqueue(hold)
    as_boss = relay.run("queue", "release", entry.id, "--actor", "boss", user=None)
    assert as_boss.stdout.strip() == f"{entry.id}: approved by boss, by admin root (1/3 approvals)"
    as_kacho = relay.run("queue", "release", entry.id, "--actor", "kacho", user=None)
    assert as_kacho.returncode == 1
    assert "root has already approved" in as_kacho.stderr
    sudo = {"SUDO_UID": str(pwd.getpwnam("daemon").pw_uid), "SUDO_USER": "sys"}
    via_sudo = relay.run("queue", "release", entry.id, "--actor", "boss", user=None, env=sudo)
    assert via_sudo.returncode == 1
    assert "you are daemon (reviewer)" in via_sudo.stderr
    via_sudo = relay.run("queue", "release", entry.id, user=None, env=sudo)
    assert via_sudo.stdout.strip() == f"{entry.id}: approved by daemon (2/3 approvals)"
    audit = relay.run("audit", "export", user=None)
    decided = [json.loads(line) for line in audit.stdout.splitlines()][1:]
    assert [(r["actor"], r["details"]["by"], r["details"]["verified_by"]) for r in decided] == [
        ("boss, by admin root", "root", "os"),
        ("daemon", "daemon", "sudo"),
    ]


def test_release_all_shows_and_asks_before_releasing(relay: Relay) -> None:
    """`release ALL` with no terminal and no --yes releases nothing (it used to release
    every held message, the My Number one included); it lists what it would release; with
    --yes the admin releases them."""
    my_number = relay.enqueue(HoldParams(reviewers=("security@corp.example",)), rcpts=3)
    other = relay.enqueue(HoldParams(reviewers=("boss@corp.example",)))
    refused = relay.run("queue", "release", "ALL", user="sys")
    assert refused.returncode == 1
    assert "no terminal to ask on; add --yes" in refused.stderr
    listed = refused.stdout
    assert f"{my_number.id}  tanaka@corp.example  rule=hold-my-number  3 rcpt  → released" in listed
    assert f"{other.id}  tanaka@corp.example  rule=hold-my-number  1 rcpt  → released" in listed
    assert relay.states() == {my_number.id: "held", other.id: "held"}
    done = relay.run("queue", "release", "ALL", "--yes", user="sys")
    assert done.returncode == 0, done.stderr
    assert f"{my_number.id}: released by sys" in done.stdout
    assert relay.states() == {my_number.id: "released", other.id: "released"}


def test_cancel_is_the_senders(relay: Relay) -> None:
    """Delayed mail: a reviewer cannot cancel it; the account whose address sent it can."""
    entry = relay.enqueue(HoldParams(), "delayed")
    other = relay.run("queue", "cancel", entry.id, user="daemon")
    assert other.returncode == 1
    assert "only the sender (tanaka@corp.example) or an admin can cancel" in other.stderr
    sender = relay.run("queue", "cancel", entry.id, user="mail")
    assert (sender.returncode, sender.stdout.strip()) == (
        0,
        f"{entry.id}: cancelled; it will not be sent",
    )


def test_queue_commands_elsewhere_never_create_a_store(relay: Relay) -> None:
    """Run from another directory without the relay's settings: refused with the absolute
    path it looked at (it used to leave a new empty database and "queue is empty")."""
    elsewhere = relay.home / "elsewhere"
    elsewhere.mkdir(mode=0o777)
    elsewhere.chmod(0o777)
    for argv in (("queue", "list"), ("audit", "verify")):
        result = relay.run(*argv, user="daemon", cwd=elsewhere, config=False)
        assert result.returncode == 1
        assert f"no queue store at {elsewhere / 'var' / 'sendguard.db'}" in result.stderr
        assert "queue is empty" not in result.stdout
    assert list(elsewhere.iterdir()) == []
    found = relay.run("queue", "list", user="daemon", cwd=elsewhere)
    assert (found.returncode, found.stdout.strip()) == (0, "queue is empty")
