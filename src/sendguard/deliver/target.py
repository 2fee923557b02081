"""Where delivered mail goes: the parsed form of ``SENDGUARD_UPSTREAM``.

Credentials in the URL are percent-decoded and kept as `SecretStr`, so a target can be
logged (`str()`) without leaking the password.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import SecretStr

from sendguard.errors import ConfigError

Scheme = Literal["smtp", "smtp+starttls", "smtps", "maildir"]
_DEFAULT_PORTS: dict[str, int] = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}


@dataclass(frozen=True, slots=True)
class UpstreamTarget:
    """A parsed upstream: an SMTP server (with TLS mode and optional account) or a maildir."""

    scheme: Scheme
    host: str = ""
    port: int = 0
    username: str | None = None
    password: SecretStr | None = None
    path: Path | None = None

    @property
    def is_smtp(self) -> bool:
        """True unless this is the embedded maildir."""
        return self.scheme != "maildir"

    @property
    def encrypted(self) -> bool:
        """True when the session is TLS (``smtps``) or must upgrade (``smtp+starttls``)."""
        return self.scheme in ("smtps", "smtp+starttls")

    def __str__(self) -> str:
        if self.scheme == "maildir":
            return f"maildir:{self.path}"
        user = f"{self.username}@" if self.username else ""
        return f"{self.scheme}://{user}{self.host}:{self.port}"


def parse_target(url: str) -> UpstreamTarget:
    """Read ``smtp://h:25``, ``smtp+starttls://u:p@h:587``, ``smtps://h`` or ``maildir:DIR``."""
    if url.startswith("maildir:"):
        path = url.removeprefix("maildir:").removeprefix("//")
        if not path:
            raise ConfigError("upstream maildir: needs a directory, e.g. maildir:./var/delivered")
        return UpstreamTarget(scheme="maildir", path=Path(path))
    parts = urlsplit(url)
    if parts.scheme not in _DEFAULT_PORTS:
        raise ConfigError(
            f"upstream {url.split('@')[-1]!r}: scheme must be smtp, smtp+starttls, smtps or maildir"
        )
    try:
        port = parts.port or _DEFAULT_PORTS[parts.scheme]
    except ValueError as exc:
        raise ConfigError(f"upstream port is not a number: {exc}") from exc
    if not parts.hostname:
        raise ConfigError("upstream URL has no host, e.g. smtp+starttls://smtp.office365.com:587")
    if parts.hostname.rstrip(".").endswith(".invalid") or parts.hostname == "invalid":
        # RFC 2606's never-resolving name: the deploy recipes ship it as a placeholder, so a
        # relay started before the admin set the real upstream refuses to start, loudly.
        raise ConfigError(
            f"upstream host {parts.hostname!r} is a placeholder: set SENDGUARD_UPSTREAM to your"
            " real outgoing server (e.g. smtp+starttls://smtp.office365.com:587)"
        )
    scheme: Scheme = parts.scheme  # type: ignore[assignment]  # checked against _DEFAULT_PORTS
    return UpstreamTarget(
        scheme=scheme,
        host=parts.hostname,
        port=port,
        username=unquote(parts.username) if parts.username else None,
        password=SecretStr(unquote(parts.password)) if parts.password else None,
    )
