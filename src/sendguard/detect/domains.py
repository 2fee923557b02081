"""Domain helpers shared by the recipient detectors: internal/partner classification and the
built-in list of consumer mail domains used in Japan.

Used by `external_recipients`, `visible_recipients` and `lookalike_domain`. Everything works
on the lower-case A-label forms that `sendguard.model.Address` carries.
"""

from __future__ import annotations

from collections.abc import Iterable

from sendguard.model import Address, Organisation
from sendguard.parse.addresses import ascii_domain, is_routing_address

CONSUMER_DOMAINS: frozenset[str] = frozenset(
    {
        # carriers (キャリアメール)
        "docomo.ne.jp", "ezweb.ne.jp", "au.com", "auone.jp", "softbank.ne.jp",
        "i.softbank.jp", "softbank.jp", "ymobile.ne.jp", "y-mobile.ne.jp", "disney.ne.jp",
        "rakuten.jp", "uqmobile.jp",
        # free and ISP mail
        "yahoo.co.jp", "yahoo.ne.jp", "ymail.ne.jp", "ybb.ne.jp", "gmail.com",
        "googlemail.com", "icloud.com", "me.com", "mac.com", "outlook.jp", "outlook.com",
        "hotmail.co.jp", "hotmail.com", "live.jp", "live.com", "msn.com", "nifty.com",
        "nifty.ne.jp", "biglobe.ne.jp", "ocn.ne.jp", "so-net.ne.jp", "plala.or.jp",
        "dion.ne.jp", "zaq.ne.jp", "jcom.zaq.ne.jp", "eonet.ne.jp", "odn.ne.jp",
        "infoseek.jp", "excite.co.jp", "goo.jp", "mail.goo.ne.jp", "yahoo.com", "aol.com",
        "proton.me", "protonmail.com",
        # the providers' own corporate domains (a suffix swap of the mail domain, but real)
        "nifty.co.jp", "biglobe.co.jp", "rakuten.co.jp",
    }
)  # fmt: skip
"""Mail domains of Japanese carriers and free/ISP providers: lookalike targets, and each of
their users is a separate party (two gmail.com customers are not one organisation)."""


def in_domains(domain: str, domains: Iterable[str]) -> bool:
    """True when `domain` (A-label or U-label) is one of `domains` (A-labels) or a subdomain."""
    domain = _ascii(domain)
    return any(domain == parent or domain.endswith("." + parent) for parent in domains)


def split_address(address: str) -> tuple[str, str]:
    """``Tanaka@Example.CO.JP`` → (``tanaka``, ``example.co.jp``) with an A-label domain."""
    local, _, domain = address.strip().strip("<>").rpartition("@")
    return local.lower(), _ascii(domain)


def is_external_list(address: Address, organisation: Organisation) -> bool:
    """A mailing list with outside members: external even when its domain is ours."""
    return address.addr_spec.lower() in organisation.external_lists


def is_internal(address: Address | str, organisation: Organisation) -> bool:
    """Internal = an internal domain or its subdomain, and not a list with outside members
    nor a routing address (``user%b.example@ours``: a stock upstream delivers it to
    ``b.example``). The one answer for detectors (a parsed `Address`), the policy's rule
    scope, the To/Cc rewrite and notices (address text): domains compared by one IDNA rule
    (`sendguard.parse.addresses.ascii_domain`)."""
    if isinstance(address, Address):
        local, domain = address.local_part, address.domain
        listed = address.addr_spec.lower()
    else:
        local, domain = split_address(address)
        listed = f"{local}@{domain}"
    if not local or not domain:
        return False  # unknown shape: treat as external, the safe side
    if is_routing_address(local) or listed in organisation.external_lists:
        return False
    return in_domains(domain, organisation.internal_domains)


def _ascii(domain: str) -> str:
    """`ascii_domain`, or the text lower-cased when it is no valid IDN (it then matches no
    configured domain: the safe side)."""
    try:
        return ascii_domain(domain)
    except ValueError:
        return domain.strip().rstrip(".").lower()


def is_partner(address: Address, organisation: Organisation) -> bool:
    """A partner domain (or subdomain): external, but a known correspondent. A routing
    address at a partner domain goes somewhere else, so it is not the partner."""
    if is_routing_address(address.local_part):
        return False
    return in_domains(address.domain, organisation.partner_domains)


def party(address: Address) -> str:
    """The outside party an address belongs to: its registrable domain, or the address itself
    on a consumer domain (two private gmail.com users are unrelated people)."""
    if in_domains(address.domain, CONSUMER_DOMAINS):
        return address.addr_spec.lower()
    return address.registrable_domain


def mask_address(address: Address) -> str:
    """``t***@example.co.jp``: the domain stays readable, the person does not."""
    local = address.local_part
    return f"{local[:1]}***@{address.domain_unicode}"
