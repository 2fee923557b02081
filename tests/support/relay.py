"""Run sendguard for tests: in the test's loop (`running_relay`) or as a process (`RelayProcess`).

Both listen on 127.0.0.1 port 0; the process variant reads its bound port from its own
JSON ``listening`` log event, so tests never guess ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from sendguard.app import App, build_app
from sendguard.settings import load_settings

INSPECT_ONLY_POLICY = """\
# Every detector runs, no rule acts: mail passes unless the test's own policy says otherwise.
allow_empty = true

[organisation]
internal_domains = ["example.jp"]

[detectors.unresolvable-domain]
enabled = false   # tests never query DNS
"""


def hold_external_policy(domain: str) -> str:
    """A policy that holds every message with a visible outside recipient for `domain`'s
    boss (the queue tests' standard hold)."""
    return f"""\
[organisation]
internal_domains = ["{domain}"]

[detectors.unresolvable-domain]
enabled = false   # no DNS in tests

[[rule]]
id = "hold-external"
description = "Hold every message to an outside address"
action = "hold"
recipients = "any-external"
reason = "External mail is held for review"
reviewers = ["boss@{domain}"]
when.any = [{{ detector = "visible-recipients", code = "external-visible" }}]
"""


def write_policy(directory: Path, text: str = INSPECT_ONLY_POLICY) -> Path:
    """Write a one-file policy directory for a test relay."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "policy.toml").write_text(text, encoding="utf-8")
    return directory


@contextlib.asynccontextmanager
async def running_relay(**overrides: Any) -> AsyncIterator[App]:
    """An `App` on 127.0.0.1:0 in the current loop; `app.bound[0][1]` is its port.

    Unless given, the store is a fresh SQLite file and the policy inspects everything but
    acts on nothing (`INSPECT_ONLY_POLICY`), both in a temporary directory.
    """
    with tempfile.TemporaryDirectory(prefix="sendguard-test-") as tmp:
        overrides.setdefault("listen", "127.0.0.1:0")
        overrides.setdefault("web_listen", "")  # off unless the test asks (tests share ports)
        overrides.setdefault("workers", 1)
        overrides.setdefault("store", f"sqlite:///{tmp}/queue.db")
        overrides.setdefault("web", {"link_key_file": f"{tmp}/link.key"})
        if "policy_dir" not in overrides:
            overrides["policy_dir"] = write_policy(Path(tmp) / "policies")
        app = build_app(load_settings(**overrides))
        await app.start()
        try:
            yield app
        finally:
            await app.stop()


class RelayProcess:
    """`python -m sendguard serve` in a child process, configured by environment variables."""

    def __init__(self, env: Mapping[str, str], *, cwd: Path, args: tuple[str, ...] = ()) -> None:
        if "SENDGUARD_POLICY_DIR" not in env and not (cwd / "policies").exists():
            write_policy(cwd / "policies")
        defaults = {
            "SENDGUARD_LISTEN": "127.0.0.1:0",
            "SENDGUARD_WEB_LISTEN": "",
            "SENDGUARD_WORKERS": "1",
            "SENDGUARD_WEB__LINK_KEY_FILE": str(cwd / "link.key"),
        }
        self.env = {**os.environ, **defaults, **env}
        self.cwd = cwd
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.log_path = cwd / f"relay-{time.monotonic_ns()}.log"

    def start(self, timeout: float = 90.0) -> RelayProcess:
        """Start and wait until the relay logs that it listens; a relay that does not start in
        time is killed (a loaded CI machine can take many seconds to import and fork)."""
        self._log = open(self.log_path, "wb")  # noqa: SIM115  # closed in stop()
        self.proc = subprocess.Popen(  # our own interpreter and module
            [sys.executable, "-m", "sendguard", "serve", *self.args],
            env=self.env,
            cwd=self.cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.events():
                if event.get("event") == "listening":
                    self.port = int(str(event["address"]).rsplit(":", 1)[1])
                    return self
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"relay exited {self.proc.returncode}: {self.log_path.read_text()}"
                )
            time.sleep(0.05)
        self.proc.kill()
        self.proc.wait(10)
        raise TimeoutError(f"relay did not start: {self.log_path.read_text()}")

    def wait_for(self, event_name: str, timeout: float = 15.0) -> dict[str, Any]:
        """The first log event of that name, waiting for it (e.g. ``web_listening``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.events():
                if event.get("event") == event_name:
                    return event
            time.sleep(0.05)
        raise TimeoutError(f"no {event_name} event: {self.log_path.read_text()}")

    def events(self) -> list[dict[str, Any]]:
        """Every JSON log event so far."""
        out = []
        for line in self.log_path.read_text("utf-8", errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if isinstance(event, dict):
                    out.append(event)
        return out

    def signal(self, sig: signal.Signals) -> None:
        """Send a signal to the relay."""
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 20.0) -> int:
        """Wait for the relay to exit by itself; returns the exit code."""
        assert self.proc is not None
        code = self.proc.wait(timeout)
        self._log.close()
        return code

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait; returns the exit code (SIGKILL if it does not exit in time)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


async def run_tool(
    *argv: str,
    stdin: bytes | None = None,
    timeout: float = 60,  # noqa: ASYNC109  # a test helper's bound on a child process
) -> tuple[int, str]:
    """Run a real client (swaks, smtp-source) without blocking the loop the relay runs in."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(stdin), timeout)
    return proc.returncode or 0, out.decode("utf-8", errors="replace")
