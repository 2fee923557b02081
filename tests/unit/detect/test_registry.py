"""Tests of the detector registry: ids, settings models, building and running (fail closed)."""

from __future__ import annotations

import asyncio
from typing import ClassVar

import pydantic
import pytest

from sendguard.detect import registry
from sendguard.detect.base import ContentDetector, DetectContext, NetworkDetector
from sendguard.detect.personal_data import PersonalDataSettings
from sendguard.errors import InspectionError, InspectionTimeout
from sendguard.model import Finding, Mail

from .helpers import context, text_mail

EXPECTED_IDS = (
    "external-recipients", "visible-recipients", "lookalike-domain", "unresolvable-domain",
    "personal-data", "confidential-marker", "uninspectable-attachment",
    "first-contact", "recipient-slip", "thread-outsider",
)  # fmt: skip
HISTORY_IDS = ("first-contact", "recipient-slip", "thread-outsider")


def test_ids_are_the_documented_ones() -> None:
    """The registry exposes exactly the ids policies are written against, in run order."""
    assert registry.DETECTOR_IDS == EXPECTED_IDS
    assert all(registry.detector_class(i).id == i for i in EXPECTED_IDS)


def test_unknown_id_names_the_known_ones() -> None:
    """A typo in a detector id is a KeyError listing the real ids."""
    with pytest.raises(KeyError, match="personal-data"):
        registry.detector_class("personal-date")


@pytest.mark.parametrize("detector_id", EXPECTED_IDS)
def test_settings_models_are_strict_and_documented(detector_id: str) -> None:
    """Every settings model is frozen, forbids unknown keys and documents each field."""
    model = registry.settings_model(detector_id)
    assert model.model_config.get("frozen") is True
    with pytest.raises(pydantic.ValidationError):
        model(no_such_setting=1)
    for name, info in model.model_fields.items():
        assert info.description, f"{detector_id}.{name} has no description"
        assert not info.is_required(), f"{detector_id}.{name} has no default"


def test_build_splits_content_and_network_and_applies_settings() -> None:
    """build() makes every enabled detector, with given settings or defaults."""
    settings = {"personal-data": PersonalDataSettings(min_records=10)}
    built = registry.build(settings)
    content = [i for i in EXPECTED_IDS if i != "unresolvable-domain" and i not in HISTORY_IDS]
    assert [d.id for d in built.content] == content
    assert [d.id for d in built.network] == ["unresolvable-domain"]
    assert [d.id for d in built.history] == list(HISTORY_IDS)
    personal = next(d for d in built.content if d.id == "personal-data")
    assert personal.settings == settings["personal-data"]
    only = registry.build(enabled=["confidential-marker"])
    assert [d.id for d in only.content] == ["confidential-marker"]
    assert only.network == ()


def test_build_rejects_unknown_ids_and_wrong_settings_types() -> None:
    """Unknown ids and settings of another detector are refused."""
    with pytest.raises(KeyError):
        registry.build(enabled=["nope"])
    with pytest.raises(TypeError):
        registry.build({"confidential-marker": PersonalDataSettings()})


def test_run_content_collects_findings_in_order() -> None:
    """Findings of all content detectors come back together."""
    built = registry.build(enabled=["personal-data", "confidential-marker"])
    found = registry.run_content(
        built, text_mail("社外秘 携帯 090-1234-5678"), context(["a@abc.jp"])
    )
    assert [(f.detector, f.code) for f in found] == [
        ("personal-data", "phone"),
        ("confidential-marker", "marker"),
    ]


class _Broken(ContentDetector):
    id: ClassVar[str] = "broken"
    description: ClassVar[str] = "raises"
    Settings: ClassVar[type[pydantic.BaseModel]] = PersonalDataSettings

    def detect(self, mail: Mail, ctx: DetectContext) -> list[Finding]:
        raise ValueError("secret body text")


class _Slow(NetworkDetector):
    id: ClassVar[str] = "slow"
    description: ClassVar[str] = "sleeps"
    Settings: ClassVar[type[pydantic.BaseModel]] = PersonalDataSettings

    async def detect(self, mail: Mail, ctx: DetectContext) -> list[Finding]:
        await asyncio.sleep(10)
        return []


def test_failing_detector_fails_closed_naming_it() -> None:
    """A detector that raises becomes InspectionError naming it, without the exception text."""
    built = registry.Detectors(content=(_Broken(),), network=())
    with pytest.raises(InspectionError, match="detector broken failed: ValueError") as caught:
        registry.run_content(built, Mail(), context(["a@abc.jp"]))
    assert "secret" not in str(caught.value)


async def test_network_detector_over_time_fails_closed() -> None:
    """A network detector past the timeout is an InspectionTimeout naming it."""
    built = registry.Detectors(content=(), network=(_Slow(),))
    with pytest.raises(InspectionTimeout, match="slow"):
        await registry.run_network(built, Mail(), context(["a@abc.jp"]), timeout=0.05)


def test_declared_codes_match_what_policies_may_name() -> None:
    """Each detector's declared codes are the ones the policy validator accepts."""
    from sendguard.policy.codes import FINDING_CODES

    assert {i: frozenset(registry.finding_codes(i)) for i in EXPECTED_IDS} == dict(FINDING_CODES)


def test_content_detectors_survive_pickling() -> None:
    """Every content detector crosses to a worker process and still finds the same things."""
    import pickle

    built = registry.build()
    mail = text_mail("社外秘 携帯 090-1234-5678")
    ctx = context(["a@gmial.com"])
    clones = registry.Detectors(
        content=tuple(pickle.loads(pickle.dumps(d)) for d in built.content),  # noqa: S301 -- ours
        network=(),
    )
    assert registry.run_content(clones, mail, ctx) == registry.run_content(built, mail, ctx)
