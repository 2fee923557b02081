"""Who may relay: never an open relay (RFC 5321 §7.9).

A client may relay when it authenticated (AUTH, only offered after STARTTLS) or when its
address is in a trusted network. Everything else is refused at RCPT with 550 5.7.1.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable

from sendguard.model import IPNetwork


def peer_address(peer: object) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The client's IP from asyncio's peername; IPv4-mapped IPv6 is unwrapped."""
    if not isinstance(peer, tuple) or not peer or not isinstance(peer[0], str):
        return None
    return _address(peer[0])


@functools.lru_cache(maxsize=1024)
def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """Parsed once per client address: the relay asks at every RCPT (100 times for a mass
    mail), and the answer (an immutable address) never changes."""
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_trusted(peer: object, networks: Iterable[IPNetwork]) -> bool:
    """True when the peer's address lies in one of the trusted networks."""
    return in_networks(peer_address(peer), networks)


def in_networks(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address | None, networks: Iterable[IPNetwork]
) -> bool:
    """True when the address lies in one of the networks (never for an unknown address)."""
    if address is None:
        return False
    return any(address.version == net.version and address in net for net in networks)
