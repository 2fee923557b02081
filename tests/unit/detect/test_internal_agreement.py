"""`is_internal` answers the same for a parsed address (detectors) and its text (rule scope,
the To/Cc rewrite, notices): one function, one IDNA rule.

A routing address on our own domain is delivered elsewhere by a stock upstream (percent
hack, bang path, dequoted ``@``), so it is external either way. On main the text path used
the stdlib's IDNA 2003 codec (``faß.de`` → ``fass.de``) and the parser UTS 46
(``xn--fa-hia.de``): a policy naming ``faß.de`` made its mail internal to the rules and
foreign to the detectors.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sendguard.detect import domains
from sendguard.model import Organisation
from sendguard.parse.addresses import parse_addr_spec
from sendguard.policy.load import load_policy

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
    assert domains.is_internal(text, ORG) is internal
    assert domains.is_internal(address.addr_spec, ORG) is internal


def test_routing_address_at_a_partner_is_not_the_partner() -> None:
    """``x%y@partner`` goes to y, not to the partner: it is not reported as a partner."""
    assert domains.is_partner(parse_addr_spec("a@partner.example"), ORG)
    assert not domains.is_partner(parse_addr_spec("a%b.example@partner.example"), ORG)


@pytest.mark.parametrize(
    ("ours", "recipient", "internal"),
    [
        ("faß.de", "kunde@faß.de", True),
        ("faß.de", "kunde@xn--fa-hia.de", True),
        ("faß.de", "kunde@fass.de", False),
        ("fass.de", "kunde@faß.de", False),
        ("βόλος.gr", "a@βόλος.gr", True),
        ("βόλος.gr", "a@βόλοσ.gr", False),
        ("例え.jp", "tanaka@例え.jp", True),
        ("例え.jp", "tanaka@ＥＸ.例え.jp", True),
    ],
)
def test_idn_domains_are_judged_by_one_rule_everywhere(
    tmp_path: Path, ours: str, recipient: str, internal: bool
) -> None:
    """A policy naming an IDN domain, and a recipient written in U-labels, A-labels or with
    the IDNA 2003 mapping (``ß`` → ``ss``, final ``ς`` → ``σ``): the detectors and the rule
    scope give the same answer, by UTS 46 (``faß.de`` is not ``fass.de``)."""
    (tmp_path / "p.toml").write_text(
        f'allow_empty = true\n[organisation]\ninternal_domains = ["{ours}"]\n', encoding="utf-8"
    )
    organisation = load_policy(tmp_path).organisation
    address = parse_addr_spec(recipient, field="to")
    assert domains.is_internal(address, organisation) is internal
    assert domains.is_internal(recipient, organisation) is internal
