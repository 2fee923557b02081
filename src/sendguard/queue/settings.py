"""Queue settings: how long held and delayed mail waits, how released mail is retried.

Nested into `sendguard.settings.Settings` as ``queue`` (environment ``SENDGUARD_QUEUE__…``,
e.g. ``SENDGUARD_QUEUE__RETRY_BACKOFF=[60,300]``). Read by the store (hold expiry at
enqueue), the worker (release, retry, expiry, purge) and the CLI (encryption key).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator


class QueueSettings(BaseModel):
    """Every field has a default that suits one Japanese office; all are documented."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    retry_backoff: tuple[float, ...] = (60.0, 300.0, 900.0, 1800.0, 3600.0)
    """Seconds before each retry after a temporary (4xx) upstream failure; the last value
    repeats. Default 1 min, 5 min, 15 min, 30 min, then hourly (RFC 5321 §4.5.4.1)."""
    give_up_hours: float = Field(default=120.0, gt=0)
    """Hours after release when retrying stops and the sender gets a bounce. Default 5 days
    (Postfix ``maximal_queue_lifetime``)."""
    hold_expire_hours: float = Field(default=72.0, gt=0)
    """Business hours until a hold nobody decided expires (rejected, sender told), when the
    rule sets no ``expire_hours``. Default 72: three full business days."""
    business_hours_start: int = Field(default=0, ge=0, le=23)
    """Hour of the day (in `timezone`) business time starts; 0 counts whole days."""
    business_hours_end: int = Field(default=24, ge=1, le=24)
    """Hour of the day business time ends; 24 counts whole days. E.g. 9 and 18 count only
    office hours, so 9 business hours is one working day."""
    timezone: str = "Asia/Tokyo"
    """IANA zone in which business days and hours are counted."""
    weekend: tuple[int, ...] = (5, 6)
    """Days that are not business days (Monday = 0). Default Saturday and Sunday."""
    japanese_holidays: bool = True
    """Japanese national holidays (祝日, 振替休日, 国民の休日) are not business days. Default on."""
    holidays: tuple[dt.date, ...] = ()
    """Further non-business dates (company days off such as 年末年始). Default none."""
    poll_interval: float = Field(default=1.0, gt=0)
    """Seconds between worker passes; due delays go out within this time."""
    batch_size: int = Field(default=20, ge=1)
    """Entries one worker claims per pass; they are delivered concurrently."""
    claim_lease: float = Field(default=900.0, gt=0)
    """Seconds a claimed delivery stays with one node; after a crash another node (or the
    restarted one) takes it over. Must exceed the upstream's DATA timeout."""
    notice_max_attempts: int = Field(default=10, ge=1)
    """Attempts to send one notification or bounce before it is dropped (and logged)."""
    purge_after_days: float | None = 30.0
    """Days after which finished entries (delivered, rejected, cancelled, expired, failed)
    are removed with their message bytes; None keeps them. The audit log is never purged."""
    encryption_key: SecretStr | None = None
    """Base64 of 32 random bytes (``openssl rand -base64 32``): message bytes are encrypted at
    rest with AES-256-GCM. Default none (stored in clear)."""

    @field_validator("encryption_key")
    @classmethod
    def _check_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            decode_key(value.get_secret_value())
        return value

    @field_validator("timezone")
    @classmethod
    def _check_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (e.g. Asia/Tokyo)") from exc
        return value

    @field_validator("retry_backoff")
    @classmethod
    def _check_backoff(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value or any(v <= 0 for v in value):
            raise ValueError("retry_backoff needs at least one positive number of seconds")
        return value

    @model_validator(mode="after")
    def _check_window(self) -> QueueSettings:
        if self.business_hours_start >= self.business_hours_end:
            raise ValueError("business_hours_start must be before business_hours_end")
        if len(set(self.weekend)) >= 7:
            raise ValueError("weekend cannot cover every day of the week")
        return self

    @property
    def key(self) -> bytes | None:
        """The decoded AES key, or None when encryption at rest is off."""
        if self.encryption_key is None:
            return None
        return decode_key(self.encryption_key.get_secret_value())


def decode_key(text: str) -> bytes:
    """Decode a base64 AES-256 key, explaining what is expected when it is wrong."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("encryption_key must be base64 (openssl rand -base64 32)") from exc
    if len(raw) != 32:
        raise ValueError(f"encryption_key must decode to 32 bytes, not {len(raw)}")
    return raw
