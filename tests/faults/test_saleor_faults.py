"""Saleor misbehaves: its GraphQL API is down while the worker enriches an order, it refuses the app token (the app
was removed), the app lost MANAGE_ORDERS, an order was deleted, its signing key is rotated between webhooks.

Each ends with every order delivered exactly once, or failed/skipped with a reason the merchant reads; nothing
stays pending forever, and Saleor is never hammered."""

from __future__ import annotations

import secrets
import string
from datetime import timedelta

import pytest
from sqlalchemy import select

from saleor_app.delivery.service import DeliveryService
from saleor_app.delivery.worker import PERMISSION_RETRY_SECONDS
from saleor_app.saleor.manifest import ORDER_CONFIRMED
from saleor_app.storage.models import Installation, utcnow
from saleor_app.worker_runtime import build_worker
from tests.conftest import configure, place_order
from tests.faults import all_deliveries, attempts_of, drive_until_settled, make_due_now, one_delivery
from tests.fakes.saleor import FakeSaleor
from tests.fakes.server import ThreadedServer

PATH = ORDER_CONFIRMED.path


# Retries are made due by `make_due_now` here. A real first backoff of 30 s (instead of the shared 0.05 s) keeps a
# retry from coming due by itself while `run_until_idle` still runs, which a loaded machine otherwise makes happen.
SLOW_RETRIES = {"delivery_retry_base_seconds": 30.0, "delivery_retry_max_seconds": 60.0}


@pytest.fixture
def settings_overrides() -> dict:
    return dict(SLOW_RETRIES)






def order_lines_queries(saleor: FakeSaleor) -> int:
    return sum(1 for r in saleor.graphql_requests if "OrderLines" in (r["query"] or ""))


def stop_saleor(saleor: FakeSaleor) -> int:
    """Saleor's host goes away: connections to its port are refused. Returns the port."""
    port = saleor._server.port
    saleor._server.stop()
    return port


def start_saleor(saleor: FakeSaleor, port: int) -> None:
    """Saleor comes back on the same address, with the same state (orders, keys, token)."""
    saleor._server = ThreadedServer(saleor._asgi_app(), port=port).start()


async def installation_row(running_app) -> Installation:  # type: ignore[no-untyped-def]
    async with running_app.ctx.db.session() as session:
        return await session.scalar(select(Installation))


# --- GraphQL down during enrichment ----------------------------------------------------------------------------


@pytest.mark.parametrize("fault", [503, 502, "refused"])
async def test_saleor_down_during_enrichment_then_back_delivers_once(running_app, installed, worker, fake_vtm, fault) -> None:  # type: ignore[no-untyped-def]
    await configure(running_app, installed)
    order = await place_order(running_app, installed)
    port = None
    if fault == "refused":
        port = stop_saleor(installed)
    else:
        installed.graphql_status_override = fault
    try:
        await worker.run_until_idle()
        delivery = await one_delivery(running_app)
        assert delivery.status == "retrying"
        (attempt,) = await attempts_of(running_app, target="saleor")
        assert attempt.outcome == "error"
        assert delivery.next_attempt_at is not None and "next try" not in delivery.reason  # shown in the reader's zone
        if fault == "refused":
            assert "Saleor could not be reached" in delivery.reason and "connection" in delivery.reason.lower()
            assert attempt.http_status is None and "could not be reached" in attempt.excerpt
        else:
            assert f"Saleor answered HTTP {fault}" in delivery.reason
            assert attempt.http_status == fault
        assert fake_vtm.requests == []  # nothing sent without the lines
        # Intake does not need Saleor's API: webhooks are still taken while it is down.
        second = installed.add_order(installed.make_order())
        body = installed.webhook_body(second, query=ORDER_CONFIRMED.query)
        response = await running_app.client.post(PATH, content=body, headers=installed.webhook_headers(body))
        assert response.status_code == 200
    finally:
        if port is not None:
            start_saleor(installed, port)
        installed.graphql_status_override = None

    deliveries = await drive_until_settled(running_app, worker)
    assert [d.status for d in deliveries] == ["delivered", "delivered"]
    assert len(fake_vtm.events_for(order["number"])) == 1
    assert len(fake_vtm.events_for(second["number"])) == 1


async def test_order_deleted_in_saleor_fails_with_the_reason(running_app, installed, worker, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    await configure(running_app, installed)
    order = installed.make_order()  # confirmed, then deleted before the worker asks for its lines
    assert (await running_app.send_webhook(installed, order)).status_code == 200
    (delivery,) = await drive_until_settled(running_app, worker)
    assert delivery.status == "failed"
    assert delivery.reason == "Saleor: Saleor does not know this order any more (deleted?)"
    (attempt,) = await attempts_of(running_app, target="saleor")
    assert (attempt.outcome, attempt.http_status) == ("error", None)
    assert fake_vtm.requests == []


# --- PERMISSION_DENIED: token revoked (app removed) --------------------------------------------------------------


def reinstall_in_saleor(saleor: FakeSaleor) -> None:
    """The merchant installs the app again: Saleor issues a new, valid app token."""
    saleor.app_token = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(30))
    with saleor._lock:
        saleor._app_token_valid = True


async def test_revoked_token_uninstalls_fails_visibly_and_a_reinstall_resends_once(running_app, installed, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    await configure(running_app, installed)
    orders = [await place_order(running_app, installed) for _ in range(3)]
    installed.revoke_app_token()
    worker = build_worker(running_app.ctx, concurrency=1)  # one at a time: which order meets the refusal is known
    deliveries = await drive_until_settled(running_app, worker)

    first, *rest = deliveries
    assert first.status == "failed"
    assert first.reason == "Saleor refuses the app token: the app was removed from Saleor"
    assert [(d.status, d.reason) for d in rest] == [("skipped", "the app is no longer installed in this Saleor")] * 2
    saleor_attempts = await attempts_of(running_app, target="saleor")
    assert [(a.delivery_id, a.outcome) for a in saleor_attempts] == [(first.id, "permission_denied")]
    installation = await installation_row(running_app)
    assert installation.status == "uninstalled"
    assert installation.status_reason == "Saleor refuses the app token: the app was removed"
    assert fake_vtm.requests == []
    # Webhooks of the removed app are refused; nothing is stored for them.
    late = installed.add_order(installed.make_order())
    response = await running_app.send_webhook(installed, late)
    assert response.status_code == 401 and response.json()["error"]["message"]
    assert len(await all_deliveries(running_app)) == 3

    # Installed again: the merchant resends what failed or was skipped; each order reaches VTmarketing once.
    reinstall_in_saleor(installed)
    assert (await running_app.register(installed)).status_code == 200
    assert (await installation_row(running_app)).status == "active"
    service = DeliveryService(running_app.ctx)
    assert await service.retry_failed() == 1
    for skipped in rest:
        await service.retry(skipped.id)
    deliveries = await drive_until_settled(running_app, worker)
    assert [d.status for d in deliveries] == ["delivered"] * 3
    for order in orders:
        assert len(fake_vtm.events_for(order["number"])) == 1


# --- PERMISSION_DENIED: MANAGE_ORDERS taken away ---------------------------------------------------------------------


@pytest.mark.parametrize("settings_overrides", [{"delivery_retry_max_seconds": 2 * PERMISSION_RETRY_SECONDS}])
async def test_lost_manage_orders_retries_slowly_says_why_and_recovers_once(running_app, installed, worker, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    await configure(running_app, installed)
    order = await place_order(running_app, installed)
    installed.app_permissions = []
    before = utcnow()
    await worker.run_until_idle()

    delivery = await one_delivery(running_app)
    assert delivery.status == "retrying"
    assert delivery.reason == "the app lost the MANAGE_ORDERS permission in Saleor; waiting for it to be given back"
    # An hour, not seconds: a permission does not come back by itself.
    assert delivery.next_attempt_at >= before + timedelta(seconds=PERMISSION_RETRY_SECONDS - 1)
    assert (await installation_row(running_app)).status == "active"  # the token itself is fine
    assert "MANAGE_ORDERS" in installed.problems["manage-orders-lost"]
    (attempt,) = await attempts_of(running_app, target="saleor")
    assert attempt.outcome == "permission_denied" and "MANAGE_ORDERS" in attempt.excerpt

    queries = order_lines_queries(installed)
    for _ in range(3):
        await worker.run_until_idle()
    assert order_lines_queries(installed) == queries  # not hammering Saleor while waiting

    installed.app_permissions = ["MANAGE_ORDERS"]
    await make_due_now(running_app)
    await worker.run_until_idle()
    assert (await one_delivery(running_app)).status == "delivered"
    assert len(fake_vtm.events_for(order["number"])) == 1
    assert "manage-orders-lost" not in installed.problems  # dismissed once it works again


# --- JWKS rotation ---------------------------------------------------------------------------------------------------


def let_refetch_window_pass(running_app) -> None:  # type: ignore[no-untyped-def]
    """The JWKS refetch is rate-limited per installation (10 s); pretend that time went by."""
    limiter = running_app.ctx.installations._last_jwks_refetch
    for key in list(limiter):
        limiter[key] -= 3600


async def test_keys_rotated_between_webhooks_each_accepted_after_one_refetch(running_app, installed, worker, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    await configure(running_app, installed)
    first = await place_order(running_app, installed)
    for rotation in range(2):
        if rotation:
            let_refetch_window_pass(running_app)
        installed.rotate_key()
        before = installed.jwks_requests
        order = await place_order(running_app, installed)  # signed by the new key only
        assert installed.jwks_requests == before + 1
        for _ in range(2):  # the next ones need no refetch
            await place_order(running_app, installed)
        assert installed.jwks_requests == before + 1
    # The dashboard token, signed by the same new key, is accepted without another refetch.
    response = await running_app.client.post(
        "/graphql",
        json={"query": "{ installation { status } }"},
        headers={"Authorization-Bearer": installed.dashboard_token(), "Saleor-Api-Url": installed.api_url},
    )
    assert response.status_code == 200 and response.json()["data"]["installation"]["status"] == "active"
    assert installed.jwks_requests == before + 1

    deliveries = await drive_until_settled(running_app, worker)
    assert [d.status for d in deliveries] == ["delivered"] * 7
    assert len(fake_vtm.events_for(first["number"])) == 1 and len(fake_vtm.events_for(order["number"])) == 1


async def test_forged_webhook_after_a_rotation_does_not_lock_saleor_out(running_app, installed) -> None:  # type: ignore[no-untyped-def]
    """Saleor's key changes; a forger's request (unknown key) arrives first and makes the app refetch the JWKS, which
    rate-limits the next refetch. Saleor's own webhook right after must not be refused for that: the keys fetched
    moments ago verify it. (Without this, one forged request every few seconds kept a rotated key out for good.)"""
    installed.rotate_key()
    forged_body = installed.webhook_body(installed.make_order())
    forged = dict(installed.webhook_headers(forged_body), **{"Saleor-Signature": installed.other_key_sign(forged_body, kid=installed.other_kid)})
    response = await running_app.client.post(PATH, content=forged_body, headers=forged)
    assert response.status_code == 401
    refetches = installed.jwks_requests

    real = installed.add_order(installed.make_order())
    response = await running_app.send_webhook(installed, real)
    assert response.status_code == 200, response.text
    assert installed.jwks_requests - refetches <= 1
    assert [d.order_id for d in await all_deliveries(running_app)] == [real["id"]]
    # The forgery kept nothing; the real webhook's keys are now the stored ones.
    assert (await installation_row(running_app)).jwks == installed.jwks_json()


async def test_jwks_unavailable_at_rotation_is_401_then_the_retry_is_stored_once(running_app, installed) -> None:  # type: ignore[no-untyped-def]
    installed.rotate_key()
    installed.jwks_status_override = 503
    order = installed.add_order(installed.make_order())
    body = installed.webhook_body(order, query=ORDER_CONFIRMED.query)
    headers = installed.webhook_headers(body)
    response = await running_app.client.post(PATH, content=body, headers=headers)
    assert response.status_code == 401  # Saleor retries a refused webhook
    assert response.json()["error"]["code"] == "INVALID_SIGNATURE"
    assert await all_deliveries(running_app) == []

    installed.jwks_status_override = None
    let_refetch_window_pass(running_app)  # Saleor's retry comes later than the refetch rate limit
    for _ in range(2):  # the retry, and a second retry of the same body: stored once
        response = await running_app.client.post(PATH, content=body, headers=headers)
        assert response.status_code == 200, response.text
    assert response.json()["outcome"] == "duplicate"
    deliveries = await all_deliveries(running_app)
    assert [d.order_id for d in deliveries] == [order["id"]]
