"""Upstream URLs: every scheme, credentials kept secret, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from sendguard.deliver.target import parse_target
from sendguard.errors import ConfigError


def test_starttls_with_credentials_hides_password() -> None:
    """Percent-encoded credentials are decoded; the password never shows in str()."""
    t = parse_target("smtp+starttls://relay%40example.jp:p%40ss@smtp.office365.com:587")
    assert (t.scheme, t.host, t.port, t.username) == (
        "smtp+starttls",
        "smtp.office365.com",
        587,
        "relay@example.jp",
    )
    assert t.password is not None and t.password.get_secret_value() == "p@ss"
    assert "p@ss" not in str(t) and "p@ss" not in repr(t)


@pytest.mark.parametrize(
    ("url", "port"),
    [("smtp://mx.test", 25), ("smtps://mx.test", 465), ("smtp+starttls://mx.test", 587)],
)
def test_default_ports(url: str, port: int) -> None:
    """Each scheme has its usual port."""
    assert parse_target(url).port == port


def test_maildir() -> None:
    """maildir:DIR is the embedded upstream."""
    t = parse_target("maildir:./var/delivered")
    assert t.path == Path("./var/delivered") and not t.is_smtp


@pytest.mark.parametrize("url", ["http://x.test", "smtp://", "maildir:", "smtp://h:port"])
def test_bad_urls(url: str) -> None:
    """Unsupported schemes, missing hosts and bad ports are configuration errors."""
    with pytest.raises(ConfigError):
        parse_target(url)
