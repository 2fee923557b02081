"""History settings (``SENDGUARD_HISTORY__…``): whether to learn, how long to keep it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class HistorySettings(BaseModel):
    """Nested into `sendguard.settings.Settings` as ``history``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    """Learn from delivered mail and give the history detectors their snapshot. Off: the
    history detectors find nothing and lookalike-domain has no learned targets."""
    retention_days: float = Field(default=730.0, gt=0)
    """Rows not written to for this long are deleted (hourly). Default two years."""
    learn_floor: int = Field(default=2, ge=1)
    """Domains written to at least this often are sent to the detectors as learned domains
    (`lookalike-domain` applies its own ``learned_min_count`` on top)."""
    refresh_seconds: float = Field(default=300.0, gt=0)
    """How often the learned domains are re-read from the store."""
    queue_size: int = Field(default=10000, ge=1)
    """Delivered messages waiting to be recorded; beyond it new ones are dropped (logged)."""
    lookup_timeout: float = Field(default=0.5, gt=0)
    """Seconds for one message's history look-up; over it the history detectors are skipped
    for that message (logged) rather than delaying the client."""
    key: str = ""
    """Key for the thread-id hashes (any text; default none). Changing it forgets threads."""
