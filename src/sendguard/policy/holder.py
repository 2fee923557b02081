"""The policy a running relay serves, swapped whole on SIGHUP or when a file changes.

Built once in `sendguard.app` (a bad policy at start-up is fatal: `PolicyError` propagates);
afterwards a failed reload only logs ``policy_reload_failed`` and the last good policy keeps
serving, because refusing all mail over a typo would be worse than the old rules.
`Inspector` reads `PolicyHolder.current` once per message, so each message sees one policy.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import structlog

from sendguard.errors import PolicyError
from sendguard.policy.load import LoadedPolicy, load_policy

log = structlog.get_logger(__name__)


class PolicyHolder:
    """Holds the current `LoadedPolicy` and reloads it."""

    def __init__(self, directory: Path) -> None:
        """Load the policy now; raises `PolicyError` if it is invalid."""
        self.directory = directory
        self._current = load_policy(directory)
        self._fingerprint = self._files_fingerprint()
        _log_loaded(self._current, directory)

    @property
    def current(self) -> LoadedPolicy:
        """The policy in force."""
        return self._current

    def reload(self) -> bool:
        """Load the directory again; on failure keep the old policy, log why, return False."""
        self._fingerprint = self._files_fingerprint()
        try:
            loaded = load_policy(self.directory)
        except PolicyError as exc:
            log.error(
                "policy_reload_failed",
                directory=str(self.directory),
                file=exc.file,
                rule=exc.rule,
                field=exc.field,
                error=str(exc),
                kept_version=self._current.version,
            )
            return False
        # A bug must not take the serving policy down with it.
        except Exception as exc:  # noqa: BLE001
            log.error(
                "policy_reload_failed",
                directory=str(self.directory),
                error=repr(exc),
                kept_version=self._current.version,
            )
            return False
        self._current = loaded
        _log_loaded(loaded, self.directory)
        return True

    async def watch(self, interval: float = 2.0) -> None:
        """Reload when a policy or list file is added, edited or removed; cancel to stop."""
        while True:
            await asyncio.sleep(interval)
            # Hashing a few small files every couple of seconds is cheap and, unlike mtimes,
            # is not fooled by editors that preserve timestamps or by coarse clocks.
            try:
                current = await asyncio.to_thread(self._files_fingerprint)
                if current != self._fingerprint:
                    self.reload()
            # The watcher must outlive any surprise; the old policy keeps serving.
            except Exception as exc:  # noqa: BLE001
                log.error(
                    "policy_reload_failed",
                    directory=str(self.directory),
                    error=repr(exc),
                    kept_version=self._current.version,
                )

    def _files_fingerprint(self) -> str:
        """Digest of the names and contents of every file the policy depends on."""
        digest = hashlib.sha256()
        paths = set(self.directory.glob("*.toml"))
        if getattr(self, "_current", None) is not None:
            paths.update(self._current.files)
        for path in sorted(paths):
            digest.update(str(path).encode() + b"\0")
            try:
                digest.update(path.read_bytes())
            except OSError:
                digest.update(b"\0missing\0")
        return digest.hexdigest()


def _log_loaded(loaded: LoadedPolicy, directory: Path) -> None:
    log.info(
        "policy_loaded",
        directory=str(directory),
        version=loaded.version,
        files=len(loaded.files),
        rules=len(loaded.policy.rules),
    )
