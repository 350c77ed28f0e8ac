"""Finding 1 of issue 12: a transient database write error must not end the delivery worker silently.

A real `serve` (worker in-process) keeps its SQLite file on a small tmpfs, which the test fills to the last byte
while a backlog waits and sends are in flight: the worker's settles and claims fail for real (SQLite's "database or
disk is full"). Readiness says so, webhooks are refused (Saleor retries), each failing step is logged and counted;
once the space is back, everything is delivered by the same process, each order once."""

from __future__ import annotations

import os

import httpx
from prometheus_client.parser import text_string_to_metric_families

from saleor_app.saleor.manifest import ORDER_CONFIRMED
from tests.ops.procs import Deployment, event_counts, fill_disk, small_tmpfs, sqlite_url, wait_until

IN_FLIGHT = 8
BACKLOG = 40


def readyz(process) -> tuple[int, dict]:  # type: ignore[no-untyped-def]
    response = httpx.get(f"{process.url}/readyz", timeout=15)
    return response.status_code, response.json()


def worker_errors(process) -> dict[str, float]:  # type: ignore[no-untyped-def]
    text = httpx.get(f"{process.url}/metrics", timeout=15).text
    return {
        sample.labels["step"]: sample.value
        for family in text_string_to_metric_families(text) for sample in family.samples
        if sample.name == "vtm_worker_errors_total"
    }


def test_full_disk_is_seen_retried_and_healed_without_a_restart(tmp_path, fake_saleor, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "data"
    with small_tmpfs(data, "16m"):
        d = Deployment(tmp_path, sqlite_url(tmp_path), fake_saleor, fake_vtm, DELIVERY_CONCURRENCY=IN_FLIGHT)
        try:
            serve = d.serve()
            d.install(serve)
            d.set_channel_key()
            fake_vtm.hold()  # VTmarketing takes the sends in but does not answer yet
            hooks = [d.new_order() for _ in range(BACKLOG)]
            assert set(d.send_webhooks([serve], hooks)) == {200}
            wait_until(lambda: fake_vtm.held >= IN_FLIGHT, timeout=30, what="sends in flight")

            filler = fill_disk(data)
            fake_vtm.release()  # VTmarketing accepts them: recording that now meets the full disk
            status, body = wait_until(lambda: (lambda r: r if r[0] == 503 else None)(readyz(serve)), timeout=10,
                                      what="/readyz answering 503")
            assert "database or disk is full" in (body.get("database", "") + body.get("worker", "")), body
            # Saleor gets a 5xx for a new order, so it retries: nothing is acknowledged that is not stored.
            late = d.new_order()
            response = httpx.post(f"{serve.url}{ORDER_CONFIRMED.path}", content=late[1], headers=late[2], timeout=15)
            assert response.status_code == 503, response.text
            # Every slot is held by a send whose recording fails (and is retried): the settle step is what fails.
            errors = wait_until(lambda: (lambda e: e if e.get("settle", 0) >= IN_FLIGHT else None)(worker_errors(serve)),
                                timeout=30, what="settle failures counted")
            lines = [e for e in serve.json_lines() if e.get("level") == "error" and "worker step" in e.get("message", "")]
            assert any("settle" in e["message"] and "database or disk is full" in e["message"] for e in lines), lines[:5]
            assert serve.alive

            os.unlink(filler)  # the disk has room again: no restart, no operator
            assert d.send_webhooks([serve], [late]) == [200]  # Saleor's retry of the refused webhook
            assert d.wait_all_finished(BACKLOG + 1, timeout=60) == {"delivered": BACKLOG + 1}
            wait_until(lambda: readyz(serve)[0] == 200, timeout=15, what="/readyz 200 again")
            assert serve.alive and serve.returncode is None
            # The sends whose recording failed were recorded later, not sent again: each order reached VTmarketing once.
            wait_until(lambda: len(fake_vtm.events) >= BACKLOG + 1, timeout=15, what="every event")
            assert event_counts(fake_vtm) == {order["number"]: 1 for order, _, _ in hooks + [late]}
            print(f"\nfull disk: /readyz {status} {body}; worker errors {errors}; {BACKLOG + 1} delivered once each")
        finally:
            d.close()
