"""From a stored order to VTmarketing: enrichment, mapping, sending, retries, and what the merchant sees."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from saleor_app.storage.models import Delivery, DeliveryAttempt, Installation, utcnow
from tests.conftest import configure, place_order
from tests.faults import all_deliveries
from tests.fakes.saleor import FakeSaleor


async def the_delivery(running_app) -> Delivery:  # type: ignore[no-untyped-def]
    async with running_app.ctx.db.session() as session:
        (delivery,) = list(await session.scalars(select(Delivery)))
        return delivery


async def attempts(running_app) -> list[DeliveryAttempt]:  # type: ignore[no-untyped-def]
    async with running_app.ctx.db.session() as session:
        return list(await session.scalars(select(DeliveryAttempt).order_by(DeliveryAttempt.id)))


async def make_due_now(running_app) -> None:  # type: ignore[no-untyped-def]
    async with running_app.ctx.db.transaction() as session:
        await session.execute(update(Delivery).values(next_attempt_at=utcnow()))


def order_lines_queries(saleor: FakeSaleor) -> list[dict]:
    return [r for r in saleor.graphql_requests if "OrderLines" in r["query"]]


async def test_confirmed_order_reaches_vtmarketing_once_with_key_and_body(running_app, installed, worker, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    await configure(running_app, installed, api_key="key-usd-1234")
    order = await place_order(running_app, installed)
    await worker.run_until_idle()
    (event,) = fake_vtm.events
    assert event.api_key == "key-usd-1234"
    generic = event.body["event"]["confirmation"]["generic"]
    assert generic["orderId"] == order["number"]
    assert generic["total"] == order["total"]["gross"]["amount"]
    assert generic["currency"] == order["total"]["gross"]["currency"]
    assert event.body["user"]["email"] == order["userEmail"]
    skus = {line["variant"]["sku"] for line in order["lines"] if line["variant"]["sku"]}
    assert {item["id"] for item in event.body["event"]["confirmation"]["items"]} >= skus
    delivery = await the_delivery(running_app)
    assert delivery.status == "delivered"
    assert json.loads(delivery.event_body) == event.body
    (attempt,) = [a for a in await attempts(running_app) if a.target == "vtmarketing"]
    assert attempt.http_status == 200 and attempt.duration_ms >= 0 and "Event created" in attempt.excerpt


async def test_duplicate_webhook_sends_nothing_more(running_app, installed, worker, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    await configure(running_app, installed)
    order = await place_order(running_app, installed)
    await worker.run_until_idle()
    assert (await running_app.send_webhook(installed, order)).status_code == 200
    await worker.run_until_idle()
    assert len(fake_vtm.events) == 1


async def test_unconfigured_channel_is_skipped_with_a_reason(running_app, installed, worker, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    await place_order(running_app, installed)
    await worker.run_until_idle()
    delivery = await the_delivery(running_app)
    assert delivery.status == "skipped"
    assert "no VTmarketing API key" in delivery.reason
    assert fake_vtm.events == []
    assert order_lines_queries(installed) == []  # nothing asked of Saleor for an order we will not send


async def test_disabled_channel_is_skipped(running_app, installed, worker, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    await configure(running_app, installed, enabled=False)
    await place_order(running_app, installed)
    await worker.run_until_idle()
    assert (await the_delivery(running_app)).status == "skipped"
    assert "turned off" in (await the_delivery(running_app)).reason
    assert fake_vtm.events == []


async def test_order_without_email_is_skipped(running_app, installed, worker, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    await configure(running_app, installed)
    await place_order(running_app, installed, userEmail=None, user=None)
    await worker.run_until_idle()
    delivery = await the_delivery(running_app)
    assert delivery.status == "skipped" and "email" in delivery.reason


async def test_channels_use_their_own_keys(running_app, installed, worker, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    await configure(running_app, installed, "default-channel", api_key="key-usd")
    await configure(running_app, installed, "channel-pln", api_key="key-pln")
    usd = await place_order(running_app, installed, channel_slug="default-channel")
    pln = await place_order(running_app, installed, channel_slug="channel-pln")
    await worker.run_until_idle()
    assert [e.api_key for e in fake_vtm.events_for(usd["number"])] == ["key-usd"]
    assert [e.api_key for e in fake_vtm.events_for(pln["number"])] == ["key-pln"]


async def test_503_twice_then_200_delivers_once(running_app, installed, worker, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    await configure(running_app, installed)
    fake_vtm.fail_next(2, status=503)
    await place_order(running_app, installed)
    await worker.run_until_idle()
    delivery = await the_delivery(running_app)
    assert delivery.status == "retrying"
    assert "503" in delivery.reason and delivery.next_attempt_at is not None
    for _ in range(2):
        await make_due_now(running_app)
        await worker.run_until_idle()
    assert (await the_delivery(running_app)).status == "delivered"
    assert len(fake_vtm.events) == 1
    statuses = [a.http_status for a in await attempts(running_app) if a.target == "vtmarketing"]
    assert statuses == [503, 503, 200]


async def test_400_fails_at_once_with_vtmarketings_message(running_app, installed, worker, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    await configure(running_app, installed)
    fake_vtm.fail_next(1, status=400, body={"errors": [{"message": "Missing event information", "description": "d"}]})
    await place_order(running_app, installed)
    await worker.run_until_idle()
    await make_due_now(running_app)
    await worker.run_until_idle()
    delivery = await the_delivery(running_app)
    assert delivery.status == "failed"
    assert "Missing event information" in delivery.reason
    assert len(await attempts(running_app)) == 1  # one send: no retry
    assert fake_vtm.events == []


@pytest.mark.parametrize(
    "settings_overrides",
    [{"delivery_retry_base_seconds": 1, "delivery_retry_max_seconds": 600},
     {"delivery_retry_base_seconds": 1, "delivery_retry_max_seconds": 30}],
    ids=["under-the-cap", "above-the-cap"],
)
async def test_429_retry_after_is_honoured(running_app, installed, worker, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    await configure(running_app, installed)
    fake_vtm.retry_after_next(120)
    await place_order(running_app, installed)
    before = utcnow()
    await worker.run_until_idle()
    after = utcnow()
    delivery = await the_delivery(running_app)
    assert delivery.status == "retrying"
    # Retry-After (120 s) is waited out, far beyond the 1 s backoff, but it may not push past the cap.
    cap = running_app.ctx.settings.delivery_retry_max_seconds
    wait = timedelta(seconds=min(120, cap))
    assert before + wait - timedelta(milliseconds=50) <= delivery.next_attempt_at <= after + wait


async def test_gives_up_after_the_maximum_age(running_app, installed, worker, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    await configure(running_app, installed)
    fake_vtm.down()
    await place_order(running_app, installed)
    async with running_app.ctx.db.transaction() as session:  # the order arrived a day ago
        await session.execute(update(Delivery).values(received_at=utcnow() - timedelta(hours=25)))
    await worker.run_until_idle()
    delivery = await the_delivery(running_app)
    assert delivery.status == "failed"
    assert "gave up" in delivery.reason and "503" in delivery.reason


async def test_one_line_query_per_order_whatever_the_lines(running_app, installed, worker, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    await configure(running_app, installed)
    many = installed.make_order()
    many_lines = [dict(many["lines"][0], id=f"line-{i}", quantity=1) for i in range(60)]
    for i, line in enumerate(many_lines):
        line["variant"] = dict(line["variant"], sku=f"SKU-{i % 7}")
    order_a = await place_order(running_app, installed, lines=many_lines)
    await place_order(running_app, installed)
    await worker.run_until_idle()
    assert len(order_lines_queries(installed)) == 2
    (event,) = fake_vtm.events_for(order_a["number"])
    items = event.body["event"]["confirmation"]["items"]
    assert len(items) == 7 and sum(i["quantity"] for i in items) == 60  # same ids summed


async def test_deleted_variant_falls_back_to_the_lines_own_copies(running_app, installed, worker, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    await configure(running_app, installed)
    order = installed.make_order()
    line = order["lines"][0]
    line["variant"] = None
    line["productSku"] = "KEPT-SKU"
    await place_order(running_app, installed, lines=[line])
    await worker.run_until_idle()
    (event,) = fake_vtm.events
    assert event.body["event"]["confirmation"]["items"] == [{"id": "kept-sku", "quantity": line["quantity"]}]  # normalised


async def test_saleor_down_during_enrichment_retries(running_app, installed, worker, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    await configure(running_app, installed)
    await place_order(running_app, installed)
    installed.graphql_status_override = 503
    await worker.run_until_idle()
    delivery = await the_delivery(running_app)
    assert delivery.status == "retrying" and "Saleor" in delivery.reason
    installed.graphql_status_override = None
    await make_due_now(running_app)
    await worker.run_until_idle()
    assert (await the_delivery(running_app)).status == "delivered"
    assert len(fake_vtm.events) == 1


async def test_revoked_token_marks_the_installation_and_stops(running_app, installed, worker, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    await configure(running_app, installed)
    await place_order(running_app, installed)
    installed.revoke_app_token()
    await worker.run_until_idle()
    delivery = await the_delivery(running_app)
    assert delivery.status == "failed" and "removed" in delivery.reason
    async with running_app.ctx.db.session() as session:
        installation = await session.scalar(select(Installation))
    assert installation.status == "uninstalled"
    assert fake_vtm.events == []


async def test_lost_manage_orders_waits_without_hammering(running_app, installed, worker, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    await configure(running_app, installed)
    await place_order(running_app, installed)
    installed.app_permissions = []
    await worker.run_until_idle()
    delivery = await the_delivery(running_app)
    assert delivery.status == "retrying" and "MANAGE_ORDERS" in delivery.reason
    assert delivery.next_attempt_at > utcnow() + timedelta(seconds=0.4)
    async with running_app.ctx.db.session() as session:
        assert (await session.scalar(select(Installation))).status == "active"


async def test_live_worker_delivers_in_real_time(live_app, fake_saleor, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    assert (await live_app.register(fake_saleor)).status_code == 200
    await configure(live_app, fake_saleor)
    order = await place_order(live_app, fake_saleor)
    # No poll interval to wait out: the intake wakes the worker (poll is 0.2 s in tests; this waits for the event).
    (event,) = await fake_vtm.wait_for_events(1, timeout=30)
    assert event.order_id == order["number"]


# A client timeout no loaded machine reaches: the eight sends must all be waiting for VTmarketing together.
@pytest.mark.parametrize("settings_overrides", [{"vtmarketing_timeout_seconds": 60}])
async def test_deliveries_run_concurrently(running_app, installed, worker, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    await configure(running_app, installed)
    # VTmarketing answers none until eight requests wait at once: one-at-a-time sending would stall here (and
    # time out after 30 s), concurrent sending gets all eight answers, whatever the machine's speed.
    fake_vtm.hold_answers(8, timeout=30)
    for _ in range(8):
        await place_order(running_app, installed)
    await worker.run_until_idle(timeout=120)
    assert fake_vtm.max_in_flight == 8
    assert len(fake_vtm.events) == 8
    assert [d.status for d in await all_deliveries(running_app)] == ["delivered"] * 8
