"""`sendguard serve`: run the relay (flags override SENDGUARD_* and the settings file)."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile

import structlog

from sendguard.log import configure_logging
from sendguard.ops import MULTIPROC_ENV
from sendguard.settings import Settings, load_settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `serve`."""
    p = sub.add_parser("serve", help="run the relay", description=__doc__)
    p.add_argument(
        "--listen", help="host:port[,host:port…] (SENDGUARD_LISTEN, default 127.0.0.1:2525)"
    )
    p.add_argument(
        "--upstream",
        help="smtp://, smtp+starttls://, smtps:// or maildir:DIR "
        "(SENDGUARD_UPSTREAM, default maildir:./var/delivered)",
    )
    p.add_argument(
        "--queue-upstream",
        help="upstream for held/released mail, notices and bounces "
        "(SENDGUARD_QUEUE_UPSTREAM; default the upstream, required in pass-through)",
    )
    p.add_argument(
        "--trusted-networks", help="CIDRs allowed to relay without AUTH (default loopback)"
    )
    p.add_argument("--policy-dir", help="policy directory (default ./policies)")
    p.add_argument("--store", help="queue store URL (default sqlite:///./var/sendguard.db)")
    p.add_argument("--tls-cert", help="PEM certificate for STARTTLS")
    p.add_argument("--tls-key", help="PEM key for STARTTLS")
    p.add_argument("--auth-mode", choices=["none", "local", "passthrough"])
    p.add_argument("--workers", type=int, help="relay processes (0 = number of cores)")
    p.add_argument("--log-format", choices=["json", "console"])
    p.set_defaults(func=run)


async def _migrate(settings: Settings) -> None:
    from sendguard.queue.backends import open_configured_store
    from sendguard.queue.migrations import log_migration

    store = await open_configured_store(settings.store, settings.queue)
    log_migration(store.migrated_from, await store.schema_version())
    await store.close()


def run(args: argparse.Namespace) -> int:
    """Load settings and run until SIGTERM."""
    metrics_dir = _multiprocess_metrics_dir()
    try:
        return _run(args)
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _multiprocess_metrics_dir() -> str | None:
    """A fresh directory for prometheus-client's multi-process mode, set in the environment
    before anything imports it, so the relay processes' metrics add up at scrape time. An
    admin's own ``PROMETHEUS_MULTIPROC_DIR`` is kept (and not removed)."""
    if os.environ.get(MULTIPROC_ENV):
        return None
    path = tempfile.mkdtemp(prefix="sendguard-metrics-")
    os.environ[MULTIPROC_ENV] = path
    return path


def _run(args: argparse.Namespace) -> int:
    from sendguard.app import build_app, serve
    from sendguard.supervisor import supervise, worker_count

    settings = load_settings(
        listen=args.listen,
        upstream=args.upstream,
        queue_upstream=args.queue_upstream,
        trusted_networks=args.trusted_networks,
        policy_dir=args.policy_dir,
        store=args.store,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        auth_mode=args.auth_mode,
        workers=args.workers,
        log_format=args.log_format,
    )
    configure_logging(settings.log_format, settings.log_level)
    # Build once before forking: a broken policy, users file or upstream URL, a plaintext
    # pass-through upstream, or pass-through with a policy that can hold but no queue
    # upstream is reported here, once, with exit code 2 — not as workers dying and restarting.
    build_app(settings)
    # The audit key too: a malformed key file is one clear error, and the relay processes
    # forked below share the key created here instead of racing to create it.
    from sendguard.queue.auditkey import key_path, load_or_create_key

    key_file = key_path(settings.store, settings.audit_key)
    key, created = load_or_create_key(key_file)
    if created:
        log = structlog.get_logger("sendguard.app")
        log.warning("audit_key_created", file=str(key_file), key_id=key.key_id)
    if worker_count(settings) > 1:
        # Migrate the store once, before the workers race to do it on a fresh database.
        asyncio.run(_migrate(settings))
        return supervise(settings)
    return asyncio.run(serve(settings))
