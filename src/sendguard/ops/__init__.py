"""Operating the relay: Prometheus metrics and the HTTP health/readiness/metrics listener."""

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus-client reads this when it is first imported: `sendguard serve` sets it before
anything imports `sendguard.ops.metrics`, so every relay process writes its metrics there."""
