"""Put the review console on the relay's HTTP listener, and make the link signer for notices.

`App.start` calls `link_key` once, then `notice_links` for the notifier and `mount` for
the listener; nothing else in the relay knows about the console.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Protocol

from aiohttp import web

from sendguard.errors import ConfigError
from sendguard.model import Listener
from sendguard.notify.render import LinkBlock
from sendguard.notify.settings import NotifySettings
from sendguard.web.console import Console, ConsoleParts
from sendguard.web.keys import load_or_create_key
from sendguard.web.links import LinkSigner
from sendguard.web.settings import WebSettings


class Settings(Protocol):
    """The part of `sendguard.settings.Settings` the console reads (the settings module
    sits above every part, so the web package names only what it needs)."""

    @property
    def web(self) -> WebSettings: ...
    @property
    def notify(self) -> NotifySettings: ...
    @property
    def web_listen(self) -> tuple[Listener, ...]: ...


def wanted(settings: Settings) -> bool:
    """True when this node signs links or serves the console (so it needs the link key)."""
    return bool(settings.notify.base_url) or bool(settings.web_listen and settings.web.console)


async def link_key(settings: Settings) -> bytes:
    """The link key, created on first serve (mode 0600)."""
    return await asyncio.to_thread(load_or_create_key, settings.web.link_key_file)


def notice_links(settings: Settings, key: bytes) -> LinkBlock | None:
    """The notifier's link maker, or None without ``notify.base_url``."""
    if not settings.notify.base_url:
        return None
    return LinkSigner(key, settings.notify.base_url, hours=settings.web.link_hours).notice_links


def mount(app: web.Application, parts: ConsoleParts) -> Console:
    """Add the console under ``/review/`` (``/`` and ``/review`` redirect there)."""
    console = Console(parts)

    async def to_console(_request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/review/")

    app.router.add_get("/", to_console)
    app.router.add_get("/review", to_console)
    app.add_subapp("/review/", console.application())
    return console


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """HTTPS for the web listener from ``web.tls_cert``/``web.tls_key``; None for HTTP."""
    cert, key = settings.web.tls_cert, settings.web.tls_key
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise ConfigError("web.tls_cert and web.tls_key go together")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(cert), str(key))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"web TLS certificate {cert}: {exc}") from exc
    return context
