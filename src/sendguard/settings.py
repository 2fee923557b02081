"""Settings for one sendguard node: environment ``SENDGUARD_*``, an optional TOML file, CLI flags.

Precedence (highest first): CLI flags, environment, the settings file, the defaults below.
The settings file is the one ``SENDGUARD_CONFIG`` names, else ``/etc/sendguard/sendguard.toml``
when it exists (packaged installs); ``SENDGUARD_CONFIG=`` (empty) reads no file. ``serve``
and the ``queue``/``audit`` commands find it the same way, so they open the same store.
Nested groups use ``__`` in the environment (``SENDGUARD_LIMITS__MAX_MIME_DEPTH=32``).
Policy (what to do with mail) is not here: it lives in the policy directory and is reloaded
without a restart.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from sendguard.deliver import UpstreamOptions
from sendguard.errors import ConfigError
from sendguard.history.settings import HistorySettings
from sendguard.intake.guard import LoginLimits
from sendguard.model import IPNetwork, Listener
from sendguard.notify.settings import NotifySettings
from sendguard.parse.limits import ParseLimits
from sendguard.queue.settings import QueueSettings
from sendguard.web.settings import WebSettings


class Settings(BaseSettings):
    """Everything a node needs to run; every field is documented with its default."""

    model_config = SettingsConfigDict(
        env_prefix="SENDGUARD_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    listen: Annotated[tuple[Listener, ...], NoDecode] = (Listener(host="127.0.0.1", port=2525),)
    """Comma-separated listeners. Default ``127.0.0.1:2525``. E.g. ``0.0.0.0:587,10.0.0.5:25``."""
    hostname: str = Field(default_factory=lambda: os.uname().nodename)
    """Name in the greeting and EHLO; default the machine's host name."""
    upstream: str = "maildir:./var/delivered"
    """Where mail goes: ``smtp://host:25``, ``smtp+starttls://user:pass@host:587``,
    ``smtps://host:465`` or ``maildir:DIR`` (the embedded default, for trying sendguard)."""
    queue_upstream: str | None = None
    """Where held, delayed and released mail, notices and bounces go (same URL forms): an
    account with send-as rights for every sender, or a connector that relays by address.
    Default: ``upstream``; required in ``passthrough`` when the policy can hold or delay,
    because the users' own passwords are never stored."""
    upstream_allow_plaintext: bool = False
    """Let ``passthrough`` log in to an ``smtp://`` upstream without TLS, and a
    ``queue_upstream`` send its password without TLS. For tests only."""
    upstream_ca_file: Path | None = None
    """CA bundle to verify the upstream's certificate; default: system store. Never unverified."""
    upstream_timeout: float = 60.0
    """Seconds for each upstream command (connect, MAIL, RCPT, DATA upload)."""
    upstream_data_timeout: float = 600.0
    """Seconds to wait for the upstream's reply after the final dot (RFC 5321 §4.5.3.2.6).
    The client is answered by `reply_deadline` anyway; a later upstream reply is still
    awaited for the record (a late 250 is logged as `duplicate_likely`)."""
    upstream_pool_size: int = 4
    """Idle upstream sessions kept for reuse."""
    upstream_max_connections: int = Field(default=10, ge=1)
    """Upstream sessions in use at once per process (live mail, released mail, notices);
    more wait their turn in arrival order, for at most ``upstream_timeout``, then get 451."""
    trusted_networks: Annotated[tuple[IPNetwork, ...], NoDecode] = (
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    )
    """Comma-separated CIDRs allowed to relay without AUTH; default loopback; empty = none."""
    xforward_hosts: Annotated[tuple[IPNetwork, ...], NoDecode] = ()
    """Comma-separated CIDRs of the Postfix hosts in front of sendguard, allowed to send
    XFORWARD and XCLIENT (the client's address, HELO and login); default none. Mail through
    them relays only for a forwarded login or a forwarded address in `trusted_networks`."""
    tls_cert: Path | None = None
    """PEM certificate for STARTTLS / smtps listeners; without it AUTH is unavailable."""
    tls_key: Path | None = None
    """PEM private key for `tls_cert`."""
    auth_mode: Literal["none", "local", "passthrough"] = "none"
    """``local``: users file with argon2 hashes; ``passthrough``: check credentials by
    authenticating to the upstream, whose session then carries that client's mail."""
    users_file: Path = Path("./var/users")
    """Users for ``auth_mode=local`` (``sendguard users add``)."""
    auth_limits: LoginLimits = LoginLimits()
    """Failed-login limits and the password-check queue (``SENDGUARD_AUTH_LIMITS__…``)."""
    max_message_size: int = 50 * 1024 * 1024
    """Bytes; larger messages get 552 at DATA. Default 50 MiB."""
    spool_threshold: int = Field(default=1024 * 1024, gt=0)
    """Bytes; a bigger message is written to a spool file while it arrives and waits there for
    its share of `inflight_budget` instead of being held in memory. Default 1 MiB."""
    spool_dir: Path | None = None
    """Directory of spool files (0700; files 0600, removed when the transaction ends and at
    start). Default ``spool`` beside the SQLite store, ``./var/spool`` for PostgreSQL."""
    inflight_budget: int = Field(default=0, ge=0)
    """Bytes of spooled messages one relay process inspects and delivers at once; the rest
    wait their turn on disk (not counted in `scan_budget`), small mail never waits. 0 = one
    sixteenth of `extract_memory_limit` per extraction process (64 MiB by default)."""
    max_recipients: int = 1000
    """Recipients per transaction (Postfix's default); more get 452 at RCPT."""
    line_policy: Literal["reject", "normalise"] = "reject"
    """Bare CR or LF inside DATA: ``reject`` (550, like sendmail 8.18) or ``normalise`` to CRLF."""
    routing_addresses: Literal["reject", "external"] = "reject"
    """RCPT TO with ``%``, ``!`` or a quoted ``@``/``%`` in the local part (``user%b.example@ours``,
    which a stock Postfix delivers to ``b.example``): ``reject`` (553 5.1.3 at RCPT) or
    ``external`` (accept, and count it as an outside recipient everywhere)."""
    bcc_header: Literal["remove", "keep"] = "remove"
    """A ``Bcc:``/``Resent-Bcc:`` field left in a submitted message: ``remove`` it before
    relaying (as Postfix's cleanup does; logged) or ``keep`` it as the client sent it."""
    smtp_timeout: float = Field(default=300.0, gt=0)
    """Idle seconds before a client connection is closed with 421 (RFC 5321 §4.5.3.2.7).
    Idle means nothing arrives from the client: a slow upload that keeps sending is never
    cut, and the time the client waits for our reply does not count."""
    reply_deadline: float = Field(default=540.0, gt=0, lt=600)
    """Seconds from the final dot to the client's reply, below the client's own 10-minute
    timeout (RFC 5321 §4.5.3.2.6): if inspection or the upstream is not done by then the
    client gets ``451 4.4.2`` and resends. A message not yet committed (sent upstream or
    queued) by then is dropped; one already under way is seen through and logged."""
    scan_budget: float = 30.0
    """Seconds for parse + detect + policy of one message; over budget → `on_error`."""
    on_error: Literal["tempfail", "hold"] = "tempfail"
    """Internal error or budget exceeded: ``tempfail`` (451 4.3.0) or ``hold``. Never pass."""
    soft_reject: bool = False
    """Answer 451 instead of 550 for policy rejects (rollouts)."""
    policy_dir: Path = Path("./policies")
    """Directory of policy TOML files, reloaded on SIGHUP and on change."""
    store: str = "sqlite:///./var/sendguard.db"
    """Queue store: ``sqlite:///PATH`` (one node) or ``postgresql://…`` (several nodes)."""
    audit_key: Path | None = None
    """File holding the audit log's HMAC key (base64, one line); created with mode 0600 by
    ``sendguard serve`` when absent. Default ``audit.key`` beside the SQLite store,
    ``./var/audit.key`` for PostgreSQL. Keep it (and a copy) outside the database."""
    audit_anchor_file: Path | None = None
    """File the relay rewrites with the audit log's head (JSON: seq, hash, at) every
    `audit_anchor_interval` seconds; default ``audit.head`` beside the audit key."""
    audit_anchor_interval: float = Field(default=60.0, gt=0)
    """Seconds between audit anchors (an ``audit_head`` log event and the anchor file)."""
    workers: int = 0
    """Relay processes sharing the listening ports (SO_REUSEPORT); 0 = number of cores."""
    extract_workers: int = 1
    """Extraction processes per relay process (parsing attachments off the event loop)."""
    extract_idle_timeout: float = Field(default=30.0, ge=0)
    """Seconds an extraction process may sit unused before it is stopped (memory at rest);
    the next attachment forks a new one from the warm fork server. 0 = keep them."""
    extract_memory_limit: int = 1024 * 1024 * 1024
    """Address-space limit (bytes) of each extraction process; a bomb dies there, not here."""
    network_timeout: float = 5.0
    """Seconds for network detectors (DNS) per message."""
    limits: ParseLimits = ParseLimits()
    """Parsing limits (``SENDGUARD_LIMITS__MAX_MIME_DEPTH`` …); every limit hit is a finding."""
    queue: QueueSettings = QueueSettings()
    """Held/delayed mail: retries, expiry, calendar, encryption (``SENDGUARD_QUEUE__…``)."""
    notify: NotifySettings = NotifySettings()
    """Notices to senders and reviewers (``SENDGUARD_NOTIFY__…``)."""
    web: WebSettings = WebSettings()
    """Review console and signed links in notices (``SENDGUARD_WEB__…``)."""
    history: HistorySettings = HistorySettings()
    """Correspondent history: learning from delivered mail, retention (``SENDGUARD_HISTORY__…``)."""
    shutdown_grace: float = 30.0
    """Seconds SIGTERM waits for in-flight transactions before closing them with 421."""
    log_format: Literal["json", "console"] = "json"
    """JSON lines for SIEMs; ``console`` for people."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    web_listen: Annotated[tuple[Listener, ...], NoDecode] = (Listener(host="127.0.0.1", port=8025),)
    """HTTP listeners for ``/healthz``, ``/readyz`` and ``/metrics``. Default
    ``127.0.0.1:8025``; empty = off."""

    def upstream_options(self) -> UpstreamOptions:
        """What `sendguard.deliver` needs to build the upstreams (it never sees `Settings`)."""
        return UpstreamOptions(
            upstream=self.upstream,
            hostname=self.hostname,
            queue_upstream=self.queue_upstream,
            timeout=self.upstream_timeout,
            data_timeout=self.upstream_data_timeout,
            pool_size=self.upstream_pool_size,
            max_connections=self.upstream_max_connections,
            ca_file=self.upstream_ca_file,
            allow_plaintext=self.upstream_allow_plaintext,
            passthrough=self.auth_mode == "passthrough",
        )

    @field_validator("web_listen", mode="before")
    @classmethod
    def _split_web_listeners(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(Listener.parse(v) for v in value.split(",") if v.strip())
        return value

    @field_validator("listen", mode="before")
    @classmethod
    def _split_listeners(cls, value: Any) -> Any:
        if isinstance(value, str):
            items = [v.strip() for v in value.split(",") if v.strip()]
            if not items:
                raise ValueError("at least one listener is needed, e.g. 127.0.0.1:2525")
            return tuple(Listener.parse(v) for v in items)
        return value

    @field_validator("trusted_networks", "xforward_hosts", mode="before")
    @classmethod
    def _split_networks(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(
                ipaddress.ip_network(v.strip(), strict=False) for v in value.split(",") if v.strip()
            )
        return value

    @field_validator("xforward_hosts")
    @classmethod
    def _forwarders_are_hosts(cls, value: tuple[IPNetwork, ...]) -> tuple[IPNetwork, ...]:
        # A forwarder may claim any client address and login: "everyone" is never meant.
        if any(net.prefixlen == 0 for net in value):
            raise ValueError("a /0 network would let every client claim any identity")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """CLI flags arrive as init values, so they beat the environment, which beats the file."""
        return (init_settings, env_settings, _TomlFileSource(settings_cls))


DEFAULT_CONFIG = Path("/etc/sendguard/sendguard.toml")
"""The settings file read when ``SENDGUARD_CONFIG`` is not set and this file exists."""


def config_path() -> Path | None:
    """The settings file in use: ``SENDGUARD_CONFIG``, else `DEFAULT_CONFIG` if it exists."""
    named = os.environ.get("SENDGUARD_CONFIG")
    if named is not None:
        return Path(named) if named else None
    return DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None


class _TomlFileSource(PydanticBaseSettingsSource):
    """The optional settings file (`config_path`; keys as in the environment)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = config_path()
        if path is None:
            return {}
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"settings file {path}: {exc}") from exc
        return {k.replace("-", "_"): v for k, v in data.items()}


def load_settings(**overrides: Any) -> Settings:
    """Build settings, turning pydantic's error into one `ConfigError` a person can act on."""
    from pydantic import ValidationError

    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**clean)
    except ValidationError as exc:
        lines = [f"  {'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()]
        raise ConfigError("invalid settings:\n" + "\n".join(lines)) from exc
