"""The detector registry: ids → classes, settings models, building and running detectors.

Used by the policy loader (to validate ``[detectors.<id>]`` tables and build detectors) and by
the pipeline (``run_content`` in a worker process, ``run_network`` on the event loop). A
detector that raises makes the whole inspection fail closed: the error is re-raised as
`InspectionError` naming the detector, and the relay answers 451 or holds — never passes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import dns.exception
import pydantic
import structlog

from sendguard.detect.base import ContentDetector, DetectContext, HistoryDetector, NetworkDetector
from sendguard.detect.confidential_marker import ConfidentialMarker
from sendguard.detect.external_recipients import ExternalRecipients
from sendguard.detect.first_contact import FirstContact
from sendguard.detect.lookalike_domain import LookalikeDomain
from sendguard.detect.personal_data import PersonalData
from sendguard.detect.recipient_slip import RecipientSlip
from sendguard.detect.thread_outsider import ThreadOutsider
from sendguard.detect.uninspectable_attachment import UninspectableAttachment
from sendguard.detect.unresolvable_domain import UnresolvableDomain
from sendguard.detect.visible_recipients import VisibleRecipients
from sendguard.errors import InspectionError, InspectionTimeout
from sendguard.model import CellDigest, Finding, Mail

_log = structlog.get_logger(__name__)

_CLASSES: tuple[type[ContentDetector] | type[NetworkDetector], ...] = (
    ExternalRecipients,
    VisibleRecipients,
    LookalikeDomain,
    UnresolvableDomain,
    PersonalData,
    ConfidentialMarker,
    UninspectableAttachment,
    FirstContact,
    RecipientSlip,
    ThreadOutsider,
)

DETECTOR_IDS: tuple[str, ...] = tuple(cls.id for cls in _CLASSES)
"""Every detector id, in the order detectors run and findings are listed."""


def detector_class(detector_id: str) -> type[ContentDetector] | type[NetworkDetector]:
    """The class registered under `detector_id`; KeyError naming the known ids otherwise."""
    for cls in _CLASSES:
        if cls.id == detector_id:
            return cls
    raise KeyError(f"unknown detector {detector_id!r}; known: {', '.join(DETECTOR_IDS)}")


def settings_model(detector_id: str) -> type[pydantic.BaseModel]:
    """The pydantic model of ``[detectors.<id>]`` (frozen, extra keys forbidden)."""
    return detector_class(detector_id).Settings


def finding_codes(detector_id: str) -> tuple[str, ...]:
    """The finding codes `detector_id` can emit."""
    return detector_class(detector_id).codes


@dataclass(frozen=True)
class Detectors:
    """The built detectors of one policy, split by where they run."""

    content: tuple[ContentDetector, ...]
    network: tuple[NetworkDetector, ...]
    history: tuple[HistoryDetector, ...] = ()
    """Run in the relay process after the history snapshot is looked up (`run_history`)."""


def build(
    settings: Mapping[str, pydantic.BaseModel] | None = None,
    *,
    enabled: Iterable[str] | None = None,
) -> Detectors:
    """Build the enabled detectors (all by default) with their settings (defaults if absent)."""
    settings = settings or {}
    for detector_id in settings:
        detector_class(detector_id)  # an unknown id in the settings is a KeyError too
    wanted = set(DETECTOR_IDS if enabled is None else enabled)
    for detector_id in wanted:
        detector_class(detector_id)
    content: list[ContentDetector] = []
    network: list[NetworkDetector] = []
    history: list[HistoryDetector] = []
    for cls in _CLASSES:
        if cls.id not in wanted:
            continue
        detector = cls(settings.get(cls.id))
        if isinstance(detector, HistoryDetector):
            history.append(detector)
        elif isinstance(detector, ContentDetector):
            content.append(detector)
        else:
            network.append(detector)
    return Detectors(content=tuple(content), network=tuple(network), history=tuple(history))


def cells_gate(detectors: Detectors) -> Callable[[CellDigest], bool]:
    """The candidate-first question for workbooks (`parse.Context.cells_gate`): could any
    detector's findings change with cells that render to no more than the digest?"""
    readers = tuple(d for d in (*detectors.content, *detectors.history) if d.reads_parts)
    return lambda cells: any(d.cells_matter(cells) for d in readers)


def run_content(detectors: Detectors, mail: Mail, ctx: DetectContext) -> tuple[Finding, ...]:
    """Run every content detector; any exception fails the inspection (closed)."""
    found: list[Finding] = []
    for detector in detectors.content:
        try:
            found.extend(detector.detect(mail, ctx))
        except Exception as exc:
            # The exception text may quote message content: log its type only.
            _log.error("detector_failed", detector=detector.id, error=type(exc).__name__)
            raise InspectionError(f"detector {detector.id} failed: {type(exc).__name__}") from exc
    return tuple(found)


def run_history(detectors: Detectors, mail: Mail, ctx: DetectContext) -> tuple[Finding, ...]:
    """Run the history detectors on `ctx.history` (pure and cheap: in the relay process)."""
    return run_content(Detectors(content=detectors.history, network=()), mail, ctx)


async def _run_one(
    detector: NetworkDetector,
    mail: Mail,
    ctx: DetectContext,
    timeout: float,  # noqa: ASYNC109 -- the registry owns the per-detector deadline
) -> list[Finding]:
    try:
        async with asyncio.timeout(timeout):
            return await detector.detect(mail, ctx)
    # A resolver's own timeout (dnspython's is not a TimeoutError) is a timeout too.
    except (TimeoutError, dns.exception.Timeout) as exc:
        _log.error("detector_timeout", detector=detector.id, timeout=timeout)
        raise InspectionTimeout(f"detector {detector.id} exceeded {timeout:g} s") from exc
    except Exception as exc:
        _log.error("detector_failed", detector=detector.id, error=type(exc).__name__)
        raise InspectionError(f"detector {detector.id} failed: {type(exc).__name__}") from exc


async def run_network(
    detectors: Detectors,
    mail: Mail,
    ctx: DetectContext,
    *,
    timeout: float,  # noqa: ASYNC109 -- the API the pipeline calls; each detector is bounded
) -> tuple[Finding, ...]:
    """Run the network detectors concurrently, each bounded by `timeout` seconds.

    A detector that raises or overruns fails the inspection (InspectionError /
    InspectionTimeout naming it); detectors that report outages themselves (a DNS timeout
    is a `dns-error` finding) do so within their own, smaller budget.
    """
    if len(detectors.network) == 1:  # the shipped set: no task to gather one coroutine into
        return tuple(await _run_one(detectors.network[0], mail, ctx, timeout))
    results = await asyncio.gather(
        *(_run_one(d, mail, ctx, timeout) for d in detectors.network), return_exceptions=True
    )
    found: list[Finding] = []
    for result in results:
        if isinstance(result, BaseException):
            raise result
        found.extend(result)
    return tuple(found)
