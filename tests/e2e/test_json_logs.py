"""Every line a real relay process writes to stderr is one JSON object (README "Logs").

On main, aiosmtpd's "Session.login_data is deprecated" warning (on every AUTH) and other
stdlib log lines were plain text between the JSON lines.
"""

from __future__ import annotations

import json
import signal
import smtplib
import ssl
import time
from pathlib import Path

from sendguard.intake.auth import UsersFile
from tests.support.attachments import Attachment, build_message, zip_archive
from tests.support.relay import RelayProcess
from tests.support.tls import make_self_signed

DATA = b"From: alice@example.jp\r\nTo: bob@partner.test\r\nSubject: hi\r\n\r\nhello\r\n"
# An attachment: inspected in the extraction pool's worker processes.
ZIPPED = build_message(attachments=[Attachment("a.zip", zip_archive({"a.txt": b"hello"}))])


def test_every_stderr_line_of_a_normal_day_is_json(tmp_path: Path) -> None:
    """AUTH + STARTTLS mail, a refused relay attempt, a dropped connection, SIGHUP, SIGTERM:
    every line parses as a JSON object, and the deprecation noise is gone."""
    certs = make_self_signed(tmp_path / "tls")
    users = tmp_path / "users"
    UsersFile(users).add("alice", "correct horse battery")
    relay = RelayProcess(
        {
            "SENDGUARD_AUTH_MODE": "local",
            "SENDGUARD_USERS_FILE": str(users),
            "SENDGUARD_TLS_CERT": str(certs.cert),
            "SENDGUARD_TLS_KEY": str(certs.key),
            "SENDGUARD_TRUSTED_NETWORKS": "",
            "PYTHONWARNINGS": "default",  # warnings on, as a careful admin might run it
        },
        cwd=tmp_path,
    ).start()
    try:
        context = ssl.create_default_context(cafile=str(certs.cert))
        for data in (DATA, ZIPPED):
            with smtplib.SMTP("127.0.0.1", relay.port, timeout=30) as client:
                client.starttls(context=context)
                client.login("alice", "correct horse battery")
                client.sendmail("alice@example.jp", ["bob@partner.test"], data)
        with smtplib.SMTP("127.0.0.1", relay.port, timeout=30) as client:
            client.ehlo()
            code, _ = client.docmd("MAIL FROM:<x@example.jp>")
            assert code == 250
            code, _ = client.docmd("RCPT TO:<y@partner.test>")
            assert code == 550  # not authenticated, not trusted
        with smtplib.SMTP("127.0.0.1", relay.port, timeout=30) as client:
            client.sock.close()  # type: ignore[union-attr]  # gone without QUIT
        relay.signal(signal.SIGHUP)
        time.sleep(0.5)
    finally:
        assert relay.stop() == 0
    lines = relay.log_path.read_text("utf-8").splitlines()
    assert lines, "the relay logged nothing"
    for line in lines:
        event = json.loads(line)  # raises on any plain-text line
        assert isinstance(event, dict) and "event" in event and "timestamp" in event, line
    text = "\n".join(lines)
    assert "deprecated" not in text
    assert "correct horse battery" not in text
    events = [json.loads(line)["event"] for line in lines]
    assert events.count("transaction") == 2
    assert "reload_requested" in events and events[-1] == "shutdown_finished"
