"""The review console: sign-in, the queue, one message, release/reject/delete, signed links.

Mounted under ``/review/`` on the relay's HTTP listener (`sendguard.ops.http`), next to the
unauthenticated ``/healthz``, ``/readyz`` and ``/metrics``. Pages are rendered on the
server (Jinja2, autoescaped) and work without JavaScript; the Content-Security-Policy
allows no script at all. Every decision goes through `ReviewService`, i.e. the same
`sendguard.review.rules` the CLI uses, with an `Actor` verified by the sign-in
(``web``) or by a signed link (``link``); the audit records the client address too.
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
import structlog
from aiohttp import web

from sendguard.entry import Entry, State
from sendguard.errors import NotFound, ReviewError, StoreError
from sendguard.intake.auth import UsersFile
from sendguard.notify.render import shown_time
from sendguard.notify.settings import Language, NotifySettings
from sendguard.policy.people import People
from sendguard.queue.store import Store, utcnow
from sendguard.review import rules
from sendguard.review.actor import Actor
from sendguard.review.details import describe
from sendguard.review.service import ReviewService
from sendguard.web.i18n import STRINGS, pick_language
from sendguard.web.links import LinkError, LinkSigner, link_actor
from sendguard.web.session import Lockout, Session, Sessions
from sendguard.web.settings import WebSettings

log = structlog.get_logger(__name__)

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
_OPEN_STATES: tuple[State, ...] = ("held", "delayed")
_MAX_BODY = 100_000
"""Characters of the text body shown; a longer body is cut (the reviewer sees that)."""
_LINK_STATES = {"cancel": "delayed", "send_now": "delayed", "confirm": "held",
                "request_review": "held"}  # fmt: skip
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
LANG = web.RequestKey("sendguard_lang", str)
SESSION: web.RequestKey[Session | None] = web.RequestKey("sendguard_session")
CSRF = web.RequestKey("sendguard_csrf", str)
ISSUE: web.RequestKey[Session | None] = web.RequestKey("sendguard_issue_session")


@dataclass(frozen=True, slots=True)
class ConsoleParts:
    """What the console reads; callables so that reloads and reopened stores are seen."""

    store: Callable[[], Store | None]
    people: Callable[[], People]
    users: UsersFile
    web: WebSettings
    notify: NotifySettings
    key: bytes


class Console:
    """The console's aiohttp sub-application."""

    def __init__(self, parts: ConsoleParts) -> None:
        self.parts = parts
        self.sessions = Sessions(parts.key, parts.web)
        self.lockout = Lockout(parts.web.login_failures, parts.web.lockout_minutes)
        self.links = LinkSigner(parts.key, parts.notify.base_url or "", hours=parts.web.link_hours)
        self._zone = ZoneInfo(parts.notify.timezone)
        self._jinja = jinja2.Environment(
            loader=jinja2.PackageLoader("sendguard.web", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self._css = resources.files("sendguard.web").joinpath("templates", "style.css").read_bytes()

    def application(self) -> web.Application:
        """The sub-application to mount at ``/review/``."""
        app = web.Application(middlewares=[self._guard])
        app.router.add_get("/", self.queue)
        app.router.add_get("/login", self.login_page)
        app.router.add_post("/login", self.login)
        app.router.add_post("/logout", self.logout)
        app.router.add_get("/dashboard", self.dashboard)
        app.router.add_get("/q/{queue_id}", self.detail)
        app.router.add_post("/q/{queue_id}/{action}", self.act)
        app.router.add_get("/link/{token}", self.link_page)
        app.router.add_post("/link/{token}", self.link_act)
        app.router.add_get("/static/style.css", self.style)
        return app

    # ------------------------------------------------------------------ plumbing

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Security headers on every answer; the CSRF token checked on every POST."""
        request[LANG] = pick_language(request.headers.get("Accept-Language", ""))
        request[ISSUE] = None
        session = self.sessions.read(request)
        sso = self.sessions.sso_login(request)
        if sso is not None and (session is None or session.login != sso):
            session = self.sessions.new_session(sso, "sso")
            request[ISSUE] = session
        request[SESSION] = session
        pre, new_pre = self.sessions.pre_csrf(request)
        request[CSRF] = session.csrf if session else pre
        try:
            response = await self._checked(request, handler)
        except web.HTTPException as exc:  # redirects and refusals raised by handlers
            self._finish(request, exc, session, pre if new_pre else None)
            raise
        self._finish(request, response, session, pre if new_pre else None)
        return response

    async def _checked(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method != "POST":
            return await handler(request)
        form = await request.post()
        sent = form.get("csrf")
        if isinstance(sent, str) and sent and sent == request[CSRF]:
            return await handler(request)
        log.warning("web_csrf_refused", path=request.path,
                    client=self.sessions.client_address(request))  # fmt: skip
        t = self._t(request)
        return self._page(request, "message.html", status=403, title=t["refused"],
                          message=t["csrf"])  # fmt: skip

    def _finish(
        self,
        request: web.Request,
        response: web.StreamResponse,
        session: Session | None,
        new_pre: str | None,
    ) -> None:
        issue = request[ISSUE]
        if issue is not None:
            self.sessions.issue(response, request, issue)
        if new_pre and session is None:
            self.sessions.set_pre_csrf(response, request, new_pre)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        # Link tokens are in the path: never send it to another site.
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers.setdefault("Cache-Control", "no-store")

    def _t(self, request: web.Request) -> dict[str, str]:
        lang: Language = "en" if request.get(LANG) == "en" else "ja"
        return STRINGS[lang]

    def _page(
        self, request: web.Request, template: str, *, status: int = 200, **context: Any
    ) -> web.Response:
        session = request.get(SESSION)
        body = self._jinja.get_template(template).render(
            t=self._t(request),
            lang=request.get(LANG, "ja"),
            csrf=request.get(CSRF, ""),
            user=session.login if session else None,
            **context,
        )
        return web.Response(text=body, status=status, content_type="text/html", charset="utf-8")

    def _store(self) -> Store:
        store = self.parts.store()
        if store is None:
            raise web.HTTPServiceUnavailable(text="the queue store is not open yet")
        return store

    def _service(self) -> ReviewService:
        return ReviewService(self._store(), default_reviewers=self.parts.notify.reviewers)

    def _actor(self, request: web.Request) -> Actor | None:
        session = request.get(SESSION)
        if session is None:
            return None
        return Actor(login=session.login, person=self.parts.people().person(session.login),
                     verified_by="web")  # fmt: skip

    def _reviewer(self, request: web.Request) -> Actor:
        """The signed-in reviewer or admin; a redirect to sign in, or 403, otherwise."""
        actor = self._actor(request)
        if actor is None:
            raise web.HTTPSeeOther("/review/login")
        if actor.role not in ("reviewer", "admin"):
            raise web.HTTPForbidden(
                text=self._render_text(request, "message.html", title=self._t(request)["refused"],
                                       message=self._t(request)["not_reviewer"]),
                content_type="text/html",
            )  # fmt: skip
        return actor

    def _render_text(self, request: web.Request, template: str, **context: Any) -> str:
        return str(self._page(request, template, **context).text)

    def _context(
        self, request: web.Request, extra: Mapping[str, object] | None = None
    ) -> dict[str, object]:
        """Audit details every console decision carries: where it came from."""
        return {"client": self.sessions.client_address(request), **(extra or {})}

    def _visible(self, actor: Actor, entry: Entry) -> bool:
        """May `actor` see and decide on `entry` in the console?"""
        if entry.state == "delayed":
            return True  # reviewers may send delayed mail early or reject it (rules)
        return rules.may_review(actor, rules.reviewers_of(entry, self.parts.notify.reviewers))

    def when(self, value: dt.datetime | None) -> str:
        """A time in the display zone, as the notices show it."""
        return shown_time(value, self._zone)

    # ------------------------------------------------------------------ sign-in

    async def style(self, _request: web.Request) -> web.Response:
        response = web.Response(body=self._css, content_type="text/css")
        response.headers["Cache-Control"] = "max-age=3600"
        return response

    async def login_page(self, request: web.Request) -> web.Response:
        return self._page(request, "login.html", error=None, login="")

    async def login(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        login = str(form.get("login", "")).strip()
        password = str(form.get("password", ""))
        client = self.sessions.client_address(request)
        keys = (f"login:{login.casefold()}", f"client:{client}")
        t = self._t(request)
        if self.lockout.locked(*keys):
            log.warning("web_login_refused_locked", login=login, client=client)
            return self._page(request, "login.html", status=429, error=t["locked"], login=login)
        identity = await self.parts.users.check(login, password) if login and password else None
        if identity is None:
            for key in self.lockout.failed(*keys):
                log.warning("web_login_locked", key=key, minutes=self.parts.web.lockout_minutes)
                await self._audit("web_login_locked", actor=login or "-",
                                  details={"key": key, "client": client})  # fmt: skip
            log.info("web_login_failed", login=login, client=client)
            return self._page(request, "login.html", status=401, error=t["bad_login"], login=login)
        self.lockout.succeeded(keys[0])
        session = self.sessions.new_session(identity.login.casefold(), "password")
        log.info("web_login", login=session.login, client=client)
        response = _see_other("/review/")
        self.sessions.issue(response, request, session)
        return response

    async def logout(self, request: web.Request) -> web.StreamResponse:
        response = _see_other("/review/login")
        self.sessions.clear(response)
        return response

    async def _audit(self, event: str, *, actor: str, details: Mapping[str, object],
                     queue_id: str | None = None) -> None:  # fmt: skip
        store = self.parts.store()
        if store is None:
            return
        try:
            await store.audit(event, actor=actor, queue_id=queue_id, details=details)
        except StoreError as exc:
            log.error("web_audit_failed", audit_event=event, error=str(exc))

    # ------------------------------------------------------------------ queue

    async def queue(self, request: web.Request) -> web.Response:
        actor = self._reviewer(request)
        query = request.query
        state = query.get("state", "")
        rule = query.get("rule", "").strip()
        sender = query.get("sender", "").strip().casefold()
        try:
            older = float(query.get("older", "") or 0)
        except ValueError:
            older = 0.0
        states = [s for s in _OPEN_STATES if s == state] or list(_OPEN_STATES)
        now = utcnow()
        entries = []
        for entry in await self._store().list(states=states):
            if not self._visible(actor, entry):
                continue
            if rule and (entry.verdict.rule_id or "") != rule:
                continue
            if sender and sender not in entry.envelope.mail_from.casefold():
                continue
            if older and (now - entry.created_at) < dt.timedelta(hours=older):
                continue
            entries.append(entry)
        rows = [
            {
                "id": e.id,
                "state": e.state,
                "sender": e.envelope.mail_from or "<>",
                "rule": e.verdict.rule_id or "-",
                "age": _age(now - e.created_at),
                "approvals": f"{len(e.approvals)}/{e.verdict.hold.approvals_required}"
                if e.state == "held"
                else "-",
            }
            for e in entries
        ]
        return self._page(request, "queue.html", rows=rows, state=state, rule=rule,
                          sender=query.get("sender", ""), older=query.get("older", ""),
                          states=_OPEN_STATES)  # fmt: skip

    async def detail(self, request: web.Request, *, notice: str = "", error: str = "",
                     status: int = 200) -> web.Response:  # fmt: skip
        actor = self._reviewer(request)
        queue_id = request.match_info["queue_id"]
        t = self._t(request)
        try:
            entry = await self._store().get(queue_id)
        except NotFound:
            return self._page(request, "message.html", status=404, title=t["refused"],
                              message=t["not_found"])  # fmt: skip
        if not self._visible(actor, entry):
            return self._page(request, "message.html", status=403, title=t["refused"],
                              message=t["forbidden"])  # fmt: skip
        details = describe(entry)
        if request.method == "GET":
            # Telemetry: a release after a "viewed" by the same login counts as looked-at.
            seen = {"verified_by": actor.verified_by, **self._context(request)}
            await self._audit("viewed", actor=actor.login, queue_id=entry.id, details=seen)
        labels = _attachment_labels(entry.data)
        per_file = {
            a.filename: [f for f in details.findings if _found_in(f.where, a.filename, labels)]
            for a in details.attachments
        }
        return self._page(
            request,
            "detail.html",
            status=status,
            d=details,
            e=entry,
            per_file=per_file,
            body=_text_body(entry.data),
            reviewers=", ".join(rules.reviewers_of(entry, self.parts.notify.reviewers)) or "-",
            expires_at=self.when(entry.expires_at),
            release_at=self.when(entry.release_at),
            notice=notice,
            error=error,
            admin=actor.is_admin,
        )

    async def act(self, request: web.Request) -> web.Response:
        actor = self._reviewer(request)
        queue_id = request.match_info["queue_id"]
        action = request.match_info["action"]
        form = await request.post()
        t = self._t(request)
        service = self._service()
        context = self._context(request)
        try:
            if action == "release":
                result = (await service.release([queue_id], actor, context=context))[0]
                if result.entry is None:
                    raise ReviewError(result.error)
                missing = result.entry.verdict.hold.approvals_required - len(result.entry.approvals)
                notice = (
                    t["done_released"]
                    if result.outcome == "released"
                    else t["done_approved"].format(missing=missing)
                )
            elif action == "reject":
                await service.reject(queue_id, actor, str(form.get("reason", "")),
                                     context=context)  # fmt: skip
                notice = t["done_rejected"]
            elif action == "delete":
                await service.delete(queue_id, actor)
                log.info("web_deleted", queue_id=queue_id, by=actor.login,
                         client=context["client"])  # fmt: skip
                return self._page(request, "message.html", title=t["done_deleted"],
                                  message=t["done_deleted"])  # fmt: skip
            else:
                raise web.HTTPNotFound()
        except NotFound:
            return self._page(request, "message.html", status=404, title=t["refused"],
                              message=t["not_found"])  # fmt: skip
        except ReviewError as exc:
            log.info("web_action_refused", action=action, queue_id=queue_id, by=actor.login)
            return await self.detail(request, error=str(exc), status=403)
        log.info("web_action", action=action, queue_id=queue_id, by=actor.login,
                 client=context["client"])  # fmt: skip
        return await self.detail(request, notice=notice)

    # ------------------------------------------------------------------ signed links

    async def _link_entry(self, request: web.Request) -> tuple[Any, Entry] | web.Response:
        t = self._t(request)
        try:
            link = self.links.read(request.match_info["token"])
        except LinkError as exc:
            log.warning("web_link_refused", why=exc.why,
                        client=self.sessions.client_address(request))  # fmt: skip
            message = t["link_expired"] if exc.why == "expired" else t["link_invalid"]
            return self._page(request, "message.html", status=410 if exc.why == "expired"
                              else 400, title=t["refused"], message=message)  # fmt: skip
        try:
            entry = await self._store().get(link.queue_id)
        except NotFound:
            return self._page(request, "message.html", status=404, title=t["refused"],
                              message=t["not_found"])  # fmt: skip
        if entry.state != _LINK_STATES[link.action]:
            return self._page(request, "message.html", status=409, title=t["refused"],
                              message=t["link_state"].format(state=t[entry.state]))  # fmt: skip
        return link, entry

    async def link_page(self, request: web.Request) -> web.Response:
        """A link opens this confirmation page; it changes nothing."""
        found = await self._link_entry(request)
        if isinstance(found, web.Response):
            return found
        link, entry = found
        subject = describe(entry).headers
        return self._page(request, "link.html", action=link.action, e=entry,
                          subject=next((v for k, v in subject if k == "Subject"), ""),
                          release_at=self.when(entry.release_at))  # fmt: skip

    async def link_act(self, request: web.Request) -> web.Response:
        """The confirmation page's POST: use the link once, then act as the entry's sender."""
        found = await self._link_entry(request)
        if isinstance(found, web.Response):
            return found
        link, entry = found
        t = self._t(request)
        store = self._store()
        expires = utcnow() + dt.timedelta(seconds=self.links.max_age)
        fresh = await store.use_once(f"link:{link.nonce}", queue_id=entry.id, action=link.action,
                                     expires_at=expires)  # fmt: skip
        if not fresh:
            log.warning("web_link_replayed", queue_id=entry.id, action=link.action)
            return self._page(request, "message.html", status=409, title=t["refused"],
                              message=t["link_used"])  # fmt: skip
        actor = link_actor(entry, self.parts.people())
        service = self._service()
        context = self._context(request, {"link": link.action})
        try:
            if link.action == "cancel":
                await service.cancel(entry.id, actor, context=context)
                message = t["done_cancelled"]
            elif link.action == "request_review":
                await service.request_review(entry.id, actor, context=context)
                message = t["done_review_requested"]
            else:
                result = (await service.release([entry.id], actor, context=context))[0]
                if result.entry is None:
                    raise ReviewError(result.error)
                message = t["done_released"]
        except (ReviewError, NotFound) as exc:
            log.info("web_link_action_refused", queue_id=entry.id, action=link.action)
            return self._page(request, "message.html", status=403, title=t["refused"],
                              message=str(exc))  # fmt: skip
        log.info("web_link_action", queue_id=entry.id, action=link.action, by=actor.login)
        return self._page(request, "message.html", title=message, message=message)

    # ------------------------------------------------------------------ telemetry

    async def dashboard(self, request: web.Request) -> web.Response:
        """Per rule: decisions, release rate, median time to decision, and how often a
        release followed opening the details (habituation: releasing without looking)."""
        self._reviewer(request)
        records = await self._store().audit_records(limit=20_000)
        queued: dict[str, tuple[str, dt.datetime]] = {}
        viewed: set[tuple[str, str]] = set()
        stats: dict[str, dict[str, Any]] = {}
        for record in records:
            if record.queue_id is None:
                continue
            details = json.loads(record.details)
            if record.event == "queued":
                queued[record.queue_id] = (str(details.get("rule") or "-"), record.at)
            elif record.event == "viewed":
                viewed.add((record.queue_id, record.actor))
            elif record.event in ("released", "rejected", "expired", "cancelled"):
                if record.queue_id not in queued:
                    continue
                rule, at = queued[record.queue_id]
                row = stats.setdefault(rule, {"n": 0, "released": 0, "minutes": [],
                                              "looked": 0})  # fmt: skip
                row["n"] += 1
                row["minutes"].append((record.at - at).total_seconds() / 60)
                if record.event == "released":
                    row["released"] += 1
                    by = str(details.get("by", record.actor))
                    row["looked"] += (record.queue_id, by) in viewed
        rows = [
            {
                "rule": rule,
                "n": row["n"],
                "release_rate": f"{100 * row['released'] / row['n']:.0f}%",
                "median": f"{statistics.median(row['minutes']):.0f}",
                "looked": f"{100 * row['looked'] / row['released']:.0f}%"
                if row["released"]
                else "-",
            }
            for rule, row in sorted(stats.items())
        ]
        return self._page(request, "dashboard.html", rows=rows)


def _see_other(location: str) -> web.Response:
    """A 303 to `location` (returned, so that cookies can be set on it)."""
    return web.Response(status=303, headers={"Location": location})


def _age(delta: dt.timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 60:
        return f"{minutes}m"
    if minutes < 48 * 60:
        return f"{minutes // 60}h"
    return f"{minutes // 1440}d"


def _attachment_labels(data: bytes) -> dict[str, str]:
    """File name → the ``attachment N`` label findings use (`sendguard.parse.mime` numbers
    every leaf that is not a text body, in order)."""
    msg = message_from_bytes(data, _class=EmailMessage, policy=default_policy)
    labels: dict[str, str] = {}
    count = 0
    for part in msg.walk():
        if part.is_multipart():
            continue
        filename = part.get_filename() or ""
        body = (
            part.get_content_type() in ("text/plain", "text/html")
            and not filename
            and part.get_content_disposition() != "attachment"
        )
        if body:
            continue
        count += 1
        if filename:
            labels.setdefault(" ".join(filename.split()), f"attachment {count}")
    return labels


def _found_in(where: tuple[str, ...], filename: str, labels: Mapping[str, str]) -> bool:
    """True when a finding's location is that file (by name, or by its attachment label)."""
    label = labels.get(filename)
    for place in where:
        if filename in place:
            return True
        if label and (place == label or place.startswith(f"{label} ")):
            return True
    return False


def _text_body(data: bytes) -> str | None:
    """The first text/plain part, decoded, as text (never HTML); None when there is none."""
    msg = message_from_bytes(data, _class=EmailMessage, policy=default_policy)
    try:
        part = msg.get_body(preferencelist=("plain",))
    except (KeyError, LookupError):
        return None
    if part is None:
        return None
    try:
        text = str(part.get_content())
    except (LookupError, UnicodeError, KeyError):
        payload = part.get_payload(decode=True)
        text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    return text[:_MAX_BODY]
