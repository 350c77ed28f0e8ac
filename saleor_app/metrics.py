"""Prometheus metrics. One registry per app instance, so tests can run many apps in one process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.webhooks_received = Counter(
            "vtm_webhooks_received_total", "Webhooks received, by event and outcome", ["event", "outcome"], registry=r
        )
        self.deliveries_finished = Counter(
            "vtm_deliveries_finished_total", "Deliveries that reached a final state", ["state"], registry=r
        )
        self.attempts = Counter(
            "vtm_delivery_attempts_total", "Attempts to send to VTmarketing, by HTTP status class", ["status_class"], registry=r
        )
        self.queue_depth = Gauge("vtm_queue_depth", "Deliveries waiting (pending, retrying, delivering)", registry=r)
        self.oldest_pending_age = Gauge(
            "vtm_queue_oldest_age_seconds", "Age of the oldest delivery still waiting", registry=r
        )
        self.vtmarketing_request_seconds = Histogram(
            "vtm_vtmarketing_request_seconds", "Time VTmarketing took to answer", registry=r,
            buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.saleor_request_seconds = Histogram(
            "vtm_saleor_request_seconds", "Time Saleor took to answer a GraphQL request", ["document"], registry=r,
            buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.webhook_to_delivery_seconds = Histogram(
            "vtm_webhook_to_delivery_seconds", "From storing an order to VTmarketing accepting it", registry=r,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 5, 30, 300, 3600, 86400),
        )
        self.reconcile_checked = Counter("vtm_reconcile_orders_checked_total", "Orders looked at by reconciliation", registry=r)
        self.reconcile_last_pass = Gauge(
            "vtm_reconcile_last_pass_timestamp_seconds", "When the last reconciliation pass ended, per installation",
            ["installation"], registry=r,
        )
        self.reconcile_recovered = Counter(
            "vtm_reconcile_orders_recovered_total", "Orders reconciliation queued that no webhook had brought", registry=r
        )
        # Product feed (saleor_app/feed/)
        self.feed_builds = Counter("vtm_feed_builds_total", "Product feed builds, by outcome", ["outcome"], registry=r)
        self.feed_build_seconds = Histogram(
            "vtm_feed_build_seconds", "Time a product feed build took (successful builds)", registry=r,
            buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
        )
        self.feed_rows = Gauge(
            "vtm_feed_rows", "Rows of the feed file this process last built or served", ["installation", "channel"],
            registry=r,
        )
        self.feed_requests = Counter("vtm_feed_requests_total", "Feed downloads, by HTTP status", ["status"], registry=r)
        self._worker: tuple[Counter, Gauge, Gauge] | None = None

    def _worker_metrics(self) -> tuple[Counter, Gauge, Gauge]:
        """Registered by the first worker of the process: a web-only process exports no worker progress of 0, and no
        "not held back" for a worker that runs elsewhere."""
        if self._worker is None:
            self._worker = (
                Counter("vtm_worker_errors_total", "Failed steps of the delivery worker (each is retried with backoff)",
                        ["step"], registry=self.registry),
                Gauge("vtm_worker_last_progress_timestamp", "When the delivery worker last completed a step (Unix time)",
                      registry=self.registry),
                Gauge("vtm_vtmarketing_held_back", "1 while the queue is held back because VTmarketing takes no "
                      "events (one order at a time probes it: delivery/outage.py)", registry=self.registry),
            )
        return self._worker

    @property
    def worker_errors(self) -> Counter:
        return self._worker_metrics()[0]

    @property
    def worker_last_progress(self) -> Gauge:
        return self._worker_metrics()[1]

    @property
    def vtmarketing_held_back(self) -> Gauge:
        return self._worker_metrics()[2]


def status_class(status: int | None) -> str:
    return f"{status // 100}xx" if status else "no_answer"
