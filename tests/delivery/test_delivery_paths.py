"""The fast delivery path (issue 13) keeps its promises: what the worker caches of a channel follows every change
(at once in-process, by NOTIFY across processes, within its bound otherwise); the claim reads the queue in order,
never sorting the due rows; deliveries that finish together are settled together, each with its attempt."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import insert, select, update

from saleor_app.context import AppContext
from saleor_app.delivery import channel_config
from saleor_app.settings.service import ChannelSettingsService
from saleor_app.storage.models import Delivery, DeliveryAttempt, utcnow
from saleor_app.storage.repositories import DeliveryRepository, Settlement
from saleor_app.worker_runtime import build_worker
from tests.conftest import (
    TEST_DATABASE_URL,
    asyncpg_url,
    configure,
    installation_id,
    make_settings,
    place_order,
    reset_postgres,
    start_app,
)


async def test_a_key_saved_in_this_process_is_used_by_the_next_delivery(running_app, installed, worker, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    await configure(running_app, installed, api_key="vtm-key-old-0001")
    await place_order(running_app, installed)
    await worker.run_until_idle()
    await configure(running_app, installed, api_key="vtm-key-new-0002")  # the worker's cache knows the old one
    await place_order(running_app, installed)
    await worker.run_until_idle()
    assert [event.api_key for event in fake_vtm.events] == ["vtm-key-old-0001", "vtm-key-new-0002"]


async def test_sending_turned_off_in_this_process_skips_the_next_order(running_app, installed, worker, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    await configure(running_app, installed)
    await place_order(running_app, installed)
    await worker.run_until_idle()
    await configure(running_app, installed, enabled=False)
    await place_order(running_app, installed)
    await worker.run_until_idle()
    assert len(fake_vtm.events) == 1
    async with running_app.ctx.db.session() as session:
        statuses = list(await session.scalars(select(Delivery.status).order_by(Delivery.id)))
    assert statuses == ["delivered", "skipped"]


async def test_a_change_no_one_announced_is_seen_once_the_entry_is_older_than_its_bound(running_app, installed, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """SQLite's `channels set` beside `serve` cannot tell the worker: the entry's age bounds what it misses."""
    await configure(running_app, installed, api_key="vtm-key-old-0001")
    cache = running_app.ctx.channel_configs
    inst = await installation_id(running_app, installed)
    assert (await cache.get(inst, "default-channel")).api_key == "vtm-key-old-0001"
    other = AppContext.create(running_app.ctx.settings)  # another process: its own cache, nothing tells ours
    try:
        await ChannelSettingsService(other).update(inst, "default-channel", api_key="vtm-key-new-0002")
    finally:
        await other.aclose()
    assert (await cache.get(inst, "default-channel")).api_key == "vtm-key-old-0001"  # within the bound
    now = channel_config.time.monotonic()
    monkeypatch.setattr(channel_config.time, "monotonic", lambda: now + channel_config.CHANNEL_CONFIG_SECONDS)
    assert (await cache.get(inst, "default-channel")).api_key == "vtm-key-new-0002"


@pytest.mark.skipif(not TEST_DATABASE_URL, reason="LISTEN/NOTIFY needs PostgreSQL (set TEST_DATABASE_URL)")
async def test_a_key_saved_by_another_process_reaches_a_running_worker_by_notify(tmp_path, fake_saleor, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    url = asyncpg_url(TEST_DATABASE_URL)
    await reset_postgres(url)
    slow = dict(delivery_poll_seconds=60.0, reconcile_interval_seconds=0)
    web_settings = make_settings(url, tmp_path, fake_vtm.api_url, secret_key="shared-secret", **slow)
    worker_ctx = AppContext.create(make_settings(url, tmp_path, fake_vtm.api_url, secret_key="shared-secret", **slow))
    async with start_app(web_settings, run_worker=False) as web:
        assert (await web.register(fake_saleor)).status_code == 200
        await configure(web, fake_saleor, api_key="vtm-key-old-0001")
        worker = build_worker(worker_ctx)
        task = asyncio.create_task(worker.run())
        try:
            await place_order(web, fake_saleor)
            await fake_vtm.wait_for_events(1, timeout=30)
            inst = await installation_id(web, fake_saleor)
            assert (worker_ctx.channel_configs._entries[(inst, "default-channel")][1].api_key == "vtm-key-old-0001")
            await configure(web, fake_saleor, api_key="vtm-key-new-0002")
            while (inst, "default-channel") in worker_ctx.channel_configs._entries:  # dropped when NOTIFY arrives
                await asyncio.sleep(0.01)
            await place_order(web, fake_saleor)
            events = await fake_vtm.wait_for_events(2, timeout=30)
            assert [event.api_key for event in events] == ["vtm-key-old-0001", "vtm-key-new-0002"]
        finally:
            worker.stop()
            await task
            await worker_ctx.aclose()


async def _queue(running_app, installed, due: int) -> None:  # type: ignore[no-untyped-def]
    inst = await installation_id(running_app, installed)
    now = utcnow()
    async with running_app.ctx.db.transaction() as session:
        await session.execute(insert(Delivery), [
            dict(installation_id=inst, order_id=f"o-{i}", order_number=str(i), channel_slug="default-channel",
                 payload="{}", source="webhook", status="pending" if i % 2 else "retrying", attempt_count=0,
                 next_attempt_at=now - timedelta(seconds=due - i), received_at=now, updated_at=now)
            for i in range(due)
        ])
        # Finished rows with a time in next_attempt_at (an old bug, or a hand edit) are never claimed.
        await session.execute(insert(Delivery), [
            dict(installation_id=inst, order_id=f"done-{i}", order_number=f"d{i}", channel_slug="default-channel",
                 payload="{}", source="webhook", status="delivered", attempt_count=1,
                 next_attempt_at=now - timedelta(days=1), received_at=now, updated_at=now)
            for i in range(5)
        ])
    if not running_app.ctx.db.is_sqlite:
        async with running_app.ctx.db.engine.begin() as conn:
            await conn.exec_driver_sql("ANALYZE deliveries")


async def test_a_claim_reads_the_queue_in_order_and_never_sorts_the_due_rows(running_app, installed) -> None:  # type: ignore[no-untyped-def]
    await _queue(running_app, installed, 2000)
    db = running_app.ctx.db
    seen: list[tuple[str, object]] = []

    def capture(_conn, _cursor, statement, parameters, _context, _many):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("UPDATE DELIVERIES SET STATUS"):
            seen.append((statement, parameters))

    from sqlalchemy import event

    event.listen(db.engine.sync_engine, "before_cursor_execute", capture)
    try:
        async with db.transaction() as session:
            claimed = await DeliveryRepository(session).claim_due(
                worker_id="w", limit=8, lease_seconds=60, reclaim_expired=not db.is_sqlite)
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", capture)
    assert [d.order_id for d in claimed] == [f"o-{i}" for i in range(8)]  # the oldest due first
    ((statement, parameters),) = seen
    async with db.engine.connect() as conn:
        plan = " ".join(str(row[-1] if db.is_sqlite else row[0]) for row in
                        (await conn.exec_driver_sql(("EXPLAIN QUERY PLAN " if db.is_sqlite else "EXPLAIN ") + statement,
                                                    parameters)).all())
    assert "ix_deliveries_queue" in plan
    assert "TEMP B-TREE" not in plan and "Sort Key" not in plan


async def test_deliveries_finishing_together_are_settled_together_each_with_its_attempt(running_app, installed) -> None:  # type: ignore[no-untyped-def]
    await _queue(running_app, installed, 3)
    db = running_app.ctx.db
    async with db.transaction() as session:
        held = await DeliveryRepository(session).claim_due(worker_id="w", limit=3, lease_seconds=60, reclaim_expired=False)
    async with db.transaction() as session:  # one of them was taken over meanwhile: this worker no longer holds it
        await session.execute(update(Delivery).where(Delivery.id == held[2].id).values(claimed_by="other"))
    attempt = dict(started_at=utcnow(), duration_ms=5, outcome="delivered", http_status=200, excerpt="ok")
    async with db.transaction() as session:
        settled = await DeliveryRepository(session).settle_many("w", [
            Settlement(held[0].id, "delivered", "accepted", None, '{"a": 1}', attempt),
            Settlement(held[1].id, "retrying", "503", utcnow() + timedelta(seconds=30), None, {**attempt, "http_status": 503}),
            Settlement(held[2].id, "delivered", "accepted", None, '{"c": 3}', attempt),
        ])
    assert settled == {held[0].id, held[1].id}
    async with db.session() as session:
        rows = {d.id: d for d in await session.scalars(select(Delivery).where(Delivery.id.in_([d.id for d in held])))}
        attempts = list(await session.scalars(select(DeliveryAttempt.delivery_id).order_by(DeliveryAttempt.delivery_id)))
    assert (rows[held[0].id].status, rows[held[0].id].event_body, rows[held[0].id].attempt_count) == ("delivered", '{"a": 1}', 1)
    assert rows[held[0].id].finished_at is not None and rows[held[0].id].claimed_by is None
    assert (rows[held[1].id].status, rows[held[1].id].attempt_count) == ("retrying", 1)
    assert rows[held[1].id].next_attempt_at is not None and rows[held[1].id].finished_at is None
    assert (rows[held[2].id].status, rows[held[2].id].attempt_count, rows[held[2].id].claimed_by) == ("delivering", 0, "other")
    assert attempts == [held[0].id, held[1].id]  # none for the one this worker no longer held
