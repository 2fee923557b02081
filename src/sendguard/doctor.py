"""`sendguard doctor`: check a deployment as the relay would load it, and say what to fix.

Every check reads or probes, never changes: the store is opened without migrating (and is
never created), the upstream gets EHLO, STARTTLS, AUTH and ``MAIL FROM``/``RCPT TO`` of the
notice sender followed by ``RSET`` (no message is sent), listeners are bound and released.
Checks run in the order the relay starts (settings, policy, its start-up refusals, TLS,
listeners, store, keys, upstreams, DNS); a check whose input is broken is not run, its cause
is reported once. Each result has a stable kebab-case id, so scripts can match ``--json``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import errno
import ipaddress
import os
import socket
import sqlite3
import ssl
import stat
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import aiosmtplib
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from sendguard.app import build_app
from sendguard.deliver.target import UpstreamTarget, parse_target
from sendguard.detect.unresolvable_domain import UnresolvableDomain
from sendguard.errors import ConfigError, PolicyError, SendguardError, StoreError
from sendguard.model import Listener
from sendguard.policy.holder import load_settled
from sendguard.policy.load import LoadedPolicy
from sendguard.queue.auditkey import key_path, read_key
from sendguard.queue.existing import require_existing
from sendguard.queue.migrations import POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS
from sendguard.queue.sqlite import sqlite_path
from sendguard.settings import Settings, config_path, load_settings
from sendguard.web import mount

Status = Literal["ok", "warn", "fail"]

CERT_WARN_DAYS = 14
"""A certificate that expires sooner than this is a warning."""


@dataclass(frozen=True, slots=True)
class Result:
    """The outcome of one check: what was found and, unless OK, what to do about it."""

    check: str
    status: Status
    detail: str
    fix: str = ""


@dataclass(frozen=True, slots=True)
class Report:
    """Every result, in the order checked."""

    results: tuple[Result, ...]

    @property
    def ok(self) -> bool:
        """No check failed (warnings allowed)."""
        return all(r.status != "fail" for r in self.results)

    def as_json(self) -> dict[str, object]:
        """The ``--json`` document."""
        return {"ok": self.ok, "results": [asdict(r) for r in self.results]}


async def diagnose(*, deadline: float = 10.0) -> Report:
    """Run every check on the settings `sendguard serve` would load; `deadline` bounds each
    network probe (seconds)."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        return Report((Result("settings", "fail", str(exc), _settings_fix()),))
    out = [Result("settings", "ok", f"settings valid ({_settings_source()})")]
    policy, result = _policy(settings)
    out.append(result)
    if policy is not None:
        out.append(_startup_rules(settings))
    out.extend(_tls(settings))
    out.extend(await _listeners(settings, deadline))
    out.append(await _store(settings, deadline))
    out.extend(_key_files(settings))
    out.extend(await _upstreams(settings, policy, deadline))
    out.append(await _dns(policy))
    return Report(tuple(out))


def _settings_source() -> str:
    path = config_path()
    return f"file {path} and SENDGUARD_* environment" if path else "SENDGUARD_* environment"


def _settings_fix() -> str:
    path = config_path()
    where = f"in {path} or " if path else ""
    return f"correct the setting named above {where}in the SENDGUARD_* environment"


# ---------------------------------------------------------------------- policy and start-up


def _policy(settings: Settings) -> tuple[LoadedPolicy | None, Result]:

    try:
        loaded = load_settled(settings.policy_dir)
    except PolicyError as exc:
        fix = "fix the file named above; check again with `sendguard policy check`"
        return None, Result("policy", "fail", f"policy invalid: {exc}", fix)
    rules = len(loaded.policy.rules)
    detail = f"{settings.policy_dir}: {len(loaded.files)} file(s), {rules} rule(s)"
    return loaded, Result("policy", "ok", f"{detail}, version {loaded.version[:12]}")


def _startup_rules(settings: Settings) -> Result:
    """Everything `serve` refuses before it listens (pass-through safety, AUTH without TLS,
    plaintext passwords, placeholder upstreams): `build_app` itself, which opens nothing."""

    try:
        build_app(settings)
    except (SendguardError, OSError, ssl.SSLError, ValueError) as exc:
        return Result("startup-rules", "fail", f"serve would refuse to start: {exc}", _FIX_ABOVE)
    return Result("startup-rules", "ok", "serve's start-up checks pass (pass-through safety, AUTH)")


_FIX_ABOVE = "change the settings as the message above says"


# ---------------------------------------------------------------------- TLS and listeners


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _tls(settings: Settings) -> list[Result]:
    if settings.tls_cert is None:
        exposed = [str(li) for li in settings.listen if not _loopback(li.host)]
        if exposed:
            return [
                Result(
                    "tls",
                    "warn",
                    f"no certificate: clients on {', '.join(exposed)} send in clear, AUTH is off",
                    "set SENDGUARD_TLS_CERT and SENDGUARD_TLS_KEY (PEM files)",
                )
            ]
        return [Result("tls", "ok", "no certificate (listeners are on loopback only)")]
    if settings.tls_key is None:
        return [
            Result("tls", "fail", "tls_cert is set but tls_key is not", "set SENDGUARD_TLS_KEY")
        ]
    return [check_certificate(settings.tls_cert, settings.tls_key)]


def check_certificate(cert_file: Path, key_file: Path, *, now: dt.datetime | None = None) -> Result:
    """The listeners' certificate: readable, matching its key, valid now and for a while."""

    now = now or dt.datetime.now(dt.UTC)
    try:
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        return Result(
            "tls",
            "fail",
            f"cannot read certificate {cert_file} or key {key_file}: {exc}",
            "make both PEM files readable by the relay's user (key without a passphrase)",
        )
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if cert.public_key().public_bytes(*spki) != key.public_key().public_bytes(*spki):
        return Result(
            "tls",
            "fail",
            f"key {key_file} does not belong to certificate {cert_file}",
            "install the key the certificate was issued for",
        )
    until = cert.not_valid_after_utc
    if cert.not_valid_before_utc > now:
        return Result(
            "tls",
            "fail",
            f"certificate {cert_file} is not valid before {cert.not_valid_before_utc:%Y-%m-%d}",
            "check the clock, or install a certificate valid now",
        )
    if until <= now:
        return Result(
            "tls",
            "fail",
            f"certificate {cert_file} expired on {until:%Y-%m-%d}",
            "renew the certificate",
        )
    left = until - now
    notes = []
    if cert.issuer == cert.subject:
        notes.append("self-signed: every client must be told to trust it")
    if left < dt.timedelta(days=CERT_WARN_DAYS):
        notes.insert(0, f"expires in {left.days} day(s), on {until:%Y-%m-%d}")
    if notes:
        return Result(
            "tls",
            "warn",
            f"certificate {cert_file}: {'; '.join(notes)}",
            "renew it, or use a certificate from the organisation's CA",
        )
    return Result(
        "tls", "ok", f"certificate {cert_file} matches its key, valid until {until:%Y-%m-%d}"
    )


async def _listeners(settings: Settings, deadline: float) -> list[Result]:
    wait = min(deadline, 3.0)
    out = [await check_listener("smtp", li, wait) for li in settings.listen]
    return out + [await check_listener("http", li, wait) for li in settings.web_listen]


async def check_listener(
    kind: Literal["smtp", "http"], listener: Listener, deadline: float
) -> Result:
    """Bindable now, or already bound by a running sendguard (which answers as one)."""
    name = f"listen-{kind}"
    if listener.port == 0:
        return Result(name, "ok", f"{listener}: any free port")
    family = socket.AF_INET6 if ":" in listener.host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((listener.host, listener.port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            if await _ours(kind, listener, deadline):
                return Result(name, "ok", f"{listener}: in use by a running sendguard")
            return Result(
                name,
                "fail",
                f"{listener}: in use by another program",
                "stop it, or choose another port",
            )
        if exc.errno == errno.EACCES:
            return Result(
                name,
                "fail",
                f"{listener}: permission denied",
                "run with CAP_NET_BIND_SERVICE (systemd: AmbientCapabilities=), "
                "or listen above 1023 and map the port",
            )
        return Result(
            name,
            "fail",
            f"{listener}: cannot bind: {exc.strerror or exc}",
            "listen on an address of this machine",
        )
    return Result(name, "ok", f"{listener}: free to bind")


async def _ours(kind: str, listener: Listener, deadline: float) -> bool:
    """Does the program on that port answer like sendguard (its SMTP greeting names it; its
    ``/readyz`` answers with sendguard's checks)?"""
    host = (
        "127.0.0.1"
        if listener.host in ("0.0.0.0", "")  # noqa: S104  # connecting, not binding
        else "::1"
        if listener.host == "::"
        else listener.host
    )
    try:
        async with asyncio.timeout(deadline):
            reader, writer = await asyncio.open_connection(host, listener.port)
            try:
                if kind == "smtp":
                    greeting = await reader.readline()
                    writer.write(b"QUIT\r\n")
                    return greeting.startswith(b"220 ") and b"sendguard" in greeting
                writer.write(f"GET /readyz HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
                answer = await reader.read(4096)
                return b'"checks"' in answer and b'"ready"' in answer
            finally:
                writer.close()
    except (OSError, TimeoutError):
        return False


# ---------------------------------------------------------------------- store and key files


async def _store(settings: Settings, deadline: float) -> Result:

    url = settings.store
    try:
        await require_existing(url)
        if url.startswith("sqlite:"):
            version, latest = await asyncio.to_thread(_sqlite_state, url, deadline)
        else:
            version, latest = await _postgres_state(url, deadline)
    except StoreError as exc:
        return Result(
            "store",
            "fail",
            str(exc),
            "point SENDGUARD_STORE at the relay's store, "
            "or run `sendguard serve` once to create it",
        )
    if version > latest:
        return Result(
            "store",
            "fail",
            f"store is at schema {version}, newer than this sendguard ({latest})",
            "install the sendguard version that wrote it (or newer)",
        )
    if version < latest:
        return Result(
            "store",
            "warn",
            f"store is at schema {version}; this sendguard migrates it to {latest} "
            "when `serve` starts",
            "take a backup first (`sendguard backup`), then restart the relay (docs/operations.md)",
        )
    return Result("store", "ok", f"store reachable and writable, schema {version} (current)")


def _sqlite_state(url: str, deadline: float) -> tuple[int, int]:
    """(schema version, latest) of a SQLite store, proving it writable with a write lock
    taken and rolled back; opened read-write without creating anything."""

    path = sqlite_path(url).absolute()
    try:
        conn = sqlite3.connect(f"{path.as_uri()}?mode=rw", uri=True, timeout=deadline)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open {path} for writing: {exc}") from exc
    try:
        try:
            row = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"{path} is not a sendguard store: {exc}") from exc
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("UPDATE schema_version SET version = version WHERE version < 0")
            conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            raise StoreError(f"{path} is not writable: {exc}") from exc
    finally:
        conn.close()
    if not _writable_dir(path.parent):
        raise StoreError(f"directory {path.parent} is not writable (SQLite keeps its WAL there)")
    return int(row[0]), len(SQLITE_MIGRATIONS)


def _writable_dir(directory: Path) -> bool:

    return os.access(directory, os.W_OK | os.X_OK)


async def _postgres_state(url: str, deadline: float) -> tuple[int, int]:
    import psycopg  # only for a PostgreSQL store: a SQLite node never loads the driver

    try:
        async with await psycopg.AsyncConnection.connect(
            url, connect_timeout=max(1, int(deadline))
        ) as conn:
            cur = await conn.execute(
                "SELECT (SELECT COALESCE(MAX(version), 0) FROM schema_version),"
                " pg_is_in_recovery(), current_setting('transaction_read_only'),"
                " has_table_privilege('queue_entry', 'INSERT, UPDATE, DELETE')"
                " AND has_table_privilege('audit', 'INSERT')"
            )
            row = await cur.fetchone()
    except psycopg.Error as exc:
        raise StoreError(f"PostgreSQL store: {exc}") from exc
    assert row is not None
    version, replica, read_only, may_write = row
    if replica or read_only == "on" or not may_write:
        raise StoreError(
            "the PostgreSQL store is read-only for this login "
            "(a replica, or no INSERT/UPDATE/DELETE rights)"
        )
    return int(version), len(POSTGRES_MIGRATIONS)


def _key_files(settings: Settings) -> list[Result]:

    out = [check_secret_file("audit-key", key_path(settings.store, settings.audit_key), read_key)]
    if mount.wanted(settings):
        out.append(check_secret_file("link-key", settings.web.link_key_file, _read_link_key))
    if settings.auth_mode == "local":
        out.append(_users_file(settings.users_file))
    return out


def _read_link_key(path: Path) -> object:
    text = path.read_text("ascii").strip()
    if len(bytes.fromhex(text)) < 16:
        raise ConfigError(f"link key file {path} must hold at least 32 hex digits")
    return text


def check_secret_file(name: str, path: Path, read: Callable[[Path], object]) -> Result:
    """A key file: present, well-formed (`read` raises if not), readable by its owner only."""
    if not path.exists():
        return Result(
            name,
            "warn",
            f"{path} does not exist; `sendguard serve` creates it at first start",
            f"if this relay ran before, restore {path} from your backup: it is not in the database",
        )
    try:
        read(path)
    except (ConfigError, OSError, ValueError) as exc:
        return Result(name, "fail", f"{path}: {exc}", "restore the file from your backup")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        return Result(
            name,
            "fail",
            f"{path} has mode {mode:04o}: others can read the key",
            f"chmod 600 {path}",
        )
    return Result(name, "ok", f"{path} present, mode {mode:04o}")


def _users_file(path: Path) -> Result:
    if not path.is_file():
        return Result(
            "users-file",
            "fail",
            f"users file {path} does not exist (auth_mode=local)",
            "create it with `sendguard users add LOGIN`",
        )
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o007:
        return Result(
            "users-file",
            "warn",
            f"{path} has mode {mode:04o}: every local user can read the password hashes",
            f"chmod 640 {path}",
        )
    return Result("users-file", "ok", f"{path} present, mode {mode:04o}")


# ---------------------------------------------------------------------- upstreams and DNS


async def _upstreams(
    settings: Settings, policy: LoadedPolicy | None, deadline: float
) -> list[Result]:
    try:
        live = parse_target(settings.upstream)
        queue = parse_target(settings.queue_upstream) if settings.queue_upstream else None
    except ConfigError as exc:
        return [Result("upstream", "fail", str(exc), "set SENDGUARD_UPSTREAM to your mail server")]
    if queue is None and settings.auth_mode != "passthrough":
        queue = live
    sender = _notice_sender(settings, policy)
    out = await check_upstream(
        "upstream", live, settings, deadline, sender if queue is live else None
    )
    if queue is not None and queue is not live:
        out += await check_upstream("queue-upstream", queue, settings, deadline, sender)
    if queue is None:
        out.append(
            Result(
                "notice-sender",
                "ok",
                "no queue upstream (pass-through): nothing is queued, no notices are sent",
            )
        )
    elif not settings.notify.enabled:
        out.append(Result("notice-sender", "ok", "notices are off (notify.enabled = false)"))
    elif sender is None and policy is not None:
        out.append(
            Result(
                "notice-sender",
                "warn",
                "no notice sender: notices are not sent",
                "set SENDGUARD_NOTIFY__FROM_ADDRESS or the policy's internal_domains",
            )
        )
    return out


def _notice_sender(settings: Settings, policy: LoadedPolicy | None) -> str | None:
    """As `Notifier.from_address`: the setting, else ``postmaster@`` the first internal domain."""
    if not settings.notify.enabled:
        return None
    if settings.notify.from_address:
        return settings.notify.from_address
    domains = policy.policy.organisation.internal_domains if policy else ()
    return f"postmaster@{domains[0]}" if domains else None


async def check_upstream(
    name: str,
    target: UpstreamTarget,
    settings: Settings,
    deadline: float,
    notice_sender: str | None,
) -> list[Result]:
    """Connect, STARTTLS where the URL requires it (certificate checked for the host name),
    AUTH with the configured account, and if `notice_sender` is given: MAIL FROM and RCPT TO
    it, then RSET. Stops at the first failure: later steps would only repeat it."""
    if target.path is not None:
        return [_maildir(name, target.path)]
    where = f"{target.host}:{target.port}"
    smtp = aiosmtplib.SMTP(
        hostname=target.host,
        port=target.port,
        local_hostname=settings.hostname,
        timeout=deadline,
        use_tls=target.scheme == "smtps",
        start_tls=False,
        validate_certs=True,
        cert_bundle=str(settings.upstream_ca_file) if settings.upstream_ca_file else None,
    )
    out: list[Result] = []
    try:
        async with asyncio.timeout(deadline * 4):
            try:
                await smtp.connect()
                if not smtp.esmtp_extensions:
                    await smtp.ehlo()
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                tls = _tls_failure(exc)
                if tls and target.scheme == "smtps":
                    return [Result(f"{name}-tls", "fail", f"{where}: TLS failed: {tls}", _CERT_FIX)]
                return [
                    Result(
                        name,
                        "fail",
                        f"{where} not reachable within {deadline:g} s: {_why(exc)}",
                        "check the host name, port and firewall; "
                        "`swaks --server HOST:PORT --quit-after EHLO` shows the same",
                    )
                ]
            greeting = (
                smtp.last_ehlo_response.message.splitlines()[0] if smtp.last_ehlo_response else ""
            )
            out.append(Result(name, "ok", f"{where} answers ({greeting or 'ESMTP'})"))
            out.append(await _upstream_tls(name, target, smtp, where))
            if out[-1].status == "fail":
                return out
            if target.username is not None and target.password is not None:
                try:
                    await smtp.login(target.username, target.password.get_secret_value())
                except aiosmtplib.SMTPException as exc:
                    out.append(
                        Result(
                            f"{name}-auth",
                            "fail",
                            f"{where} refused the login for {target.username}: {_why(exc)}",
                            "correct the user and password in the upstream URL "
                            "(percent-encode @ as %40)",
                        )
                    )
                    return out
                out.append(Result(f"{name}-auth", "ok", f"logged in as {target.username}"))
            if notice_sender is not None:
                out.append(await _sender_accepted(smtp, notice_sender, where))
    except TimeoutError:
        out.append(
            Result(
                name,
                "fail",
                f"{where} stopped answering (over {deadline * 4:g} s)",
                "check the upstream server",
            )
        )
    finally:
        if smtp.is_connected:
            try:
                await asyncio.wait_for(smtp.quit(), 2)
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                smtp.close()
    return out


_CERT_FIX = (
    "the upstream's certificate must be valid for the host name in the URL: use that name, "
    "or set SENDGUARD_UPSTREAM_CA_FILE to the CA that signed it (never unverified)"
)


async def _upstream_tls(
    name: str, target: UpstreamTarget, smtp: aiosmtplib.SMTP, where: str
) -> Result:
    check = f"{name}-tls"
    if target.scheme == "smtp+starttls":
        if not smtp.supports_extension("starttls"):
            return Result(
                check,
                "fail",
                f"{where} does not offer STARTTLS",
                "use the upstream's submission port (587), or smtps:// on 465",
            )
        try:
            await smtp.starttls()
        except (aiosmtplib.SMTPException, OSError) as exc:
            return Result(
                check,
                "fail",
                f"{where}: STARTTLS failed: {_tls_failure(exc) or _why(exc)}",
                _CERT_FIX,
            )
    elif target.scheme == "smtp":
        if _loopback(target.host):
            return Result(check, "ok", "plain SMTP to a service on this machine")
        return Result(
            check,
            "warn",
            f"{where} is plain smtp://: mail crosses the network in clear",
            "use smtp+starttls:// (587) or smtps:// (465)",
        )
    return Result(check, "ok", f"TLS, certificate valid for {target.host}{_expiry(smtp)}")


def _expiry(smtp: aiosmtplib.SMTP) -> str:
    transport = smtp.transport
    cert = transport.get_extra_info("peercert") if transport is not None else None
    if not isinstance(cert, dict) or "notAfter" not in cert:
        return ""
    until = dt.datetime.fromtimestamp(ssl.cert_time_to_seconds(str(cert["notAfter"])), dt.UTC)
    left = until - dt.datetime.now(dt.UTC)
    soon = f" (only {left.days} day(s) left)" if left < dt.timedelta(days=CERT_WARN_DAYS) else ""
    return f", until {until:%Y-%m-%d}{soon}"


async def _sender_accepted(smtp: aiosmtplib.SMTP, sender: str, where: str) -> Result:
    """MAIL FROM the notice sender and RCPT TO itself, then RSET: nothing is sent."""
    try:
        await smtp.mail(sender)
        await smtp.rcpt(sender)
    except aiosmtplib.SMTPException as exc:
        return Result(
            "notice-sender",
            "fail",
            f"{where} refused notices from {sender}: {_why(exc)}",
            "allow the relay's account to send as that address (SendAs), "
            "or set SENDGUARD_NOTIFY__FROM_ADDRESS to one it may use",
        )
    finally:
        if smtp.is_connected:
            with contextlib.suppress(aiosmtplib.SMTPException):
                await smtp.rset()
    return Result("notice-sender", "ok", f"{where} accepts notices from {sender}")


def _maildir(name: str, path: Path) -> Result:
    if path.exists() and not _writable_dir(path):
        return Result(name, "fail", f"maildir {path} is not writable", "fix its permissions")
    return Result(
        name,
        "warn",
        f"mail is delivered into the local maildir {path} (for trying sendguard)",
        "set SENDGUARD_UPSTREAM to the organisation's mail server",
    )


def _tls_failure(exc: BaseException) -> str | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen.verify_message or str(seen)
        if isinstance(seen, ssl.SSLError):
            return str(seen)
        seen = seen.__cause__ or seen.__context__
    return None


def _why(exc: BaseException) -> str:
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return f"{exc.code} {exc.message}".strip()
    return str(exc) or type(exc).__name__


async def _dns(policy: LoadedPolicy | None) -> Result:
    """The resolver `unresolvable-domain` uses, asked what that detector asks (MX, then A)."""

    det = UnresolvableDomain.id
    if policy is None:
        return Result("dns", "warn", "not checked: the policy did not load", "fix the policy first")
    if det in policy.disabled_detectors:
        return Result("dns", "ok", f"not used ({det} is off)")
    detector = UnresolvableDomain(policy.detector_settings.get(det))
    domains = policy.policy.organisation.internal_domains
    domain = domains[0] if domains else "example.com"
    outcome = await detector.lookup(domain)
    if outcome.status == "dns-error":
        return Result(
            "dns",
            "fail",
            f"the resolver did not answer for {domain} ({outcome.reason})",
            f"fix /etc/resolv.conf or [detectors.{det}] nameservers; "
            "without DNS every external recipient is a dns-error finding",
        )
    return Result("dns", "ok", f"the resolver answers ({domain}: {outcome.status})")


def render_text(report: Report) -> str:
    """One line per check, the fix indented under anything not OK, and a summary."""
    lines = []
    for r in report.results:
        lines.append(f"{r.status.upper():<5} {r.check:<16} {r.detail}")
        if r.status != "ok" and r.fix:
            lines.append(f"{'':<22} fix: {r.fix}")
    counts = {s: sum(r.status == s for r in report.results) for s in ("fail", "warn", "ok")}
    lines.append(f"doctor: {counts['fail']} FAIL, {counts['warn']} WARN, {counts['ok']} OK")
    return "\n".join(lines)
