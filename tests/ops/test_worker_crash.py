"""A worker that dies mid-delivery loses nothing; two workers on one PostgreSQL never send an order twice.

Real processes (`saleor-vtmarketing serve` / `worker`), killed with SIGKILL: nothing of the app runs after it."""

from __future__ import annotations

import time

from tests.ops.procs import (
    Deployment,
    assert_logs_clean,
    event_counts,
    postgres_url,  # noqa: F401 (fixture)
    sqlite_url,
    wait_until,
)



def delivered_lines(process) -> int:  # type: ignore[no-untyped-def]
    """How many orders this process reports delivered (its JSON log lines)."""
    return sum(
        1 for e in process.json_lines()
        if e.get("logger") == "saleor_app.delivery.worker" and " delivered: " in e.get("message", "")
    )


def test_sqlite_serve_killed_mid_delivery_delivers_after_restart(tmp_path, fake_saleor, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    d = Deployment(tmp_path, sqlite_url(tmp_path), fake_saleor, fake_vtm)
    try:
        serve = d.serve(worker=True)
        d.install(serve)
        d.set_channel_key()
        release = fake_vtm.hold_next()  # VTmarketing answers this send only after the crash, however slow the machine
        order, body, headers = d.new_order()
        assert d.send_webhooks([serve], [(order, body, headers)]) == [200]
        wait_until(lambda: fake_vtm.requests, timeout=60, what="the send to VTmarketing")
        (row,) = d.deliveries()
        assert row["status"] == "delivering"

        serve.kill()  # the machine dies while VTmarketing has not answered yet
        (row,) = d.deliveries()
        assert row["status"] == "delivering" and row["claimed_by"], "the crash left it in flight"

        restarted = d.serve(worker=True)
        wait_until(lambda: d.deliveries()[0]["status"] == "delivered", timeout=60, what="the order delivered")
        # At least once: VTmarketing still processes the dead process's send once it answers it, so it holds the
        # order twice (the same orderId lets its reports count it once).
        release.set()
        wait_until(lambda: len(fake_vtm.requests) == 2 and all(r.status for r in fake_vtm.requests), timeout=60,
                   what="VTmarketing done with both sends")
        assert event_counts(fake_vtm) == {order["number"]: 2}
        assert d.status_counts() == {"delivered": 1}
        listing = d.cli("deliveries", "list").stdout
        assert "delivered" in listing and order["number"] in listing
        assert_logs_clean([serve, restarted], d.api_key, fake_saleor.app_token)
    finally:
        d.close()


def test_postgres_two_workers_send_each_of_100_orders_exactly_once(tmp_path, postgres_url, fake_saleor, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    url = postgres_url
    d = Deployment(tmp_path, url, fake_saleor, fake_vtm, DELIVERY_CONCURRENCY=4, DELIVERY_LEASE_SECONDS=3)
    try:
        d.cli("migrate")
        web = d.serve(worker=False, wait=False)
        workers = [d.worker(wait=False), d.worker(wait=False)]
        d.wait_started(web, *workers)
        d.install(web)
        d.set_channel_key()
        fake_vtm.latency = 0.02
        hooks = [d.new_order() for _ in range(100)]
        started = time.monotonic()
        assert set(d.send_webhooks([web], hooks)) == {200}
        assert d.wait_all_finished(100, timeout=180) == {"delivered": 100}
        elapsed = time.monotonic() - started
        wait_until(lambda: len(fake_vtm.events) >= 100, timeout=30, what="100 events")
        assert event_counts(fake_vtm) == {order["number"]: 1 for order, _, _ in hooks}
        assert all(w.alive for w in workers)
        per_worker = [delivered_lines(w) for w in workers]
        assert sum(per_worker) == 100 and min(per_worker) > 0, per_worker  # both took a share
        print(f"100 orders, 2 workers: {elapsed:.1f} s, split {per_worker}")
    finally:
        d.close()
