"""Real time: a stored order wakes the worker at once (in-process signal; LISTEN/NOTIFY across processes on
PostgreSQL). The poll interval here is a minute, so only the wake-up can deliver within the wait."""

from __future__ import annotations

import asyncio

import pytest

from saleor_app.context import AppContext
from saleor_app.worker_runtime import build_worker
from tests.conftest import TEST_DATABASE_URL, asyncpg_url, make_settings, reset_postgres, start_app
from tests.conftest import configure

async def _asleep_with_nothing_in_flight(worker) -> None:  # type: ignore[no-untyped-def]
    while not (worker.sleeping.is_set() and not worker._in_flight):
        await asyncio.sleep(0.01)


SLOW_POLL = dict(delivery_poll_seconds=60.0, reconcile_interval_seconds=0)


async def deliver_two_in_a_row(web, saleor, vtm, worker) -> None:  # type: ignore[no-untyped-def]
    # The first order may be picked up by the worker's first claim; the second finds it asleep on its poll.
    for count in (1, 2):
        if count == 2:
            await asyncio.wait_for(_asleep_with_nothing_in_flight(worker), timeout=30)
        order = saleor.make_order()
        saleor.add_order(order)
        assert (await web.send_webhook(saleor, order)).status_code == 200
        events = await vtm.wait_for_events(count, timeout=30)
        assert events[-1].order_id == order["number"]


async def test_in_process_worker_is_woken_by_intake(database_url, tmp_path, fake_saleor, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(database_url, tmp_path, fake_vtm.api_url, **SLOW_POLL)
    async with start_app(settings, run_worker=True) as web:
        assert (await web.register(fake_saleor)).status_code == 200
        await configure(web, fake_saleor)
        await deliver_two_in_a_row(web, fake_saleor, fake_vtm, web.worker)


@pytest.mark.skipif(not TEST_DATABASE_URL, reason="LISTEN/NOTIFY needs PostgreSQL (set TEST_DATABASE_URL)")
async def test_worker_in_another_process_is_woken_by_notify(tmp_path, fake_saleor, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    url = asyncpg_url(TEST_DATABASE_URL)
    await reset_postgres(url)
    web_settings = make_settings(url, tmp_path, fake_vtm.api_url, secret_key="shared-secret", **SLOW_POLL)
    # A separate context: its own engine and its own in-process signal, so only a NOTIFY can reach it.
    worker_ctx = AppContext.create(make_settings(url, tmp_path, fake_vtm.api_url, secret_key="shared-secret", **SLOW_POLL))
    async with start_app(web_settings, run_worker=False) as web:
        assert (await web.register(fake_saleor)).status_code == 200
        await configure(web, fake_saleor)
        worker = build_worker(worker_ctx)
        task = asyncio.create_task(worker.run())
        try:
            await deliver_two_in_a_row(web, fake_saleor, fake_vtm, worker)
        finally:
            worker.stop()
            await task
            await worker_ctx.aclose()
