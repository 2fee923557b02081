"""`unresolvable-domain`: recipient domains that cannot receive mail (a typo that happens to
be no real domain, a domain without a mail host), found by DNS on the event loop.

MX first, then A/AAAA (the implicit MX of RFC 5321 §5.1); a null MX (RFC 7505) or no
address at all is `no-mail-host`. A DNS outage or timeout is `dns-error`, reported as such:
the policy decides whether doubt holds the mail. Answers are cached by TTL on the detector
instance, and the whole message is bounded by one time budget.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import ClassVar, Literal

import dns.asyncresolver
import dns.exception
import dns.name
import dns.resolver
import pydantic
import structlog

from sendguard.detect.base import DetectContext, DetectorSettings, NetworkDetector
from sendguard.detect.domains import is_internal
from sendguard.model import Finding, Mail

_log = structlog.get_logger(__name__)

Status = Literal["ok", "nxdomain", "no-mail-host", "dns-error"]


class UnresolvableDomainSettings(DetectorSettings):
    """Settings of `unresolvable-domain`."""

    nameservers: tuple[str, ...] = pydantic.Field(
        default=(), description="Resolver IP addresses; empty = the system's /etc/resolv.conf."
    )
    port: int = pydantic.Field(default=53, ge=1, le=65535, description="Port of `nameservers`.")
    query_timeout: float = pydantic.Field(
        default=2.0, gt=0, description="Seconds one lookup (with its retries) may take."
    )
    budget: float = pydantic.Field(
        default=5.0,
        gt=0,
        description="Seconds all lookups of one message may take together; "
        "domains still unanswered are reported as `dns-error` (reason budget).",
    )
    concurrency: int = pydantic.Field(
        default=16, ge=1, description="Lookups in flight per message."
    )
    negative_ttl: float = pydantic.Field(
        default=300.0, ge=0, description="Seconds an NXDOMAIN or no-mail-host answer is cached."
    )
    error_ttl: float = pydantic.Field(
        default=30.0,
        ge=0,
        description="Seconds a DNS error is cached (so an outage is not hammered).",
    )
    max_ttl: float = pydantic.Field(
        default=3600.0, ge=0, description="Upper bound on any cached TTL."
    )
    cache_size: int = pydantic.Field(default=10_000, ge=0, description="Domains kept in the cache.")
    check_internal: bool = pydantic.Field(
        default=False, description="Also look up the organisation's own domains."
    )


@dataclass(frozen=True, slots=True)
class Outcome:
    """The answer for one domain."""

    status: Status
    reason: str
    ttl: float


_MESSAGES = {
    "nxdomain": "{count} recipient domains do not exist ({domains})",
    "no-mail-host": "{count} recipient domains cannot receive mail ({domains})",
    "dns-error": "{count} recipient domains could not be checked: DNS failed ({domains})",
}


class UnresolvableDomain(NetworkDetector):
    """Recipient domains without DNS or without a mail host."""

    id: ClassVar[str] = "unresolvable-domain"
    description: ClassVar[str] = "Recipient domains that do not exist or have no mail host"
    Settings: ClassVar[type[pydantic.BaseModel]] = UnresolvableDomainSettings
    codes: ClassVar[tuple[str, ...]] = ("nxdomain", "no-mail-host", "dns-error")

    def __init__(self, settings: pydantic.BaseModel | None = None) -> None:
        super().__init__(settings)
        self._cfg = self.settings_as(UnresolvableDomainSettings)
        self._cache: dict[str, tuple[float, Outcome]] = {}
        self._resolver: dns.asyncresolver.Resolver | None = None

    def _get_resolver(self) -> dns.asyncresolver.Resolver:
        if self._resolver is None:
            cfg = self._cfg
            resolver = dns.asyncresolver.Resolver(configure=not cfg.nameservers)
            if cfg.nameservers:
                resolver.nameservers = list(cfg.nameservers)
                resolver.port = cfg.port
            resolver.lifetime = cfg.query_timeout
            resolver.timeout = cfg.query_timeout
            self._resolver = resolver
        return self._resolver

    async def _addresses(self, resolver: dns.asyncresolver.Resolver, domain: str) -> Outcome:
        for rdtype in ("A", "AAAA"):
            try:
                answer = await resolver.resolve(domain, rdtype, search=False)
            except dns.resolver.NoAnswer:
                continue
            return Outcome("ok", "address", float(answer.rrset.ttl if answer.rrset else 0))
        return Outcome("no-mail-host", "no-mx-no-address", self._cfg.negative_ttl)

    async def lookup(self, domain: str) -> Outcome:
        """MX, then A/AAAA; every DNS failure becomes a `dns-error` outcome, never raises."""
        cfg = self._cfg
        try:
            resolver = self._get_resolver()
            try:
                answer = await resolver.resolve(domain, "MX", search=False)
            except dns.resolver.NoAnswer:
                return await self._addresses(resolver, domain)
        except dns.resolver.NXDOMAIN:
            return Outcome("nxdomain", "nxdomain", cfg.negative_ttl)
        except dns.resolver.NoNameservers:
            return Outcome("dns-error", "servfail", cfg.error_ttl)
        except dns.exception.Timeout:
            return Outcome("dns-error", "timeout", cfg.error_ttl)
        except dns.exception.DNSException as exc:
            return Outcome("dns-error", type(exc).__name__, cfg.error_ttl)
        records = list(answer)
        ttl = float(answer.rrset.ttl if answer.rrset else 0)
        if all(getattr(r, "exchange", None) == dns.name.root for r in records):
            return Outcome("no-mail-host", "null-mx", ttl)
        return Outcome("ok", "mx", ttl)

    async def _cached(self, domain: str, gate: asyncio.Semaphore) -> Outcome:
        now = time.monotonic()
        entry = self._cache.get(domain)
        if entry is not None and entry[0] > now:
            return entry[1]
        async with gate:
            outcome = await self.lookup(domain)
        if self._cfg.cache_size:
            if len(self._cache) >= self._cfg.cache_size:
                self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
                if len(self._cache) >= self._cfg.cache_size:
                    self._cache.clear()
            expires = now + min(outcome.ttl, self._cfg.max_ttl)
            self._cache[domain] = (expires, outcome)
        return outcome

    async def outcomes(self, domains: list[str]) -> dict[str, Outcome]:
        """Outcome per domain within the budget; unfinished ones are `dns-error` (budget)."""
        now = time.monotonic()
        known: dict[str, Outcome] = {}
        for domain in domains:
            entry = self._cache.get(domain)
            if entry is None or entry[0] <= now:
                break
            known[domain] = entry[1]
        else:
            # Every answer is cached (the commonest case: mail goes to the same domains
            # all day): what `_cached` would return, without a task and a timer per domain.
            return known
        gate = asyncio.Semaphore(self._cfg.concurrency)
        tasks = {d: asyncio.create_task(self._cached(d, gate)) for d in domains}
        if tasks:
            _, pending = await asyncio.wait(tasks.values(), timeout=self._cfg.budget)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        late = Outcome("dns-error", "budget", 0)
        return {d: (late if t.cancelled() else t.result()) for d, t in tasks.items()}

    async def detect(self, mail: Mail, ctx: DetectContext) -> list[Finding]:
        """`nxdomain`, `no-mail-host` and `dns-error` findings, one per code."""
        recipients = [
            a for a in ctx.recipients
            if self._cfg.check_internal or not is_internal(a, ctx.organisation)
        ]  # fmt: skip
        domains = list(dict.fromkeys(a.domain for a in recipients))
        results = await self.outcomes(domains)
        found = []
        for status, message in _MESSAGES.items():
            bad = [d for d in domains if results[d].status == status]
            if not bad:
                continue
            affected = sum(1 for a in recipients if a.domain in bad)
            reasons = sorted({results[d].reason for d in bad})
            if status == "dns-error":
                _log.warning("dns_check_failed", domains=len(bad), reasons=",".join(reasons))
            found.append(
                Finding(
                    detector=self.id,
                    code=status,
                    message=message,
                    count=len(bad),
                    severity="medium" if status == "dns-error" else "high",
                    params={
                        "count": len(bad),
                        "domains": ", ".join(bad[:10]),
                        "recipients": affected,
                        "reason": ", ".join(reasons),
                    },
                    evidence=tuple(bad[:10]),
                    where=("envelope",),
                )
            )
        return found
