"""`/healthz`, `/readyz` and `/metrics` on a real relay, read with a real HTTP client."""

from __future__ import annotations

import asyncio
import re
import signal
import socket
from collections.abc import Callable
from pathlib import Path

import aiohttp
import aiosmtplib
import pytest

from tests.support.relay import RelayProcess, running_relay, write_policy
from tests.support.upstream import RecordingUpstream

HOLD_EXTERNAL = """\
[organisation]
internal_domains = ["corp.example"]

[detectors.unresolvable-domain]
enabled = false   # no DNS in tests

[[rule]]
id = "hold-external"
description = "Hold every message to an outside address"
action = "hold"
recipients = "any-external"
reviewers = ["boss@corp.example"]
"""


@pytest.fixture(autouse=True)
def _logging(serve_logging: Callable[[str], None]) -> None:
    """Metrics are counted by the structlog chain that `sendguard serve` configures."""
    serve_logging("info")


def _message(n: int, to: str) -> bytes:
    return (
        f"From: tanaka@corp.example\r\nTo: {to}\r\nSubject: n{n}\r\n"
        f"Message-ID: <ops-{n}@corp.example>\r\n\r\nbody {n}\r\n"
    ).encode()


async def _send(port: int, n: int, to: str) -> None:
    await aiosmtplib.send(
        _message(n, to),
        sender="tanaka@corp.example",
        recipients=[to],
        hostname="127.0.0.1",
        port=port,
        timeout=15,
    )


async def _get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status, await response.text()


def _sample(text: str, name: str, **labels: str) -> float:
    """One sample's value from Prometheus text (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        metric, _, value = line.rpartition(" ")
        base, _, rest = metric.partition("{")
        have = ",".join(sorted(re.findall(r'\w+="[^"]*"', rest)))
        if base == name and have == wanted:
            return float(value)
    return 0.0


async def test_health_ready_and_metrics_in_one_relay(
    upstream: RecordingUpstream, tmp_path: Path
) -> None:
    policies = write_policy(tmp_path / "policies", HOLD_EXTERNAL)
    async with running_relay(
        upstream=upstream.url, policy_dir=policies, web_listen="127.0.0.1:0"
    ) as app:
        web = f"http://127.0.0.1:{app.web_bound[0][1]}"
        assert await _get(f"{web}/healthz") == (200, "ok\n")
        status, body = await _get(f"{web}/readyz")
        assert status == 200, body
        assert '"upstream": "ok"' in body and '"store": "ok"' in body

        _, before = await _get(f"{web}/metrics")
        await _send(app.bound[0][1], 1, "colleague@corp.example")
        await _send(app.bound[0][1], 2, "customer@client.example")
        _, after = await _get(f"{web}/metrics")

    passed = {"action": "pass", "rule": "", "reply_class": "2xx"}
    held = {"action": "hold", "rule": "hold-external", "reply_class": "2xx"}
    for labels in (passed, held):
        gained = _sample(after, "sendguard_transactions_total", **labels) - _sample(
            before, "sendguard_transactions_total", **labels
        )
        assert gained == 1, labels
    assert _sample(after, "sendguard_queue_entries", state="held") == 1
    assert _sample(after, "sendguard_queue_oldest_held_seconds") >= 0
    assert _sample(after, "sendguard_upstream_replies_total", reply_class="2xx") >= 1


async def test_not_ready_when_the_upstream_is_unreachable_or_draining(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]  # closed again: nothing listens there
    async with running_relay(
        upstream=f"smtp://127.0.0.1:{dead}", web_listen="127.0.0.1:0", upstream_timeout=2
    ) as app:
        web = f"http://127.0.0.1:{app.web_bound[0][1]}"
        status, body = await _get(f"{web}/readyz")
        assert status == 503
        assert '"ready": false' in body and '"store": "ok"' in body
        assert await _get(f"{web}/healthz") == (200, "ok\n")  # alive, just not ready
        assert app.ops is not None
        app.ops.checks.draining = True
        status, body = await _get(f"{web}/readyz")
        assert status == 503 and "draining" in body


@pytest.mark.slow
async def test_two_worker_processes_add_up_on_one_scrape(
    upstream: RecordingUpstream, tmp_path: Path
) -> None:
    """Metrics are per process; a scrape of either worker sees the node's total."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        smtp_port = probe.getsockname()[1]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        web_port = probe.getsockname()[1]
    relay = RelayProcess(
        {
            "SENDGUARD_UPSTREAM": upstream.url,
            "SENDGUARD_STORE": f"sqlite:///{tmp_path / 'queue.db'}",
            "SENDGUARD_LISTEN": f"127.0.0.1:{smtp_port}",
            "SENDGUARD_WEB_LISTEN": f"127.0.0.1:{web_port}",
            "SENDGUARD_WORKERS": "2",
        },
        cwd=tmp_path,
    ).start(timeout=90)
    try:
        async with asyncio.timeout(60):
            # Another process's log: polling is the only way to see it.
            while sum(e.get("event") == "web_listening" for e in relay.events()) < 2:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        count = 12
        # Separate connections: the kernel spreads them over both workers.
        await asyncio.gather(*(_send(smtp_port, n, "x@corp.example") for n in range(count)))
        _, text = await _get(f"http://127.0.0.1:{web_port}/metrics")
        labels = {"action": "pass", "rule": "", "reply_class": "2xx"}
        assert _sample(text, "sendguard_transactions_total", **labels) == count
    finally:
        relay.signal(signal.SIGTERM)
        assert relay.wait(30) == 0, relay.log_path.read_text()
