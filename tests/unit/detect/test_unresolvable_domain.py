"""Tests of the `unresolvable-domain` detector against a real DNS server on 127.0.0.1."""

from __future__ import annotations

from sendguard.detect.unresolvable_domain import UnresolvableDomain, UnresolvableDomainSettings
from sendguard.model import Finding, Mail

from .dnsserver import Zone, dns_server
from .helpers import context


def _zone() -> Zone:
    return Zone(
        records={
            ("abc.co.jp", "MX"): ["10 mx.abc.co.jp."],
            ("mx.abc.co.jp", "A"): ["192.0.2.1"],
            ("implicit.jp", "A"): ["192.0.2.2"],
            ("v6only.jp", "AAAA"): ["2001:db8::1"],
            ("nullmx.jp", "MX"): ["0 ."],
            ("nomail.jp", "TXT"): ['"v=spf1 -all"'],
        },
        silent={"slow.jp"},
        servfail={"broken.jp"},
    )


def _detector(port: int, **settings: object) -> UnresolvableDomain:
    base: dict[str, object] = {"nameservers": ("127.0.0.1",), "port": port, "query_timeout": 0.5}
    return UnresolvableDomain(UnresolvableDomainSettings(**(base | settings)))


def _by_code(found: list[Finding]) -> dict[str, Finding]:
    return {f.code: f for f in found}


async def test_mail_hosts_by_mx_a_or_aaaa_are_fine() -> None:
    """An MX, or an A/AAAA record without MX (implicit MX), means the domain can receive mail."""
    async with dns_server(_zone()) as port:
        found = await _detector(port).detect(
            Mail(), context(["a@abc.co.jp", "b@implicit.jp", "c@v6only.jp"])
        )
    assert found == []


async def test_nxdomain_and_no_mail_host() -> None:
    """A missing domain is nxdomain; a null MX or no address at all is no-mail-host."""
    async with dns_server(_zone()) as port:
        found = _by_code(
            await _detector(port).detect(
                Mail(), context(["a@typo-domain.jp", "b@nullmx.jp", "c@nomail.jp", "d@abc.co.jp"])
            )
        )
    assert found["nxdomain"].evidence == ("typo-domain.jp",)
    assert found["no-mail-host"].count == 2
    assert found["no-mail-host"].params["reason"] == "no-mx-no-address, null-mx"


async def test_outage_is_reported_as_dns_error() -> None:
    """SERVFAIL and a silent server are dns-error findings, not nxdomain, within the budget."""
    async with dns_server(_zone()) as port:
        found = _by_code(
            await _detector(port, budget=1.0).detect(Mail(), context(["a@broken.jp", "b@slow.jp"]))
        )
    assert set(found) == {"dns-error"}
    assert found["dns-error"].count == 2
    assert found["dns-error"].params["reason"] in ("servfail, timeout", "budget, servfail")


async def test_budget_cuts_slow_lookups() -> None:
    """Lookups still running when the message budget ends are reported with reason budget."""
    async with dns_server(_zone()) as port:
        found = await _detector(port, budget=0.2, query_timeout=5.0).detect(
            Mail(), context(["a@slow.jp"])
        )
    assert [(f.code, f.params["reason"]) for f in found] == [("dns-error", "budget")]


async def test_answers_are_cached_by_ttl() -> None:
    """A second message to the same domain is answered from the detector's cache."""
    zone = _zone()
    async with dns_server(zone) as port:
        detector = _detector(port)
        ctx = context(["a@typo-domain.jp", "b@abc.co.jp"])
        first = await detector.detect(Mail(), ctx)
        asked = len(zone.queries)
        second = await detector.detect(Mail(), ctx)
    assert first == second
    assert len(zone.queries) == asked


async def test_internal_domains_are_not_looked_up() -> None:
    """The organisation's own domains are skipped unless check_internal is set."""
    zone = _zone()
    async with dns_server(zone) as port:
        found = await _detector(port).detect(Mail(), context(["boss@example-corp.co.jp"]))
    assert found == []
    assert zone.queries == []
