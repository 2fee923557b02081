"""The two `is_internal` answers (detectors and policy/rewrite) agree on routing addresses.

`sendguard.detect.domains.is_internal` (detectors, on parsed `Address` values) and
`sendguard.policy.scope.is_internal` (rule scope and the To/Cc rewrite, on address text)
must never disagree: a routing address on our own domain is delivered elsewhere by a stock
upstream (percent hack, bang path, dequoted ``@``), so both call it external.
"""

from __future__ import annotations

import pytest

from sendguard.detect import domains
from sendguard.model import Organisation
from sendguard.parse.addresses import parse_addr_spec
from sendguard.policy import scope

ORG = Organisation(
    internal_domains=frozenset({"ichiban-shoji.co.jp"}),
    partner_domains=frozenset({"partner.example"}),
    external_lists=frozenset({"all-ml@ichiban-shoji.co.jp"}),
)


@pytest.mark.parametrize(
    ("text", "internal"),
    [
        ("tanaka@ichiban-shoji.co.jp", True),
        ("Tanaka@Osaka.Ichiban-Shoji.co.jp", True),
        ('"tanaka"@ichiban-shoji.co.jp', True),
        ('"john smith"@ichiban-shoji.co.jp', True),
        ("user%b.example@ichiban-shoji.co.jp", False),
        ('"user@b.example"@ichiban-shoji.co.jp', False),
        ('"user%b.example"@ichiban-shoji.co.jp', False),
        ("b.example!user@ichiban-shoji.co.jp", False),
        ("user%ichiban-shoji.co.jp@b.example", False),
        ("all-ml@ichiban-shoji.co.jp", False),
        ("user@b.example", False),
    ],
)
def test_both_classifiers_agree(text: str, internal: bool) -> None:
    """Each address gets the same answer from both functions, and routing ones are external."""
    address = parse_addr_spec(text, field="envelope")
    assert domains.is_internal(address, ORG) is internal
    assert scope.is_internal(text, ORG) is internal
    assert scope.is_internal(address.addr_spec, ORG) is internal


def test_routing_address_at_a_partner_is_not_the_partner() -> None:
    """``x%y@partner`` goes to y, not to the partner: it is not reported as a partner."""
    assert domains.is_partner(parse_addr_spec("a@partner.example"), ORG)
    assert not domains.is_partner(parse_addr_spec("a%b.example@partner.example"), ORG)
