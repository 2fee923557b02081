"""What rules may name: detector ids, their finding codes and their numeric parameters.

Used by `sendguard.policy.load` to refuse a rule that names a detector or code that does not
exist (a typo there would otherwise make the rule silently never match). The ids and codes
are the detectors' own declarations (`Detector.id`, `Detector.codes`, read through
`sendguard.detect.registry`): one place, so a new code is nameable the moment a detector
emits it.
"""

from __future__ import annotations

from collections.abc import Mapping

from sendguard.detect.registry import DETECTOR_IDS, finding_codes

FINDING_CODES: Mapping[str, frozenset[str]] = {
    detector: frozenset(finding_codes(detector)) for detector in DETECTOR_IDS
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
    """Known detector ids, in the registry's order."""
    return DETECTOR_IDS
