"""Graceful shutdown: SIGTERM (what `docker stop` and Kubernetes send) lets in-flight deliveries finish, exits in
bounded time, and leaves no delivery marked in flight; what was not started stays queued for the next process."""

from __future__ import annotations

import signal
import time

import pytest

from saleor_app.app import STOPPING_WORKER
from tests.ops.procs import (
    Deployment,
    assert_logs_clean,
    event_counts,
    postgres_url,  # noqa: F401 (fixture)
    sqlite_url,
    wait_until,
)

IN_FLIGHT = 3  # the worker's concurrency
ORDERS = 5
# SIGTERM to exit: the drain allows 20 s; this is only a bound for a process that would hang.
EXIT_BOUND = 60.0


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        return sqlite_url(tmp_path)
    return request.getfixturevalue("postgres_url")


def delivery_lines(process) -> list[dict]:  # type: ignore[no-untyped-def]
    return [e for e in process.json_lines() if e.get("logger") == "saleor_app.delivery.worker" and e.get("delivery_id")]


def test_sigterm_worker_finishes_in_flight_deliveries_and_releases_its_claims(db_url, tmp_path, fake_saleor, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    d = Deployment(tmp_path, db_url, fake_saleor, fake_vtm, DELIVERY_CONCURRENCY=IN_FLIGHT)
    try:
        web = d.serve(worker=False)
        d.install(web)
        d.set_channel_key()
        hooks = [d.new_order() for _ in range(ORDERS)]
        assert set(d.send_webhooks([web], hooks)) == {200}  # queued before the worker starts: it claims 3 at once
        if db_url.startswith("sqlite"):
            web.terminate()  # one working process per SQLite file (its lock): the worker comes after the web
        # VTmarketing holds its answers: the three sends are still in flight when SIGTERM comes, however slow the
        # machine, and are answered only once the worker is stopping.
        held = [fake_vtm.hold_next() for _ in range(IN_FLIGHT)]
        worker = d.worker()
        wait_until(lambda: len(fake_vtm.requests) >= IN_FLIGHT, timeout=60, interval=0.02, what="3 sends under way")
        assert d.status_counts() == {"delivering": IN_FLIGHT, "pending": ORDERS - IN_FLIGHT}

        sent_at = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        worker.wait_log(STOPPING_WORKER, timeout=EXIT_BOUND)
        for release in held:
            release.set()
        code = worker.wait_exit(EXIT_BOUND)
        took = time.monotonic() - sent_at
        assert code == 0, worker.tail()
        # It waited for VTmarketing's answers rather than dropping them...
        assert len(fake_vtm.events) == IN_FLIGHT
        counts = d.status_counts()
        assert counts == {"delivered": IN_FLIGHT, "pending": ORDERS - IN_FLIGHT}, counts  # nothing left `delivering`
        assert not [row for row in d.deliveries() if row["claimed_by"]]
        assert "stopped" in worker.logs()
        print(f"\nworker SIGTERM → exit in {took:.2f} s with {IN_FLIGHT} sends in flight")

        # ...and what it had not started is not lost: the next worker sends it, once.
        d.worker()
        assert d.wait_all_finished(ORDERS, timeout=60) == {"delivered": ORDERS}
        assert event_counts(fake_vtm) == {order["number"]: 1 for order, _, _ in hooks}

        # The JSON delivery lines name the delivery (never the customer or the key).
        lines = delivery_lines(worker)
        assert lines and all({"installation", "channel", "order_number", "delivery_id"} <= set(e) for e in lines)
        assert_logs_clean(d.processes, d.api_key, fake_saleor.app_token)
        for process in d.processes:  # LOG_FORMAT=json: every line, uvicorn's included, is one JSON object
            assert not process.non_json_lines(), f"{process.name}: {process.non_json_lines()[:3]}"
    finally:
        d.close()


def test_sigterm_serve_finishes_in_flight_deliveries(tmp_path, fake_saleor, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    d = Deployment(tmp_path, sqlite_url(tmp_path), fake_saleor, fake_vtm, DELIVERY_CONCURRENCY=IN_FLIGHT)
    try:
        serve = d.serve(worker=True)
        d.install(serve)
        d.set_channel_key()
        held = [fake_vtm.hold_next() for _ in range(IN_FLIGHT)]  # in flight until serve is stopping its worker
        hooks = [d.new_order() for _ in range(IN_FLIGHT)]
        assert set(d.send_webhooks([serve], hooks)) == {200}
        wait_until(lambda: len(fake_vtm.requests) >= IN_FLIGHT, timeout=60, interval=0.02, what="3 sends under way")

        sent_at = time.monotonic()
        serve.send_signal(signal.SIGTERM)
        serve.wait_log(STOPPING_WORKER, timeout=EXIT_BOUND)
        for release in held:
            release.set()
        code = serve.wait_exit(EXIT_BOUND)
        took = time.monotonic() - sent_at
        # A clean stop on SIGTERM is exit 0 (not uvicorn's re-raised signal, 143 in a container).
        assert code == 0, serve.tail()
        assert d.status_counts() == {"delivered": IN_FLIGHT}
        assert event_counts(fake_vtm) == {order["number"]: 1 for order, _, _ in hooks}
        logs = serve.logs()
        assert "stopped" in logs and "Application shutdown complete" in logs and "Traceback" not in logs
        assert not serve.non_json_lines(), serve.non_json_lines()[:3]
        print(f"\nserve SIGTERM → exit in {took:.2f} s with {IN_FLIGHT} sends in flight")
    finally:
        d.close()


def test_worker_serves_its_own_metrics_and_still_stops_gracefully(tmp_path, fake_saleor, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    import httpx

    from tests.fakes.server import free_port

    d = Deployment(tmp_path, sqlite_url(tmp_path), fake_saleor, fake_vtm)
    try:
        web = d.serve(worker=False)
        d.install(web)
        d.set_channel_key()
        hooks = [d.new_order() for _ in range(2)]
        assert set(d.send_webhooks([web], hooks)) == {200}
        web.terminate()  # one working process per SQLite file (its lock): the worker comes after the web
        port = free_port()
        worker = d.spawn("worker", ["worker", "--host", "127.0.0.1", "--http-port", str(port)], port=port)
        assert d.wait_all_finished(2, timeout=60) == {"delivered": 2}
        assert httpx.get(f"{worker.url}/healthz", timeout=30).status_code == 200
        metrics = httpx.get(f"{worker.url}/metrics", timeout=30).text
        # The delivery counters live in the worker's process: only its own endpoint can report them.
        assert 'vtm_deliveries_finished_total{state="delivered"} 2.0' in metrics
        worker.send_signal(signal.SIGTERM)
        assert worker.wait_exit(EXIT_BOUND) == 0, worker.tail()
    finally:
        d.close()
