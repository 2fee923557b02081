"""Notification settings: who notices come from, who reviews by default, in which languages.

Nested into `sendguard.settings.Settings` as ``notify`` (environment
``SENDGUARD_NOTIFY__…``, e.g. ``SENDGUARD_NOTIFY__FROM_ADDRESS=sendguard@corp.example``).
"""

from __future__ import annotations

from email.errors import HeaderParseError
from email.headerregistry import Address
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Language = Literal["ja", "en"]


class NotifySettings(BaseModel):
    """Every field has a documented default."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    """Send notices at all. Default on; off only for testing a deployment."""
    from_address: str | None = None
    """Envelope sender and From: of notices. Default: ``postmaster@`` the first internal
    domain of the policy (a real mailbox of the organisation: replies reach a person); set it
    to another address of your domain that the upstream accepts (``sendguard@corp.example``)."""
    from_name: str = "sendguard 送信ガード"
    """Display name in From:."""
    bounce_from_name: str = "Mail Delivery System"
    """Display name in From: of bounces (which go from the null sender ``<>``)."""
    reviewers: tuple[str, ...] = ()
    """Reviewer addresses used when the rule that held the mail names none. Default none."""
    languages: tuple[Language, ...] = Field(default=("ja", "en"), min_length=1)
    """Languages of each notice, in order (Japanese first, English below, by default)."""
    timezone: str = "Asia/Tokyo"
    """The one zone for times shown to people: notices, the review console, the queue CLI."""
    base_url: str | None = None
    """Base URL of the review console as people reach it (``https://sendguard.corp.example``):
    notices then carry signed links (`sendguard.web.links`). Default none: no links."""
    cancel_command: str = "sendguard queue cancel"
    """Command shown to senders for cancelling a delayed message (followed by the id)."""

    @field_validator("from_address")
    @classmethod
    def _check_address(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None  # unset: postmaster@ the first internal domain
        try:
            address = Address(addr_spec=value)
        except (HeaderParseError, ValueError, IndexError) as exc:
            raise ValueError(
                f"{value!r} is not a mail address like sendguard@corp.example"
            ) from exc
        if "." not in address.domain.strip("."):
            # localhost or a bare host name: replies to notices would reach nobody.
            raise ValueError(
                f"{value!r} needs a domain of your organisation, like sendguard@corp.example"
            )
        return value
