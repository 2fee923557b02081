"""What rules may name: detector ids, their finding codes and their numeric parameters.

Used by `sendguard.policy.load` to refuse a rule that names a detector or code that does not
exist (a typo there would otherwise make the rule silently never match). Detector ids come
from `sendguard.detect.registry` when it is importable; the code table mirrors the finding
codes the detectors document (issue 4) and must grow with them.
"""

from __future__ import annotations

from collections.abc import Mapping

FINDING_CODES: Mapping[str, frozenset[str]] = {
    "external-recipients": frozenset({"external", "partner", "external-list"}),
    "visible-recipients": frozenset({"external-visible", "organisations-visible", "malformed"}),
    "lookalike-domain": frozenset({"lookalike"}),
    "unresolvable-domain": frozenset({"nxdomain", "no-mail-host", "dns-error"}),
    "personal-data": frozenset(
        {
            "my-number",
            "credit-card",
            "phone",
            "postal-address",
            "email-address",
            "birth-date",
            "bank-account",
            "passport",
            "drivers-licence",
            "pension-number",
            "corporate-number",
            "customer-list",
        }
    ),
    "confidential-marker": frozenset({"marker"}),
    "uninspectable-attachment": frozenset(
        {"encrypted", "limit", "malformed", "unsupported", "timeout"}
    ),
    "first-contact": frozenset({"new-recipient", "new-domain"}),
    "recipient-slip": frozenset({"autocomplete", "near-address"}),
    "thread-outsider": frozenset({"new-party"}),
}
"""Finding codes per detector id."""

NUMERIC_PARAMS: Mapping[str, frozenset[str]] = {
    "external-recipients": frozenset({"count", "organisations", "total"}),
    "visible-recipients": frozenset({"count", "organisations", "in_envelope", "domains"}),
    "personal-data": frozenset({"count", "records"}),
    "confidential-marker": frozenset({"count"}),
    "unresolvable-domain": frozenset({"count"}),
    "first-contact": frozenset({"count", "domains"}),
    "recipient-slip": frozenset({"count"}),
    "thread-outsider": frozenset({"count", "domains"}),
}
"""Numeric finding parameters ``params_at_least`` may test, per detector (others have none)."""


def detector_ids() -> tuple[str, ...]:
    """Known detector ids: the registry's when it is importable, else the documented table."""
    try:
        from sendguard.detect.registry import DETECTOR_IDS
    except ImportError:
        return tuple(sorted(FINDING_CODES))
    return tuple(DETECTOR_IDS)
