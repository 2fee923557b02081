"""The container image is built from deploy/container/Containerfile with podman and relays a
message: read-only root, state on a volume, the image's own user, STARTTLS certificate from a
mounted secrets directory. Runs only where podman is installed (scripts/setup installs it and
makes the base image with scripts/container-base when no registry answers).

The podman options are the ones that work in a locked-down CI sandbox as well as on a normal
host: vfs storage (no overlay), RUN steps isolated by chroot (no OCI runtime needed to
build), runc with cgroupfs (crun refuses hybrid cgroup v1/v2 mounts), and rlimits at or below
the caller's own (a sandbox without CAP_SYS_RESOURCE cannot raise them).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import smtplib
import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.support.relay import write_policy
from tests.support.tls import make_self_signed
from tests.support.upstream import RecordingUpstream

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(1500),  # the build installs every dependency from the index
    pytest.mark.skipif(shutil.which("podman") is None, reason="podman is not installed"),
]

PODMAN = ["podman", "--storage-driver=vfs", "--runtime=runc", "--cgroup-manager=cgroupfs"]
BASE = "docker.io/library/python:3.11-slim-bookworm"
IMAGE = "localhost/sendguard:test"
UID = 10025
"""The image's user (`USER 10025:10025` in the Containerfile)."""


def _podman(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # podman from PATH, fixed arguments
        [*PODMAN, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    """The image, built from the working tree (its RUN steps install the wheel); removed
    afterwards with its build layers (vfs storage copies the whole tree at every step)."""
    if _podman("image", "exists", BASE).returncode != 0:
        pytest.fail(f"base image {BASE} missing: run scripts/container-base (as root)")
    built = _podman(
        "build",
        "--format=docker",  # keeps HEALTHCHECK (the OCI format drops it)
        "--isolation=chroot",
        "--pull=never",
        "--layers=false",  # no intermediate images left behind (removed in teardown)
        "--network=host",
        "-t",
        IMAGE,
        "-f",
        str(REPO / "deploy" / "container" / "Containerfile"),
        str(REPO),
        timeout=1200,
    )
    try:
        assert built.returncode == 0, built.stderr[-3000:]
        yield IMAGE
    finally:
        _podman("rmi", "-f", IMAGE, timeout=300)
        _podman("image", "prune", "-f", timeout=300)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _container(*args: str) -> Iterator[str]:
    name = f"sendguard-test-{uuid.uuid4().hex[:8]}"
    started = _podman("run", "-d", "--name", name, *args, timeout=120)
    assert started.returncode == 0, started.stderr
    try:
        yield name
    finally:
        _podman("rm", "-f", "-t", "5", name, timeout=60)


def _events(name: str) -> list[dict[str, object]]:
    logs = _podman("logs", name)
    out = []
    for line in (logs.stdout + logs.stderr).splitlines():
        with contextlib.suppress(ValueError):
            event = json.loads(line)
            if isinstance(event, dict):
                out.append(event)
    return out


def _wait_for(name: str, event: str, timeout: float = 60) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for found in _events(name):
            if found.get("event") == event:
                return found
        time.sleep(0.5)
    raise AssertionError(f"no {event} event: {_podman('logs', name).stderr[-3000:]}")


def test_image_healthcheck_and_user(image: str) -> None:
    """The built image keeps its HEALTHCHECK and runs as the unprivileged user."""
    inspected = json.loads(_podman("image", "inspect", image).stdout)[0]
    assert inspected["Config"]["User"] == f"{UID}:{UID}"
    assert "healthz" in " ".join(inspected["Healthcheck"]["Test"])


async def test_image_relays_a_message(image: str, tmp_path: Path) -> None:
    """The image serves with a read-only root and relays one message to a real upstream."""
    state, secrets = tmp_path / "state", tmp_path / "secrets"
    state.mkdir()
    shutil.chown(state, UID, UID)
    pair = make_self_signed(secrets, "relay")
    pair.cert.rename(secrets / "tls.crt")
    pair.key.rename(secrets / "tls.key")
    (secrets / "users").write_text("")
    for path in secrets.iterdir():
        path.chmod(0o644)  # read by uid 10025 through the bind mount
    write_policy(tmp_path / "policies")
    smtp_port, http_port = _free_port(), _free_port()
    async with RecordingUpstream() as up:
        run = (
            "--read-only",
            "--tmpfs=/tmp",
            "--network=host",
            "--ulimit=nofile=1024:1024",
            "--ulimit=nproc=4096:4096",
            f"--volume={state}:/var/lib/sendguard",
            f"--volume={secrets}:/run/secrets:ro",
            f"--volume={tmp_path / 'policies'}:/etc/sendguard/policies:ro",
            f"--env=SENDGUARD_LISTEN=127.0.0.1:{smtp_port}",
            f"--env=SENDGUARD_WEB_LISTEN=127.0.0.1:{http_port}",
            f"--env=SENDGUARD_UPSTREAM=smtp://127.0.0.1:{up.port}",
            "--env=SENDGUARD_TRUSTED_NETWORKS=127.0.0.1/32",
            "--env=SENDGUARD_WORKERS=1",
            image,
        )
        with _container(*run) as name:
            await asyncio.to_thread(_wait_for, name, "listening")
            data = b"From: a@example.jp\r\nTo: b@partner.test\r\nSubject: c\r\n\r\nhello\r\n"

            def send() -> None:
                with smtplib.SMTP("127.0.0.1", smtp_port, timeout=30) as client:
                    client.starttls()
                    client.sendmail("a@example.jp", ["b@partner.test"], data)

            await asyncio.to_thread(send)
            [received] = await up.wait_for(1, timeout=30)
            health = await asyncio.to_thread(
                urllib.request.urlopen, f"http://127.0.0.1:{http_port}/healthz", timeout=10
            )
            assert health.status == 200
            stopped = await asyncio.to_thread(_podman, "stop", "-t", "30", name)
            assert stopped.returncode == 0
            events = [e.get("event") for e in await asyncio.to_thread(_events, name)]
            waited = await asyncio.to_thread(_podman, "wait", name)
    assert received.rcpt_tos == ("b@partner.test",) and received.data.endswith(data)
    assert waited.stdout.strip() == "0"
    assert "transaction" in events and events[-1] == "shutdown_finished"
    assert (state / "sendguard.db").exists()  # held mail would survive the container
