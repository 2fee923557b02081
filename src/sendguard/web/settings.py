"""Settings of the review console and of the signed links in notices.

Nested into `sendguard.settings.Settings` as ``web`` (environment ``SENDGUARD_WEB__…``,
e.g. ``SENDGUARD_WEB__LINK_KEY_FILE=/var/lib/sendguard/link.key``). The listener itself is
``SENDGUARD_WEB_LISTEN`` (shared with ``/healthz``, ``/readyz`` and ``/metrics``).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import NoDecode

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class WebSettings(BaseModel):
    """Every field has a documented default."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    console: bool = True
    """Serve the review console (``/review/``) on the web listener. Default on."""
    link_key_file: Path = Path("./var/link.key")
    """HMAC key of signed links and session cookies; created (mode 0600) on first serve.
    Kept outside the database so a copy of the database cannot forge links."""
    link_hours: float = Field(default=72.0, gt=0)
    """Hours a signed link in a notice stays valid. Default 72."""
    session_hours: float = Field(default=8.0, gt=0)
    """Hours a console sign-in lasts. Default 8 (a working day)."""
    tls_cert: Path | None = None
    """PEM certificate for HTTPS on the web listener; default none (plain HTTP, for
    loopback or behind a TLS-terminating reverse proxy)."""
    tls_key: Path | None = None
    """PEM private key for `tls_cert`."""
    trusted_proxies: Annotated[tuple[IPNetwork, ...], NoDecode] = ()
    """Reverse proxies whose ``X-Forwarded-For``/``X-Forwarded-Proto`` (and `sso_header`)
    are believed. Default none: forwarded headers are ignored."""
    sso_header: str = ""
    """Header a trusted proxy sets to the signed-in login (single sign-on, e.g.
    ``X-Forwarded-User`` from oauth2-proxy in front of Entra ID or Google). Default off."""
    login_failures: int = Field(default=5, ge=1)
    """Failed sign-ins (per login and per client address) before a lockout. Default 5."""
    lockout_minutes: float = Field(default=15.0, gt=0)
    """Minutes a login or client address stays locked out. Default 15."""

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_networks(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(
                ipaddress.ip_network(v.strip(), strict=False) for v in value.split(",") if v.strip()
            )
        return value
