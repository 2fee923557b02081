"""Settings: environment, settings file and flags, with errors a person can act on."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from sendguard.errors import ConfigError
from sendguard.model import Listener
from sendguard.settings import load_settings


def test_defaults_are_safe(monkeypatch: pytest.MonkeyPatch) -> None:
    """Out of the box: loopback only, maildir upstream, loopback trusted, no AUTH, fail closed."""
    for key in ("SENDGUARD_LISTEN", "SENDGUARD_UPSTREAM", "SENDGUARD_TRUSTED_NETWORKS"):
        monkeypatch.delenv(key, raising=False)
    s = load_settings()
    assert s.listen == (Listener(host="127.0.0.1", port=2525),)
    assert s.upstream == "maildir:./var/delivered"
    assert ipaddress.ip_network("127.0.0.0/8") in s.trusted_networks
    assert s.auth_mode == "none" and s.on_error == "tempfail" and s.line_policy == "reject"
    # The client hears from us before its own RFC 5321 timeout of 10 minutes.
    assert s.reply_deadline < 600


def test_environment_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    """Comma-separated listeners and networks are read from the environment."""
    monkeypatch.setenv("SENDGUARD_LISTEN", "0.0.0.0:587, [::1]:2525")
    monkeypatch.setenv("SENDGUARD_TRUSTED_NETWORKS", "10.0.0.0/8,2001:db8::/32")
    s = load_settings()
    assert [str(x) for x in s.listen] == ["0.0.0.0:587", "[::1]:2525"]
    assert [str(n) for n in s.trusted_networks] == ["10.0.0.0/8", "2001:db8::/32"]


def test_xforward_hosts_default_to_none(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nobody may forward a client's identity unless configured; the list is read like
    the trusted networks."""
    monkeypatch.delenv("SENDGUARD_XFORWARD_HOSTS", raising=False)
    assert load_settings().xforward_hosts == ()
    monkeypatch.setenv("SENDGUARD_XFORWARD_HOSTS", "127.0.0.1, ::1")
    assert [str(n) for n in load_settings().xforward_hosts] == ["127.0.0.1/32", "::1/128"]


def test_empty_trusted_networks_trusts_nobody(monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty SENDGUARD_TRUSTED_NETWORKS means no network is trusted."""
    monkeypatch.setenv("SENDGUARD_TRUSTED_NETWORKS", "")
    assert load_settings().trusted_networks == ()


def test_flags_beat_environment_which_beats_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Precedence: CLI flags > environment > settings file > defaults."""
    config = tmp_path / "sendguard.toml"
    config.write_text('upstream = "smtp://file.test:25"\nmax_recipients = 50\nscan_budget = 5.0\n')
    monkeypatch.setenv("SENDGUARD_CONFIG", str(config))
    monkeypatch.setenv("SENDGUARD_MAX_RECIPIENTS", "70")
    s = load_settings(scan_budget=9.0)
    assert s.upstream == "smtp://file.test:25"
    assert s.max_recipients == 70
    assert s.scan_budget == 9.0


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("SENDGUARD_LISTEN", "localhost", "not host:port"),
        ("SENDGUARD_TRUSTED_NETWORKS", "10.0.0.0/33", "trusted_networks"),
        ("SENDGUARD_XFORWARD_HOSTS", "0.0.0.0/0", "xforward_hosts"),
        ("SENDGUARD_XFORWARD_HOSTS", "postfix.local", "xforward_hosts"),
        ("SENDGUARD_AUTH_MODE", "ldap", "auth_mode"),
        ("SENDGUARD_ON_ERROR", "pass", "on_error"),
        ("SENDGUARD_REPLY_DEADLINE", "600", "reply_deadline"),
        ("SENDGUARD_SMTP_TIMEOUT", "0", "smtp_timeout"),
    ],
)
def test_bad_values_name_the_setting(
    monkeypatch: pytest.MonkeyPatch, key: str, value: str, says: str
) -> None:
    """A bad value is refused with the setting named (never silently defaulted)."""
    monkeypatch.setenv(key, value)
    with pytest.raises((ConfigError, ValueError)) as info:
        load_settings()
    assert says in str(info.value)


def test_broken_settings_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A settings file that is not TOML is named in the error."""
    config = tmp_path / "bad.toml"
    config.write_text("upstream = \n")
    monkeypatch.setenv("SENDGUARD_CONFIG", str(config))
    with pytest.raises(ConfigError, match=r"bad\.toml"):
        load_settings()


def test_address_settings_default_to_the_safe_side(monkeypatch: pytest.MonkeyPatch) -> None:
    """Routing addresses are refused and Bcc fields removed unless the admin says otherwise;
    a typo in either value is an error, never a silent default."""
    monkeypatch.delenv("SENDGUARD_ROUTING_ADDRESSES", raising=False)
    monkeypatch.delenv("SENDGUARD_BCC_HEADER", raising=False)
    s = load_settings()
    assert (s.routing_addresses, s.bcc_header) == ("reject", "remove")
    monkeypatch.setenv("SENDGUARD_ROUTING_ADDRESSES", "external")
    monkeypatch.setenv("SENDGUARD_BCC_HEADER", "keep")
    s = load_settings()
    assert (s.routing_addresses, s.bcc_header) == ("external", "keep")
    monkeypatch.setenv("SENDGUARD_ROUTING_ADDRESSES", "allow")
    with pytest.raises(ConfigError, match="routing_addresses"):
        load_settings()


def test_etc_settings_file_is_the_default_and_can_be_switched_off(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without SENDGUARD_CONFIG the packaged file (/etc/sendguard/sendguard.toml, here a
    stand-in) is read when it exists; SENDGUARD_CONFIG names another; empty reads none."""
    from sendguard import settings as settings_module

    packaged = tmp_path / "etc.toml"
    packaged.write_text('store = "sqlite:////var/lib/sendguard/sendguard.db"\n')
    other = tmp_path / "other.toml"
    other.write_text('store = "sqlite:////srv/other.db"\n')
    monkeypatch.delenv("SENDGUARD_STORE", raising=False)
    monkeypatch.delenv("SENDGUARD_CONFIG", raising=False)
    monkeypatch.setattr(settings_module, "DEFAULT_CONFIG", tmp_path / "absent.toml")
    assert load_settings().store == "sqlite:///./var/sendguard.db"
    monkeypatch.setattr(settings_module, "DEFAULT_CONFIG", packaged)
    assert load_settings().store == "sqlite:////var/lib/sendguard/sendguard.db"
    monkeypatch.setenv("SENDGUARD_CONFIG", str(other))
    assert load_settings().store == "sqlite:////srv/other.db"
    monkeypatch.setenv("SENDGUARD_CONFIG", "")
    assert load_settings().store == "sqlite:///./var/sendguard.db"
