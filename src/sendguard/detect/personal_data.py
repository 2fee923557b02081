"""`personal-data`: Japanese personal data in the subject, filenames, bodies and every
extracted part and table — My Number, cards, phones, addresses, e-mail addresses, birth
dates, bank accounts, passports, driver's licences, pension numbers — plus corporate
numbers (public business data, severity info) and the customer-list judgement.

Counts are distinct values per code over the whole mail; evidence is masked
(`pii.masks`); `where` names the parts. The text scan is `pii.scan` (one regex pass),
tables are read by `pii.records`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import ClassVar

import pydantic

from sendguard.detect.base import ContentDetector, DetectContext, DetectorSettings
from sendguard.detect.pii.cells import cells_may_hold
from sendguard.detect.pii.columns import ColumnScan, scan_rendered
from sendguard.detect.pii.masks import mask
from sendguard.detect.pii.records import read_table, text_records, text_tables
from sendguard.detect.pii.scan import Hit, scan_text
from sendguard.detect.texts import nfkc
from sendguard.model import CellDigest, Finding, Mail, Part, Severity

CODES: tuple[str, ...] = (
    "my-number", "credit-card", "phone", "postal-address", "email-address", "birth-date",
    "bank-account", "passport", "drivers-licence", "pension-number", "corporate-number",
    "customer-list",
)  # fmt: skip

_SEVERITY: MappingProxyType[str, Severity] = MappingProxyType(
    {
        "my-number": "critical", "credit-card": "high", "phone": "low",
        "postal-address": "low", "email-address": "low", "birth-date": "medium",
        "bank-account": "medium", "passport": "high", "drivers-licence": "high",
        "pension-number": "high", "corporate-number": "info", "customer-list": "high",
    }
)  # fmt: skip

_DASHES = "\u2010\u2011\u2012\u2013\u2014\u2015\u2212"
"""Dashes NFKC keeps (the minus sign of ISO-2022-JP mail, U+2212, is how 090−1234−5678
arrives), read as "-": one character each, so positions do not move. Not ー, which is part
of labels."""


def _normal(text: str) -> str:
    text = nfkc(text)
    for dash in _DASHES:  # `in` and `replace` run in C; str.translate would cost 5 MB/s
        if dash in text:
            text = text.replace(dash, "-")
    return text


_NAMES: MappingProxyType[str, str] = MappingProxyType(
    {
        "my-number": "My Numbers", "credit-card": "credit card numbers",
        "phone": "phone numbers", "postal-address": "postal addresses",
        "email-address": "e-mail addresses", "birth-date": "birth dates",
        "bank-account": "bank account numbers", "passport": "passport numbers",
        "drivers-licence": "driver's licence numbers", "pension-number": "basic pension numbers",
        "corporate-number": "corporate numbers",
    }
)  # fmt: skip


class PersonalDataSettings(DetectorSettings):
    """Settings of `personal-data`."""

    disabled_codes: tuple[str, ...] = pydantic.Field(
        default=(), description=f"Finding codes not to report (any of: {', '.join(CODES)})."
    )
    context_window: int = pydantic.Field(
        default=40,
        ge=1,
        le=400,
        description="Characters before a number in which its context label "
        "(個人番号, 口座番号, 基礎年金番号 …) must appear.",
    )
    min_records: int = pydantic.Field(
        default=5,
        ge=2,
        description="Person records a table or text block needs to be a customer list.",
    )
    skip_signatures: bool = pydantic.Field(
        default=True,
        description="Ignore phones, addresses and e-mail addresses in signature blocks "
        "of message bodies (after a '--' or '-----' line).",
    )
    max_evidence: int = pydantic.Field(default=3, ge=0, description="Masked examples per finding.")

    @pydantic.field_validator("disabled_codes")
    @classmethod
    def _known_codes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - set(CODES))
        if unknown:
            raise ValueError(f"unknown codes {unknown}; known: {', '.join(CODES)}")
        return value


@dataclass
class _Tally:
    """Accumulator of one `detect` call (never shared between calls)."""

    values: dict[str, dict[str, None]] = field(default_factory=dict)
    where: dict[str, dict[str, None]] = field(default_factory=dict)
    strong_card: bool = False
    records: int = 0
    truncated: bool = False
    columns: dict[str, None] = field(default_factory=dict)

    def add(self, hits: list[Hit] | tuple[Hit, ...], where: str) -> None:
        for hit in hits:
            self.values.setdefault(hit.code, {})[hit.value] = None
            self.where.setdefault(hit.code, {})[where] = None
            self.strong_card = self.strong_card or hit.strong

    def add_scan(self, scan: ColumnScan, where: str) -> None:
        """Values of a column-wise scan (`pii.columns`), in the order the text scan gives."""
        for code, values in scan.values.items():
            if values:
                if code in self.values:
                    self.values[code].update(values)
                else:
                    self.values[code] = values  # the scan's own dict: no copy of 80,000 values
                self.where.setdefault(code, {})[where] = None
        self.strong_card = self.strong_card or scan.strong

    def add_records(self, records: int, columns: tuple[str, ...], where: str) -> None:
        self.records += records
        self.where.setdefault("customer-list", {})[where] = None
        self.columns.update(dict.fromkeys(columns))

    def merge(self, part: _Tally) -> None:
        """Add one part's tally: the same values, order and sums as reading it in here."""
        for code, values in part.values.items():
            self.values.setdefault(code, {}).update(values)
        for code, where in part.where.items():
            self.where.setdefault(code, {}).update(where)
        self.strong_card = self.strong_card or part.strong_card
        self.records += part.records
        self.truncated = self.truncated or part.truncated
        self.columns.update(part.columns)


class PersonalData(ContentDetector):
    """Find Japanese personal data and customer lists."""

    id: ClassVar[str] = "personal-data"
    description: ClassVar[str] = (
        "Japanese personal data (My Number, cards, phones …), customer lists"
    )
    Settings: ClassVar[type[pydantic.BaseModel]] = PersonalDataSettings
    codes: ClassVar[tuple[str, ...]] = CODES

    def cells_matter(self, cells: CellDigest) -> bool:
        """The proof of `pii.cells` (whatever the settings: disabled codes only hide)."""
        return cells_may_hold(cells, _normal("\n".join(cells.texts)))

    def _part(
        self, part: Part, tally: _Tally, cfg: PersonalDataSettings, *, exhaustive: bool
    ) -> None:
        where = part.label or "message"
        if part.filename:
            tally.add(
                scan_text(_normal(part.filename), body=False, window=cfg.context_window), where
            )
        text = _normal(part.text) if part.text else ""
        body = cfg.skip_signatures and not part.is_attachment
        columnar = None
        if part.tables and not body and not exhaustive:
            columnar = scan_rendered(
                text, part.tables, window=cfg.context_window, keep=cfg.max_evidence,
                minimum=cfg.min_records,
            )  # fmt: skip
        hits: list[Hit] = []
        if columnar is not None:
            tally.add_scan(columnar, where)
        elif text:
            hits = scan_text(text, body=body, window=cfg.context_window, exhaustive=exhaustive)
            tally.add(hits, where)
        records, columns = 0, tuple[str, ...]()
        for table in part.tables or text_tables(text):
            reading = read_table(table)
            tally.add(reading.hits, where)
            tally.truncated = tally.truncated or table.truncated
            if reading.records > records:
                records, columns = reading.records, reading.columns
        found = columnar.records if columnar else text_records(text, hits, cfg.min_records)
        records = max(records, found)
        if records >= cfg.min_records:
            tally.add_records(records, columns, where)

    def _part_tally(self, part: Part, cfg: PersonalDataSettings, ctx: DetectContext) -> _Tally:
        """One part read on its own; kept in `ctx.memo` when there is one (the early stop
        reads each part alone first, then the whole message: each part is read once)."""
        key = (self.id, id(part))
        if ctx.memo is not None:
            kept = ctx.memo.get(key)
            if kept is not None and kept[0] is part and isinstance(kept[1], _Tally):
                return kept[1]
        tally = _Tally()
        self._part(part, tally, cfg, exhaustive=ctx.exhaustive)
        if ctx.memo is not None:
            ctx.memo[key] = (part, tally)
        return tally

    def detect(self, mail: Mail, ctx: DetectContext) -> list[Finding]:
        """One finding per code seen, counting distinct values."""
        cfg = self.settings_as(PersonalDataSettings)
        tally = _Tally()
        if mail.subject:
            subject = scan_text(_normal(mail.subject), body=False, window=cfg.context_window)
            tally.add(subject, "subject")
        for part in mail.parts:
            tally.merge(self._part_tally(part, cfg, ctx))
        return [f for f in self._findings(tally, cfg) if f.code not in cfg.disabled_codes]

    def _findings(self, tally: _Tally, cfg: PersonalDataSettings) -> list[Finding]:
        found = []
        for code in CODES[:-1]:
            values = tally.values.get(code)
            if not values:
                continue
            severity = _SEVERITY[code]
            if code == "credit-card" and tally.strong_card:
                severity = "critical"  # with expiry or security code the number is usable
            found.append(
                Finding(
                    detector=self.id,
                    code=code,
                    message="{count} " + _NAMES[code] + " found",
                    count=len(values),
                    severity=severity,
                    params={"count": len(values)},
                    evidence=tuple(mask(code, v) for v in list(values)[: cfg.max_evidence]),
                    where=tuple(tally.where[code]),
                )
            )
        if tally.records:
            found.append(
                Finding(
                    detector=self.id,
                    code="customer-list",
                    message="A list of {records} person records ({columns})",
                    count=tally.records,
                    severity=_SEVERITY["customer-list"],
                    params={
                        "records": tally.records,
                        "columns": ", ".join(tally.columns) or "detected from values",
                        "where": ", ".join(tally.where["customer-list"]),
                        "truncated": int(tally.truncated),
                    },
                    where=tuple(tally.where["customer-list"]),
                )
            )
        return found
