"""Who is at the browser: signed session cookies, CSRF tokens, client addresses, lockouts.

- **Sessions** are itsdangerous-signed cookies (the link key, a salt of their own) holding
  the login, how it signed in and a random CSRF token; they expire after
  ``web.session_hours``. Cookies are ``HttpOnly``, ``SameSite=Strict``, path ``/review``,
  and ``Secure`` when the browser came over HTTPS (directly, or via a trusted proxy's
  ``X-Forwarded-Proto``). Nothing is kept server-side, so every relay process (they share
  the port) accepts every session.
- **CSRF**: every POST carries a ``csrf`` field equal to the session's token (before sign-in
  and on link pages, a random ``sg_csrf`` cookie's). `SameSite=Strict` already keeps other
  sites' forms from sending the cookies; the token also stops same-site forms.
- **Client address**: the peer, or — only when the peer is one of
  ``web.trusted_proxies`` — the last ``X-Forwarded-For`` hop.
- **Lockout**: ``web.login_failures`` failed sign-ins for one login or one client address
  within ``web.lockout_minutes`` lock it for that long (per relay process).
"""

from __future__ import annotations

import ipaddress
import secrets
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Literal

from aiohttp import web
from itsdangerous import BadSignature, URLSafeTimedSerializer

from sendguard.web.settings import WebSettings

SESSION_COOKIE = "sg_session"
CSRF_COOKIE = "sg_csrf"
_SALT = "sendguard-session-v1"


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in browser."""

    login: str
    csrf: str
    how: Literal["password", "sso"]


class Sessions:
    """Issues and reads session cookies; knows about trusted proxies."""

    def __init__(self, key: bytes, settings: WebSettings) -> None:
        self._serializer = URLSafeTimedSerializer(key, salt=_SALT)
        self._settings = settings
        self.max_age = int(settings.session_hours * 3600)

    def _trusted(self, request: web.Request) -> bool:
        if not self._settings.trusted_proxies or request.remote is None:
            return False
        try:
            peer = ipaddress.ip_address(request.remote)
        except ValueError:
            return False
        return any(peer in net for net in self._settings.trusted_proxies)

    def client_address(self, request: web.Request) -> str:
        """The browser's address (see module doc)."""
        if self._trusted(request):
            hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",")]
            if hops and hops[-1]:
                return hops[-1]
        return request.remote or "-"

    def secure(self, request: web.Request) -> bool:
        """The browser reached us over HTTPS (cookies then get ``Secure``)."""
        if request.secure:
            return True
        return self._trusted(request) and request.headers.get("X-Forwarded-Proto") == "https"

    def sso_login(self, request: web.Request) -> str | None:
        """The login a trusted proxy vouches for in ``web.sso_header``; None otherwise."""
        header = self._settings.sso_header
        if not header or not self._trusted(request):
            return None
        value = request.headers.get(header, "").strip().casefold()
        return value if value and value.isprintable() and len(value) <= 254 else None

    def read(self, request: web.Request) -> Session | None:
        """The valid session of this request, if any."""
        raw = request.cookies.get(SESSION_COOKIE)
        if not raw:
            return None
        try:
            data = self._serializer.loads(raw, max_age=self.max_age)
        except BadSignature:
            return None
        if not isinstance(data, dict):
            return None
        login, csrf, how = data.get("u"), data.get("c"), data.get("h")
        if (
            not isinstance(login, str)
            or not isinstance(csrf, str)
            or how not in ("password", "sso")
        ):
            return None
        return Session(login=login, csrf=csrf, how=how)

    def issue(self, response: web.StreamResponse, request: web.Request, session: Session) -> None:
        """Set the session cookie on `response`."""
        value = self._serializer.dumps({"u": session.login, "c": session.csrf, "h": session.how})
        self._set(response, request, SESSION_COOKIE, value, self.max_age)

    def clear(self, response: web.StreamResponse) -> None:
        """Remove the session cookie."""
        response.del_cookie(SESSION_COOKIE, path="/review")

    def new_session(self, login: str, how: Literal["password", "sso"]) -> Session:
        """A session with a fresh CSRF token."""
        return Session(login=login, csrf=secrets.token_urlsafe(24), how=how)

    def pre_csrf(self, request: web.Request) -> tuple[str, bool]:
        """The CSRF token for pages without a session, and whether it is new (to be set)."""
        value = request.cookies.get(CSRF_COOKIE, "")
        if len(value) >= 20 and value.isascii():
            return value, False
        return secrets.token_urlsafe(24), True

    def set_pre_csrf(self, response: web.StreamResponse, request: web.Request, value: str) -> None:
        """Set the pre-sign-in CSRF cookie."""
        self._set(response, request, CSRF_COOKIE, value, self.max_age)

    def _set(
        self,
        response: web.StreamResponse,
        request: web.Request,
        name: str,
        value: str,
        max_age: int,
    ) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path="/review",
            httponly=True,
            samesite="Strict",
            secure=self.secure(request),
        )


class Lockout:
    """Counts failed sign-ins per key (login, client address) and locks noisy keys."""

    def __init__(self, failures: int, minutes: float) -> None:
        self._failures = failures
        self._window = minutes * 60
        self._seen: defaultdict[str, deque[float]] = defaultdict(deque)
        self._locked_until: dict[str, float] = {}

    def locked(self, *keys: str) -> bool:
        """True when any of `keys` is locked now."""
        now = time.monotonic()
        return any(self._locked_until.get(k, 0.0) > now for k in keys)

    def failed(self, *keys: str) -> list[str]:
        """Count a failure for each key; return the keys that just became locked."""
        now = time.monotonic()
        newly = []
        for key in keys:
            seen = self._seen[key]
            seen.append(now)
            while seen and seen[0] < now - self._window:
                seen.popleft()
            if len(seen) >= self._failures and self._locked_until.get(key, 0.0) <= now:
                self._locked_until[key] = now + self._window
                seen.clear()
                newly.append(key)
        return newly

    def succeeded(self, key: str) -> None:
        """Forget the failures of `key` (a correct password for that login)."""
        self._seen.pop(key, None)
