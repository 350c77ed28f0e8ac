"""Retention: the worker's prune job deletes deliveries (and their attempts) that finished more than RETENTION_DAYS
ago. Open deliveries (pending, retrying, in flight) are never pruned, however old; younger finished ones stay."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from sqlalchemy import func, select, update

from saleor_app.storage.models import Delivery, DeliveryAttempt, utcnow
from saleor_app.storage.repositories import DeliveryRepository, InstallationRepository, NewDelivery
from saleor_app.worker_runtime import PRUNE_INTERVAL_SECONDS, build_worker, prune_finished_deliveries
from tests.conftest import make_settings, start_app
from tests.ops.procs import database_url  # noqa: F401 (fixture: a private PostgreSQL database)

# name -> (status, days since it finished (None: still open), days since it was received)
CASES = {
    "delivered-old": ("delivered", 31, 31),
    "failed-old": ("failed", 45, 46),
    "skipped-old": ("skipped", 400, 400),
    "delivered-young": ("delivered", 29, 29),
    "failed-young": ("failed", 1, 2),
    "delivered-just-now": ("delivered", 0, 0),
    "pending-old": ("pending", None, 90),
    "retrying-old": ("retrying", None, 90),
    "delivering-old": ("delivering", None, 90),
}
PRUNED = {"delivered-old", "failed-old", "skipped-old"}


async def seed(running, saleor) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """One delivery per case (order id = case name), each with one recorded attempt; returns case -> id."""
    assert (await running.register(saleor)).status_code == 200
    now = utcnow()
    ids: dict[str, int] = {}
    async with running.ctx.db.transaction() as session:
        installation = await InstallationRepository(session).by_api_url(saleor.api_url)
        repo = DeliveryRepository(session)
        for name, (status, finished_days, received_days) in CASES.items():
            (delivery_id,) = await repo.add_all_if_new([NewDelivery(
                installation_id=installation.id, order_id=name, order_number=name, channel_slug="default-channel",
                payload="{}", source="webhook",
            )])
            assert delivery_id is not None
            ids[name] = delivery_id
            await repo.record_attempt(delivery_id, started_at=now - timedelta(days=received_days), duration_ms=5,
                                      outcome="delivered", http_status=200, excerpt="ok")
            await session.execute(update(Delivery).where(Delivery.id == delivery_id).values(
                status=status,
                received_at=now - timedelta(days=received_days),
                updated_at=now - timedelta(days=received_days),
                finished_at=None if finished_days is None else now - timedelta(days=finished_days, minutes=1),
                next_attempt_at=now + timedelta(hours=1) if status == "retrying" else None,
                lease_until=now + timedelta(hours=1) if status == "delivering" else None,
                claimed_by="another-worker" if status == "delivering" else None,
            ))
    return ids


async def remaining(running) -> tuple[set[str], int]:  # type: ignore[no-untyped-def]
    async with running.ctx.db.session() as session:
        names = set(await session.scalars(select(Delivery.order_id)))
        attempts = await session.scalar(select(func.count()).select_from(DeliveryAttempt))
    return names, int(attempts or 0)


async def test_prune_deletes_only_finished_deliveries_older_than_retention(running_app, fake_saleor) -> None:  # type: ignore[no-untyped-def]
    assert running_app.ctx.settings.retention_days == 30  # the default
    await seed(running_app, fake_saleor)
    assert await prune_finished_deliveries(running_app.ctx) == len(PRUNED)
    names, attempts = await remaining(running_app)
    assert names == set(CASES) - PRUNED
    assert attempts == len(CASES) - len(PRUNED)  # the pruned deliveries' attempts went with them
    # Nothing more to do on the next run.
    assert await prune_finished_deliveries(running_app.ctx) == 0


async def test_the_running_worker_prunes_once_the_hourly_job_is_due(running_app, fake_saleor) -> None:  # type: ignore[no-untyped-def]
    await seed(running_app, fake_saleor)
    worker = build_worker(running_app.ctx)
    prune_jobs = [entry for entry in worker._periodic if entry[0] == PRUNE_INTERVAL_SECONDS]
    assert len(prune_jobs) == 1, "build_worker schedules the prune job hourly"
    prune_jobs[0][2] = time.monotonic() - PRUNE_INTERVAL_SECONDS  # its last run was an hour ago
    running = asyncio.create_task(worker.run())
    try:
        deadline = time.monotonic() + 60
        while (await remaining(running_app))[0] != set(CASES) - PRUNED and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    finally:
        worker.stop()
        await asyncio.wait_for(running, timeout=30)
    names, _ = await remaining(running_app)
    assert names == set(CASES) - PRUNED


async def test_retention_days_is_the_setting(database_url, tmp_path, fake_saleor, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(database_url, tmp_path, fake_vtm.api_url, retention_days=1)
    async for running in start_app(settings, run_worker=False):
        await seed(running, fake_saleor)
        await prune_finished_deliveries(running.ctx)
        names, _ = await remaining(running)
        # With one day, the 29-day-old and 1-day-old deliveries go too; today's and the open ones stay.
        assert names == {"delivered-just-now", "pending-old", "retrying-old", "delivering-old"}
