"""The deploy recipes are run, not just read: the Kubernetes manifests against the API schemas,
the systemd unit through `systemd-analyze verify`, the container's settings through the real
settings loader, and the wheel the image installs into a clean venv that relays a message."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import smtplib
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from sendguard.app import build_app
from sendguard.errors import ConfigError
from sendguard.settings import load_settings
from tests.conftest import REPO
from tests.support.tls import make_self_signed
from tests.support.upstream import RecordingUpstream

DEPLOY = REPO / "deploy"
K8S_VERSION = "1.33.0"


def _manifests() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(path.read_text("utf-8")) if d)
    return docs


def _kind(kind: str) -> dict[str, Any]:
    return next(d for d in _manifests() if d["kind"] == kind)


def test_kubernetes_manifests_validate_against_the_api_schemas() -> None:
    docs = _manifests()
    assert {d["kind"] for d in docs} >= {"Deployment", "Service", "PodDisruptionBudget"}
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_kubernetes_deployment_is_locked_down() -> None:
    pod = _kind("Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert not container["image"].endswith(":latest") and ":" in container["image"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["limits"]["memory"]
    env = {e["name"]: e for e in container["env"]}
    assert env["SENDGUARD_TRUSTED_NETWORKS"]["value"] == ""  # no network relays without login
    assert env["SENDGUARD_AUTH_MODE"]["value"] == "local"
    assert env["SENDGUARD_TLS_CERT"]["value"] and env["SENDGUARD_TLS_KEY"]["value"]
    for secret in ("SENDGUARD_STORE", "SENDGUARD_UPSTREAM"):
        assert "secretKeyRef" in env[secret]["valueFrom"]  # credentials never inline
    # Replicas share one audit chain and accept each other's links: the keys come from one
    # Secret, never created per pod.
    for key in ("SENDGUARD_AUDIT_KEY", "SENDGUARD_WEB__LINK_KEY_FILE"):
        assert env[key]["value"].startswith("/run/secrets/keys/")
    assert _kind("PodDisruptionBudget")["spec"]["minAvailable"] >= 1


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    systemd_analyze = shutil.which("systemd-analyze")
    if systemd_analyze is None:
        pytest.skip("systemd-analyze is not installed")
    unit = (DEPLOY / "systemd" / "sendguard.service").read_text("utf-8")
    after = re.search(r"^After=(.*)$", unit, re.M)
    assert after is not None and "postgresql" not in after.group(1)  # SQLite by default
    # verify checks that ExecStart exists: point it at this venv's entry point.
    entry = Path(sys.executable).with_name("sendguard")
    local = tmp_path / "sendguard.service"
    local.write_text(unit.replace("/opt/sendguard/bin/sendguard", str(entry)), "utf-8")
    result = subprocess.run(
        [systemd_analyze, "verify", str(local)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


def _containerfile_env() -> dict[str, str]:
    text = (DEPLOY / "container" / "Containerfile").read_text("utf-8")
    block = re.search(r"^ENV (.+?)(?<!\\)\n", text, re.M | re.S)
    assert block is not None
    pairs = shlex.split(block.group(1).replace("\\\n", " "))
    return dict(p.split("=", 1) for p in pairs)


def test_container_defaults_are_secure() -> None:
    text = (DEPLOY / "container" / "Containerfile").read_text("utf-8")
    env = _containerfile_env()
    assert env["SENDGUARD_TRUSTED_NETWORKS"] == ""
    assert env["SENDGUARD_AUTH_MODE"] == "local"
    assert env["SENDGUARD_STORE"].startswith("sqlite:////var/lib/sendguard/")
    assert re.search(r"^VOLUME .*/var/lib/sendguard", text, re.M)
    assert re.search(r"^USER [1-9]\d*", text, re.M)  # numeric, non-root
    assert re.search(r"^HEALTHCHECK .*/healthz", text, re.M | re.S)


def test_container_refuses_to_start_until_the_upstream_is_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pair = make_self_signed(tmp_path / "tls")
    env = _containerfile_env() | {
        "SENDGUARD_TLS_CERT": str(pair.cert),
        "SENDGUARD_TLS_KEY": str(pair.key),
        "SENDGUARD_POLICY_DIR": str(REPO / "policies"),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match="placeholder: set SENDGUARD_UPSTREAM"):
        build_app(load_settings())
    monkeypatch.setenv("SENDGUARD_UPSTREAM", "smtp+starttls://smtp.example.co.jp:587")
    build_app(load_settings())  # set: the image's defaults are a valid configuration


def test_compose_waits_for_postgres_restarts_and_holds_no_password() -> None:
    text = (DEPLOY / "container" / "compose.yaml").read_text("utf-8")
    compose = yaml.safe_load(text)
    assert not re.search(r"PASSWORD:\s*\S", text)  # only *_FILE / secrets
    for name in ("relay1", "relay2"):
        relay = compose["services"][name]
        assert relay["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert relay["restart"] == "unless-stopped"
        assert relay["read_only"] is True
        assert relay["environment"]["SENDGUARD_AUDIT_KEY"].startswith("/run/secrets/")
    assert "healthcheck" in compose["services"]["postgres"]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_wheel_the_image_installs_relays_a_message(tmp_path: Path) -> None:
    """What the image does, without a container engine: build the wheel, install it into a
    clean venv outside the repository, run it with the image's settings, send one message."""
    wheels, venv = tmp_path / "wheels", tmp_path / "venv"
    python = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(REPO)]
    subprocess.run(python, check=True, capture_output=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    (wheel,) = wheels.glob("sendguard-*.whl")
    pip = [str(venv / "bin" / "pip"), "install", "-q", "--no-compile", f"{wheel}[postgres]"]
    subprocess.run(pip, check=True, capture_output=True, timeout=600)
    sendguard = str(venv / "bin" / "sendguard")
    work = tmp_path / "state"
    work.mkdir()
    shutil.copytree(REPO / "policies", work / "policies")
    pair = make_self_signed(tmp_path / "tls")
    subprocess.run(
        [sendguard, "users", "--file", str(work / "users"), "add", "tanaka", "--password-stdin"],
        input=b"correct horse battery\n",
        check=True,
        capture_output=True,
    )

    async def run() -> None:
        async with RecordingUpstream() as upstream:
            env = {k: v for k, v in os.environ.items() if not k.startswith("SENDGUARD_")}
            env |= _containerfile_env() | {
                "SENDGUARD_LISTEN": "127.0.0.1:0",
                "SENDGUARD_WEB_LISTEN": "127.0.0.1:0",
                "SENDGUARD_WORKERS": "1",
                "SENDGUARD_TLS_CERT": str(pair.cert),
                "SENDGUARD_TLS_KEY": str(pair.key),
                "SENDGUARD_USERS_FILE": str(work / "users"),
                "SENDGUARD_POLICY_DIR": str(work / "policies"),
                "SENDGUARD_STORE": f"sqlite:///{work / 'sendguard.db'}",
                "SENDGUARD_UPSTREAM": upstream.url,
            }
            log = (tmp_path / "relay.log").open("wb")
            proc = subprocess.Popen(  # noqa: ASYNC220
                [sendguard, "serve"], env=env, cwd=work, stdout=log, stderr=subprocess.STDOUT
            )
            try:
                smtp_port, web_port = await asyncio.to_thread(_ports, tmp_path / "relay.log")
                await asyncio.to_thread(_send_with_login, smtp_port)
                received = await upstream.wait_for(1, timeout=30)
                health = await asyncio.to_thread(
                    lambda: urllib.request.urlopen(f"http://127.0.0.1:{web_port}/healthz").read()
                )
                assert health == b"ok\n"
            finally:
                proc.terminate()
                proc.wait(30)
                log.close()
            assert received[0].mail_from == "tanaka@example.co.jp"

    asyncio.run(run())


def _ports(log: Path, timeout: float = 120.0) -> tuple[int, int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
        smtp = [e["address"] for e in events if e.get("event") == "listening"]
        web = [e["address"] for e in events if e.get("event") == "web_listening"]
        if smtp and web:
            return int(smtp[0].rsplit(":", 1)[1]), int(web[0].rsplit(":", 1)[1])
        time.sleep(0.1)
    raise TimeoutError(log.read_text())


def _send_with_login(port: int) -> None:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # our own self-signed test certificate
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.starttls(context=context)
        client.login("tanaka", "correct horse battery")
        client.sendmail(
            "tanaka@example.co.jp",
            ["colleague@example.co.jp"],
            b"From: tanaka@example.co.jp\r\nTo: colleague@example.co.jp\r\n"
            b"Subject: hi\r\n\r\nhi\r\n",
        )


def _exported_metric_names() -> set[str]:
    """Every metric family the relay registers, and the queue gauges `/metrics` adds."""
    from prometheus_client import REGISTRY

    from sendguard.ops.metrics import QueueDepth, exposition

    body, _ = exposition(QueueDepth(by_state={"held": 1}, oldest_held_seconds=1.0))
    typed = {line.split()[2] for line in body.decode().splitlines() if line.startswith("# TYPE")}
    return typed | {family.name for family in REGISTRY.collect()}


def _referenced_metrics(text: str) -> set[str]:
    names = set(re.findall(r"\bsendguard_[a-z_]+", text))
    return {re.sub(r"_(total|bucket|count|sum|created)$", "", n) for n in names}


def test_alert_rules_and_dashboard_use_only_exported_metrics() -> None:
    """The Prometheus alerts and the Grafana dashboard in deploy/monitoring name metrics the
    relay really exports (a renamed metric would silently blank a panel or an alert)."""
    alerts_text = (DEPLOY / "monitoring" / "alerts.yaml").read_text("utf-8")
    dashboard_text = (DEPLOY / "monitoring" / "grafana-dashboard.json").read_text("utf-8")
    rules = [r for g in yaml.safe_load(alerts_text)["groups"] for r in g["rules"]]
    wanted = {
        "SendguardQueueGrowing",
        "SendguardOldestHoldPastExpiry",
        "SendguardUpstreamFailing",
        "SendguardPolicyReloadFailed",
    }
    assert wanted <= {r["alert"] for r in rules}
    assert all(r["expr"] and r["labels"]["severity"] for r in rules)
    dashboard = json.loads(dashboard_text)
    assert dashboard["panels"] and all(p["targets"] for p in dashboard["panels"])
    exported = _exported_metric_names()
    referenced = _referenced_metrics(alerts_text) | _referenced_metrics(dashboard_text)
    assert referenced and referenced <= exported, referenced - exported
