"""Reconciliation and backfill: confirmed orders that no webhook brought are found in Saleor and sent once."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from saleor_app.delivery import recovery
from saleor_app.delivery.recovery import Reconciler, backfill
from saleor_app.saleor.exceptions import SaleorError
from saleor_app.storage.models import BackfillCursor, Delivery, Installation
from tests.conftest import configure


async def installation(running_app) -> Installation:  # type: ignore[no-untyped-def]
    async with running_app.ctx.db.session() as session:
        return await session.scalar(select(Installation))


async def all_deliveries(running_app) -> list[Delivery]:  # type: ignore[no-untyped-def]
    async with running_app.ctx.db.session() as session:
        return list(await session.scalars(select(Delivery).order_by(Delivery.id)))


def iso(moment: datetime) -> str:
    return moment.isoformat()


async def test_order_confirmed_while_the_app_was_down_is_sent_once(running_app, installed, worker, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    await configure(running_app, installed)
    missed = installed.make_order()
    installed.add_order(missed)  # confirmed in Saleor; its webhook never arrived
    result = await Reconciler(running_app.ctx).reconcile(await installation(running_app))
    assert (result.checked, result.recovered, result.error) == (1, 1, None)
    await worker.run_until_idle()
    (event,) = fake_vtm.events
    assert event.order_id == missed["number"]
    (delivery,) = await all_deliveries(running_app)
    assert delivery.source == "reconcile" and delivery.status == "delivered"
    assert delivery.reason.startswith("Recovered by reconciliation")
    # The late webhook of the same order sends nothing more.
    assert (await running_app.send_webhook(installed, missed)).status_code == 200
    await worker.run_until_idle()
    assert len(fake_vtm.events) == 1
    # Nor does the next pass.
    again = await Reconciler(running_app.ctx).reconcile(await installation(running_app))
    assert again.recovered == 0
    inst = await installation(running_app)
    assert inst.last_reconcile_at is not None and inst.last_reconcile_checked == again.checked
    metrics = (await running_app.client.get("/metrics")).text
    assert "vtm_reconcile_orders_recovered_total 1.0" in metrics
    assert f'vtm_reconcile_last_pass_timestamp_seconds{{installation="{inst.id}"}}' in metrics


async def test_a_pass_with_nothing_missing_costs_one_query(running_app, installed, worker, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    await configure(running_app, installed)
    order = installed.make_order()
    installed.add_order(order)
    await running_app.send_webhook(installed, order)
    before = len(installed.graphql_requests)
    result = await Reconciler(running_app.ctx).reconcile(await installation(running_app))
    assert result.recovered == 0 and result.checked == 1
    assert len(installed.graphql_requests) - before == 1


async def test_not_queued_drafts_unconfirmed_disabled_unconfigured_and_older_orders(running_app, installed, worker, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    await configure(running_app, installed, "default-channel")
    await configure(running_app, installed, "channel-pln", enabled=False)
    inst = await installation(running_app)
    long_ago = iso(inst.created_at - timedelta(days=30))
    skipped = [
        installed.make_order(status="DRAFT"),
        installed.make_order(status="UNCONFIRMED"),
        installed.make_order(status="EXPIRED"),
        installed.make_order(status="CANCELED"),
        installed.make_order(channel_slug="channel-pln"),  # disabled channel
        installed.make_order(created=long_ago),  # older than the installation, changed recently
    ]
    for order in skipped:
        installed.add_order(order)
    wanted = installed.make_order(status="FULFILLED")
    installed.add_order(wanted)
    result = await Reconciler(running_app.ctx).reconcile(inst)
    assert result.error is None and result.recovered == 1
    assert [d.order_id for d in await all_deliveries(running_app)] == [wanted["id"]]


async def test_unconfigured_installation_asks_saleor_nothing(running_app, installed) -> None:  # type: ignore[no-untyped-def]
    installed.add_order(installed.make_order())
    before = len(installed.graphql_requests)
    result = await Reconciler(running_app.ctx).reconcile(await installation(running_app))
    assert (result.checked, result.recovered) == (0, 0)
    assert len(installed.graphql_requests) == before


async def test_watermark_moves_only_after_the_pass_stored_everything(running_app, installed, worker, fake_vtm, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    await configure(running_app, installed)
    monkeypatch.setattr(recovery, "PAGE_SIZE", 2)
    orders = [installed.make_order() for _ in range(5)]
    for order in orders:
        installed.add_order(order)
    real_page = running_app.ctx.saleor.orders_page
    calls = 0

    async def failing_on_second_page(*args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        if calls == 2:
            raise SaleorError("Saleor answered HTTP 502", status=502)
        return await real_page(*args, **kwargs)

    monkeypatch.setattr(running_app.ctx.saleor, "orders_page", failing_on_second_page)
    watermark_before = (await installation(running_app)).reconcile_watermark
    result = await Reconciler(running_app.ctx).reconcile(await installation(running_app))
    assert result.error and "502" in result.error
    assert len(await all_deliveries(running_app)) == 2  # the first page is stored
    inst = await installation(running_app)
    assert inst.reconcile_watermark == watermark_before and inst.last_reconcile_error
    # The next pass finds the rest and stores nothing twice.
    result = await Reconciler(running_app.ctx).reconcile(inst)
    assert result.error is None and result.recovered == 3
    assert sorted(d.order_id for d in await all_deliveries(running_app)) == sorted(o["id"] for o in orders)
    await worker.run_until_idle()
    assert sorted(e.order_id for e in fake_vtm.events) == sorted(o["number"] for o in orders)


async def test_a_cancelled_pass_loses_and_duplicates_nothing(running_app, installed, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # Cancellation at an await point is what a killed process looks like from the database's side.
    await configure(running_app, installed)
    monkeypatch.setattr(recovery, "PAGE_SIZE", 1)
    orders = [installed.make_order() for _ in range(3)]
    for order in orders:
        installed.add_order(order)
    real_page = running_app.ctx.saleor.orders_page
    calls = 0

    async def hang_on_third_page(*args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        if calls == 3:
            await asyncio.Event().wait()
        return await real_page(*args, **kwargs)

    monkeypatch.setattr(running_app.ctx.saleor, "orders_page", hang_on_third_page)
    task = asyncio.create_task(Reconciler(running_app.ctx).reconcile(await installation(running_app)))
    async def third_page_asked() -> None:
        while calls < 3:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(third_page_asked(), timeout=60)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(await all_deliveries(running_app)) == 2
    monkeypatch.setattr(running_app.ctx.saleor, "orders_page", real_page)
    result = await Reconciler(running_app.ctx).reconcile(await installation(running_app))
    assert result.recovered == 1
    assert len(await all_deliveries(running_app)) == 3


async def test_saleor_errors_back_off(running_app, installed, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    await configure(running_app, installed)
    installed.graphql_status_override = 503
    real_page, calls = running_app.ctx.saleor.orders_page, []

    async def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        return await real_page(*args, **kwargs)

    monkeypatch.setattr(running_app.ctx.saleor, "orders_page", counting)
    reconciler = Reconciler(running_app.ctx)
    await reconciler.run_all()
    await reconciler.run_all()  # backed off: not asked again right away
    assert len(calls) == 1
    assert "503" in (await installation(running_app)).last_reconcile_error


async def test_worker_runs_reconciliation_periodically(live_app, fake_saleor, fake_vtm, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # The live app's worker ran a pass at start (nothing configured yet); a missed order is found by a later pass.
    assert (await live_app.register(fake_saleor)).status_code == 200
    await configure(live_app, fake_saleor)
    missed = fake_saleor.make_order()
    fake_saleor.add_order(missed)
    for entry in live_app.worker._periodic:  # make the reconciliation due now instead of in 10 minutes
        entry[2] = float("-inf")
    live_app.ctx.signal.wake()
    (event,) = await fake_vtm.wait_for_events(1, timeout=30)
    assert event.order_id == missed["number"]


async def test_backfill_queues_past_orders_once_and_resumes(running_app, installed, worker, fake_vtm, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    await configure(running_app, installed)
    monkeypatch.setattr(recovery, "PAGE_SIZE", 2)
    inst = await installation(running_app)
    past = [installed.make_order(created="2026-03-0%dT10:00:00+00:00" % day) for day in range(1, 6)]
    for order in past:
        installed.add_order(order)
    installed.add_order(installed.make_order(created="2026-03-02T11:00:00+00:00", status="UNCONFIRMED"))
    installed.add_order(installed.make_order(created="2026-03-03T11:00:00+00:00", channel_slug="channel-pln"))
    installed.add_order(installed.make_order(created="2025-12-01T10:00:00+00:00"))  # before --since
    # One order was already sent live: the backfill must not send it again.
    await running_app.send_webhook(installed, past[0])
    await worker.run_until_idle()

    real_page = running_app.ctx.saleor.orders_page
    calls = 0

    async def stop_after_first_page(*args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        if calls == 2:
            raise KeyboardInterrupt  # the operator pressed Ctrl-C
        return await real_page(*args, **kwargs)

    monkeypatch.setattr(running_app.ctx.saleor, "orders_page", stop_after_first_page)
    with pytest.raises(KeyboardInterrupt):
        await backfill(running_app.ctx, inst, "default-channel", since="2026-01-01")
    async with running_app.ctx.db.session() as session:
        cursor = await session.scalar(select(BackfillCursor))
    assert cursor.cursor and not cursor.done and cursor.seen == 2

    monkeypatch.setattr(running_app.ctx.saleor, "orders_page", real_page)
    seen_pages = []
    result = await backfill(running_app.ctx, inst, "default-channel", since="2026-01-01", on_page=seen_pages.append)
    # This run's figures: it resumed after the first page (2 orders), so it looked at the other 4.
    assert result.done and result.resumed and result.seen == 4 and result.total == 6
    assert len(seen_pages) == 2  # resumed after the stored position, not from the start
    async with running_app.ctx.db.session() as session:
        cursor = await session.scalar(select(BackfillCursor))
    assert cursor.done and cursor.seen == 6  # the stored walk covers both runs
    await worker.run_until_idle()
    sent = sorted(e.order_id for e in fake_vtm.events)
    assert sent == sorted(o["number"] for o in past)
    backfilled = [d for d in await all_deliveries(running_app) if d.source == "backfill"]
    assert len(backfilled) == 4 and all(d.reason.startswith("Queued by backfill") for d in backfilled)


async def test_backfill_dry_run_stores_nothing(running_app, installed) -> None:  # type: ignore[no-untyped-def]
    await configure(running_app, installed)
    for day in range(1, 4):
        installed.add_order(installed.make_order(created=f"2026-02-0{day}T10:00:00+00:00"))
    inst = await installation(running_app)
    result = await backfill(running_app.ctx, inst, "default-channel", since="2026-02-01", until="2026-02-02", dry_run=True)
    assert (result.seen, result.queued) == (2, 2)
    assert await all_deliveries(running_app) == []


async def test_backfill_dry_run_counts_only_what_a_real_run_would_queue(running_app, installed, worker) -> None:  # type: ignore[no-untyped-def]
    await configure(running_app, installed)
    orders = [installed.add_order(installed.make_order(created=f"2026-02-0{day}T10:00:00+00:00")) for day in range(1, 7)]
    installed.add_order(installed.make_order(created="2026-02-03T11:00:00+00:00", status="UNCONFIRMED"))
    for order in orders[:2]:  # two already came by webhook
        assert (await running_app.send_webhook(installed, order)).status_code == 200
    inst = await installation(running_app)

    dry = await backfill(running_app.ctx, inst, "default-channel", since="2026-02-01", dry_run=True)
    assert (dry.seen, dry.queued) == (7, 4)  # not the 6 confirmed ones: 2 are known already
    real = await backfill(running_app.ctx, inst, "default-channel", since="2026-02-01")
    assert (real.seen, real.queued) == (7, dry.queued)
    again = await backfill(running_app.ctx, inst, "default-channel", since="2026-02-01", dry_run=True)
    assert again.queued == 0


async def test_a_finished_backfill_run_again_reports_its_own_figures(running_app, installed) -> None:  # type: ignore[no-untyped-def]
    await configure(running_app, installed)
    for day in range(1, 4):
        installed.add_order(installed.make_order(created=f"2026-02-0{day}T10:00:00+00:00"))
    inst = await installation(running_app)
    first = await backfill(running_app.ctx, inst, "default-channel", since="2026-02-01")
    assert (first.seen, first.queued, first.done, first.resumed) == (3, 3, True, False)

    installed.add_order(installed.make_order(created="2026-02-05T10:00:00+00:00"))  # one more since
    second = await backfill(running_app.ctx, inst, "default-channel", since="2026-02-01")
    # Walked again from the start: this run looked at 4 and queued only the new one (not "3 queued" from before).
    assert (second.seen, second.queued, second.done, second.resumed) == (4, 1, True, False)
    assert len(await all_deliveries(running_app)) == 4
