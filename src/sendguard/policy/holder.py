"""The policy a running relay serves, swapped whole on SIGHUP or when a file changes.

Built once in `sendguard.app` (a bad policy at start-up is fatal: `PolicyError` propagates);
afterwards a failed reload only logs ``policy_reload_failed`` (error level, naming the file)
and the last good policy keeps serving, because refusing all mail over a typo would be worse
than the old rules. A reload can only make the guard safer or leave it as it is:

- an empty file, or a policy without an enabled rule, is refused by `load_policy` (unless a
  file says ``allow_empty = true``), at start-up as on every reload;
- a file that is still being written is not read: the watcher waits until every file has
  kept its content, size and modification time for `settle` seconds (an atomic rename is
  complete at once), and a load during which any file changed is thrown away and retried.

`Inspector` reads `PolicyHolder.current` once per message, so each message sees one policy.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import tomllib
from pathlib import Path

import structlog

from sendguard.errors import PolicyError
from sendguard.policy.load import LoadedPolicy, load_policy

log = structlog.get_logger(__name__)

_START_ATTEMPTS = 20
"""At start-up (and in ``policy check``), how many times a load that raced a writer is tried."""


class FilesChanging(PolicyError):
    """A policy file changed while it was being read: it is still being written."""


Stamp = dict[Path, tuple[int, int] | None]
"""(size, mtime in ns) of each file, None when it is missing."""


def _stamp(paths: set[Path]) -> Stamp:
    stamp: Stamp = {}
    for path in sorted(paths):
        try:
            st = path.stat()
        except OSError:
            stamp[path] = None
        else:
            stamp[path] = (st.st_size, st.st_mtime_ns)
    return stamp


def load_consistent(directory: Path, known: tuple[Path, ...] = ()) -> LoadedPolicy:
    """`load_policy`, refused with `FilesChanging` if any file changed while it was read.

    Every policy file and every list file is compared before and after the read (list files
    first named by this very load are read a second time, so they are covered too).
    """
    watched = set(known)
    for _ in range(2):
        before = _stamp(watched | set(directory.glob("*.toml")))
        loaded = load_policy(directory)
        after = _stamp(set(before) | set(directory.glob("*.toml")))
        changed = sorted(str(p) for p in after if before.get(p) != after[p])
        if changed:
            raise FilesChanging(
                f"{changed[0]}: changed while it was being read (still being written?)",
                file=changed[0],
            )
        if set(loaded.files) <= set(before):
            return loaded
        watched |= set(loaded.files)
    return loaded


def load_settled(directory: Path, *, pause: float = 0.25) -> LoadedPolicy:
    """`load_consistent`, retried while a writer is still at work (up to ~5 s); for start-up
    and ``policy check``, which must not read a half-written file either."""
    for _ in range(_START_ATTEMPTS - 1):
        try:
            return load_consistent(directory)
        except FilesChanging:
            time.sleep(pause)
    return load_consistent(directory)


class PolicyHolder:
    """Holds the current `LoadedPolicy` and reloads it."""

    def __init__(self, directory: Path, *, settle: float = 1.0) -> None:
        """Load the policy now; raises `PolicyError` if it is invalid.

        ``settle``: seconds every file must stay unchanged before the watcher reads it.
        """
        self.directory = directory
        self.settle = settle
        self._current = load_settled(directory, pause=max(settle, 0.05) / 4)
        self._fingerprint = self._files_fingerprint()
        _log_loaded(self._current, directory)

    @property
    def current(self) -> LoadedPolicy:
        """The policy in force."""
        return self._current

    def _paths(self) -> set[Path]:
        paths = set(self.directory.glob("*.toml"))
        if getattr(self, "_current", None) is not None:
            paths.update(self._current.files)
        return paths

    def _stamp(self) -> Stamp:
        return _stamp(self._paths())

    def _load_consistent(self) -> LoadedPolicy:
        return load_consistent(self.directory, self._current.files)

    def reload(self) -> bool:
        """Load the directory again; on failure keep the old policy, log why, return False."""
        fingerprint = self._files_fingerprint()
        try:
            loaded = self._load_consistent()
        except FilesChanging as exc:
            # Not an error: the watcher reads it once it has settled (the fingerprint stays
            # old, so the change is still pending).
            log.warning("policy_reload_deferred", directory=str(self.directory), file=exc.file)
            return False
        except PolicyError as exc:
            self._fingerprint = fingerprint
            log.error(
                "policy_reload_failed",
                directory=str(self.directory),
                file=exc.file,
                rule=exc.rule,
                field=exc.field,
                error=str(exc),
                kept_version=self._current.version,
                kept_rules=len(self._current.policy.rules),
                **self._dropped(),
            )
            return False
        # A bug must not take the serving policy down with it.
        except Exception as exc:  # noqa: BLE001
            self._fingerprint = fingerprint
            log.error(
                "policy_reload_failed",
                directory=str(self.directory),
                error=repr(exc),
                kept_version=self._current.version,
            )
            return False
        self._fingerprint = fingerprint
        self._current = loaded
        _log_loaded(loaded, self.directory)
        return True

    def _dropped(self) -> dict[str, list[str]]:
        """Files that held rules of the serving policy and are now gone or hold none."""
        gone = []
        for name in sorted({str(p) for p in self._current.rule_files.values()}):
            try:
                data = tomllib.loads(Path(name).read_text(encoding="utf-8"))
            except OSError:
                gone.append(name)
                continue
            except (UnicodeDecodeError, tomllib.TOMLDecodeError):
                continue  # broken, not emptied: the error names it
            if not data.get("rule"):
                gone.append(name)
        return {"files_without_rules_now": gone} if gone else {}

    async def watch(self, interval: float = 2.0) -> None:
        """Reload when a policy or list file is added, edited or removed; cancel to stop.

        A change is read only once it has settled: the same content, sizes and times for
        `settle` seconds, none modified in the last `settle` seconds. An editor that
        truncates and then writes, or a slow copy, is therefore never read half-way.
        """
        seen: tuple[str, Stamp] | None = None
        since = 0.0
        while True:
            await asyncio.sleep(interval)
            # Hashing a few small files every couple of seconds is cheap and, unlike mtimes,
            # is not fooled by editors that preserve timestamps or by coarse clocks.
            try:
                current = await asyncio.to_thread(self._observe)
                if current[0] == self._fingerprint:
                    seen = None
                    continue
                if current != seen:
                    seen, since = current, time.monotonic()
                if time.monotonic() - since < self.settle or self._recently_modified(current[1]):
                    continue
                if self.reload():
                    seen = None
            # The watcher must outlive any surprise; the old policy keeps serving.
            except Exception as exc:  # noqa: BLE001
                log.error(
                    "policy_reload_failed",
                    directory=str(self.directory),
                    error=repr(exc),
                    kept_version=self._current.version,
                )

    def _observe(self) -> tuple[str, Stamp]:
        return self._files_fingerprint(), self._stamp()

    def _recently_modified(self, stamp: Stamp) -> bool:
        newest = max((s[1] for s in stamp.values() if s is not None), default=0)
        age = time.time_ns() - newest
        return 0 <= age < self.settle * 1e9  # a time in the future (skewed clock) never settles

    def _files_fingerprint(self) -> str:
        """Digest of the names and contents of every file the policy depends on."""
        digest = hashlib.sha256()
        for path in sorted(self._paths()):
            digest.update(str(path).encode() + b"\0")
            try:
                digest.update(path.read_bytes())
            except OSError:
                digest.update(b"\0missing\0")
        return digest.hexdigest()


def _log_loaded(loaded: LoadedPolicy, directory: Path) -> None:
    rules = len(loaded.policy.rules)
    enabled = sum(1 for r in loaded.policy.rules if r.enabled)
    # A policy without an enabled rule passes everything: loud, even when deliberate.
    emit = log.info if enabled else log.warning
    emit(
        "policy_loaded",
        directory=str(directory),
        version=loaded.version,
        files=len(loaded.files),
        rules=rules,
        enabled_rules=enabled,
        allow_empty=loaded.policy.allow_empty,
    )
