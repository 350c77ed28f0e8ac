"""ORDER_CONFIRMED intake: verified, stored exactly once, answered fast; every bad input gets its clear answer."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from saleor_app.saleor.manifest import ORDER_CONFIRMED
from saleor_app.storage.models import Delivery, Installation
from tests.fakes.saleor import FakeSaleor
from tests.paths import CAPTURED_DIR

PATH = "/api/webhooks/order-confirmed"


async def deliveries(running_app) -> list[Delivery]:  # type: ignore[no-untyped-def]
    async with running_app.ctx.db.session() as session:
        return list(await session.scalars(select(Delivery).order_by(Delivery.id)))


@pytest.fixture
async def installed(running_app, fake_saleor: FakeSaleor):  # type: ignore[no-untyped-def]
    response = await running_app.register(fake_saleor)
    assert response.status_code == 200
    return fake_saleor


async def test_signed_order_is_stored_once(running_app, installed: FakeSaleor) -> None:  # type: ignore[no-untyped-def]
    order = installed.make_order()
    body = installed.webhook_body(order, query=ORDER_CONFIRMED.query)
    response = await running_app.client.post(PATH, content=body, headers=installed.webhook_headers(body))
    assert response.status_code == 200, response.text
    stored = await deliveries(running_app)
    assert len(stored) == 1
    assert stored[0].order_id == order["id"]
    assert stored[0].order_number == order["number"]
    assert stored[0].channel_slug == order["channel"]["slug"]
    assert stored[0].status == "pending"
    # The raw body is kept byte for byte.
    assert stored[0].payload.encode() == body


async def test_duplicate_delivery_answers_200_and_adds_nothing(running_app, installed: FakeSaleor) -> None:  # type: ignore[no-untyped-def]
    order = installed.make_order()
    body = installed.webhook_body(order)
    for _ in range(3):  # Saleor retries at least once on a timeout
        response = await running_app.client.post(PATH, content=body, headers=installed.webhook_headers(body))
        assert response.status_code == 200
    assert len(await deliveries(running_app)) == 1
    assert response.json()["outcome"] == "duplicate"


async def test_missing_signature_is_401(running_app, installed: FakeSaleor) -> None:  # type: ignore[no-untyped-def]
    body = installed.webhook_body(installed.make_order())
    headers = {k: v for k, v in installed.webhook_headers(body).items() if "signature" not in k.lower()}
    response = await running_app.client.post(PATH, content=body, headers=headers)
    assert response.status_code == 401
    assert await deliveries(running_app) == []


async def test_forged_signature_by_another_key_is_401(running_app, installed: FakeSaleor) -> None:  # type: ignore[no-untyped-def]
    body = installed.webhook_body(installed.make_order())
    headers = dict(installed.webhook_headers(body), **{"Saleor-Signature": installed.other_key_sign(body)})
    response = await running_app.client.post(PATH, content=body, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "INVALID_SIGNATURE"
    assert await deliveries(running_app) == []


async def test_tampered_body_is_401(running_app, installed: FakeSaleor) -> None:  # type: ignore[no-untyped-def]
    body = installed.webhook_body(installed.make_order())
    headers = installed.webhook_headers(body)
    tampered = body.replace(b'"amount": ', b'"amount": 1', 1)
    response = await running_app.client.post(PATH, content=tampered, headers=headers)
    assert response.status_code == 401
    assert await deliveries(running_app) == []


async def test_garbage_signature_is_401(running_app, installed: FakeSaleor) -> None:  # type: ignore[no-untyped-def]
    body = installed.webhook_body(installed.make_order())
    for garbage in ("", "abc", "a..b", "eyJhbGciOiJub25lIn0..", "x" * 5000):
        headers = dict(installed.webhook_headers(body), **{"Saleor-Signature": garbage})
        response = await running_app.client.post(PATH, content=body, headers=headers)
        assert response.status_code == 401, garbage


async def test_signature_without_crit_from_older_saleor_is_accepted(running_app, installed: FakeSaleor) -> None:  # type: ignore[no-untyped-def]
    body = installed.webhook_body(installed.make_order())
    headers = dict(installed.webhook_headers(body), **{"Saleor-Signature": installed.sign(body, with_crit=False)})
    response = await running_app.client.post(PATH, content=body, headers=headers)
    assert response.status_code == 200


async def test_rotated_key_is_refetched_once_and_kept(running_app, installed: FakeSaleor) -> None:  # type: ignore[no-untyped-def]
    installed.rotate_key()
    before = installed.jwks_requests
    response = await running_app.send_webhook(installed, installed.make_order())
    assert response.status_code == 200
    assert installed.jwks_requests == before + 1
    async with running_app.ctx.db.session() as session:
        stored_jwks = await session.scalar(select(Installation.jwks))
    assert json.loads(stored_jwks) == json.loads(installed.jwks_json())
    # The new keys are kept: the next webhook needs no refetch.
    assert (await running_app.send_webhook(installed, installed.make_order())).status_code == 200
    assert installed.jwks_requests == before + 1


async def test_forged_signatures_do_not_hammer_the_jwks(running_app, installed: FakeSaleor) -> None:  # type: ignore[no-untyped-def]
    before = installed.jwks_requests
    for _ in range(5):
        body = installed.webhook_body(installed.make_order())
        headers = dict(installed.webhook_headers(body), **{"Saleor-Signature": installed.other_key_sign(body)})
        assert (await running_app.client.post(PATH, content=body, headers=headers)).status_code == 401
    assert installed.jwks_requests - before <= 1


async def test_unknown_api_url_is_401(running_app, installed: FakeSaleor) -> None:  # type: ignore[no-untyped-def]
    with FakeSaleor() as stranger:  # signs correctly, but never installed the app
        response = await running_app.send_webhook(stranger, stranger.make_order())
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UNKNOWN_INSTALLATION"


async def test_replayed_signature_from_another_installation_is_401(running_app, installed: FakeSaleor) -> None:  # type: ignore[no-untyped-def]
    with FakeSaleor() as other:
        assert (await running_app.register(other)).status_code == 200
        body = other.webhook_body(other.make_order())
        # Signed by the other Saleor, claimed to come from ours.
        headers = dict(other.webhook_headers(body), **{"Saleor-Api-Url": installed.api_url})
        response = await running_app.client.post(PATH, content=body, headers=headers)
    assert response.status_code == 401


async def test_wrong_event_header_is_400(running_app, installed: FakeSaleor) -> None:  # type: ignore[no-untyped-def]
    body = installed.webhook_body(installed.make_order())
    response = await running_app.client.post(PATH, content=body, headers=installed.webhook_headers(body, event="order_created"))
    assert response.status_code == 400
    assert "order_confirmed" in response.json()["error"]["message"]


async def test_huge_body_is_413(running_app, installed: FakeSaleor) -> None:  # type: ignore[no-untyped-def]
    order = installed.make_order(lines=[])
    order["padding"] = "x" * (1024 * 1024 + 10)
    body = installed.webhook_body(order)
    response = await running_app.client.post(PATH, content=body, headers=installed.webhook_headers(body))
    assert response.status_code == 413
    assert await deliveries(running_app) == []


async def test_signed_bad_json_is_400_and_kept(running_app, installed: FakeSaleor) -> None:  # type: ignore[no-untyped-def]
    for body in (b'{"order": ', b'{"__typename": "OrderConfirmed", "order": null}', b'{"order": {"number": "5"}}'):
        response = await running_app.client.post(PATH, content=body, headers=installed.webhook_headers(body))
        assert response.status_code == 400, body
        assert response.json()["error"]["message"]
    kept = await deliveries(running_app)
    assert len(kept) == 3
    assert all(d.status == "failed" and d.order_id is None and "could not read" in d.reason for d in kept)


async def test_payload_with_saleor_errors_is_stored_with_the_reason(running_app, installed: FakeSaleor) -> None:  # type: ignore[no-untyped-def]
    order = installed.make_order()
    body = json.dumps(
        {"__typename": "OrderConfirmed", "issuedAt": "2026-11-26T17:15:42+00:00", "version": "3.23.28", "order": dict(order, user=None),
         "errors": [{"message": "You need one of the following permissions: MANAGE_USERS", "path": ["event", "order", "user"]}]}
    ).encode()
    response = await running_app.client.post(PATH, content=body, headers=installed.webhook_headers(body))
    assert response.status_code == 200
    (stored,) = await deliveries(running_app)
    assert stored.status == "pending"
    assert "MANAGE_USERS" in stored.payload_warning


async def test_captured_real_webhooks_are_stored(running_app, installed: FakeSaleor) -> None:  # type: ignore[no-untyped-def]
    # The real bodies, re-signed by our fake Saleor (their own signatures need the real Saleor's key).
    for name in ("webhook-order-a", "webhook-order-b", "webhook-minimal"):
        body = (CAPTURED_DIR / f"{name}.body").read_bytes()
        response = await running_app.client.post(PATH, content=body, headers=installed.webhook_headers(body))
        assert response.status_code == 200, name
    stored = await deliveries(running_app)
    assert [d.order_number for d in stored] == ["26", "27", "21"]
    assert stored[2].channel_slug is None  # the minimal subscription has no channel


async def test_webhooks_of_two_saleors_stay_apart(running_app, installed: FakeSaleor) -> None:  # type: ignore[no-untyped-def]
    with FakeSaleor() as other:
        await running_app.register(other)
        order = installed.make_order()
        # The same order id in two Saleors is two orders.
        assert (await running_app.send_webhook(installed, order)).status_code == 200
        assert (await running_app.send_webhook(other, order)).status_code == 200
    stored = await deliveries(running_app)
    assert len({d.installation_id for d in stored}) == 2


async def test_database_failure_answers_503_so_saleor_retries(running_app, installed: FakeSaleor) -> None:  # type: ignore[no-untyped-def]
    if not running_app.ctx.db.is_sqlite:
        pytest.skip("read-only database simulated through SQLite's query_only pragma")
    from sqlalchemy import event

    def read_only(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        dbapi_connection.execute("PRAGMA query_only=ON")

    await running_app.ctx.db.engine.dispose()
    event.listen(running_app.ctx.db.engine.sync_engine, "connect", read_only)
    response = await running_app.send_webhook(installed, installed.make_order())
    assert response.status_code == 503
    event.remove(running_app.ctx.db.engine.sync_engine, "connect", read_only)
    await running_app.ctx.db.engine.dispose()
    assert (await running_app.send_webhook(installed, installed.make_order())).status_code == 200


async def test_app_deleted_marks_the_installation_and_keeps_history(running_app, installed: FakeSaleor) -> None:  # type: ignore[no-untyped-def]
    await running_app.send_webhook(installed, installed.make_order())
    body = json.dumps(
        {"__typename": "AppDeleted", "issuedAt": "2026-11-26T17:20:00+00:00", "version": "3.23.28", "app": {"id": installed.app_id}}
    ).encode()
    response = await running_app.client.post(
        "/api/webhooks/app-deleted", content=body, headers=installed.webhook_headers(body, event="app_deleted")
    )
    assert response.status_code == 200
    async with running_app.ctx.db.session() as session:
        installation = await session.scalar(select(Installation))
        count = await session.scalar(select(func.count()).select_from(Delivery))
    assert installation.status == "uninstalled"
    assert count == 1
    # Webhooks of an uninstalled app are refused.
    assert (await running_app.send_webhook(installed, installed.make_order())).status_code == 401


async def test_refused_webhooks_are_logged_with_their_reason(running_app, installed: FakeSaleor, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level("INFO")
    order = installed.add_order(installed.make_order())
    body = installed.webhook_body(order, query=ORDER_CONFIRMED.query)
    forged = installed.webhook_headers(body, signature=installed.other_key_sign(body))
    assert (await running_app.client.post(ORDER_CONFIRMED.path, content=body, headers=forged)).status_code == 401
    wrong_event = installed.webhook_headers(body, event="order_created")
    assert (await running_app.client.post(ORDER_CONFIRMED.path, content=body, headers=wrong_event)).status_code == 400
    lines = [r.getMessage() for r in caplog.records if r.name == "saleor_app.errors"]
    assert len(lines) == 2, lines
    assert lines[0].startswith(f"webhook refused for {installed.api_url}: 401 INVALID_SIGNATURE: Invalid Saleor-Signature")
    assert lines[1].startswith(f"webhook refused for {installed.api_url}: 400 WRONG_EVENT: Expected Saleor-Event")
    assert installed.app_token not in caplog.text and order["userEmail"] not in caplog.text


def app_deleted_body(app_id: str | None) -> bytes:
    """APP_DELETED as the manifest's subscription projects it (manifest/app_deleted.subscription.graphql)."""
    event: dict = {"__typename": "AppDeleted", "issuedAt": "2026-11-26T17:20:00+00:00", "version": "3.23.28"}
    if app_id is not None:
        event["app"] = {"id": app_id}
    return json.dumps(event).encode()


async def post_app_deleted(running_app, saleor: FakeSaleor, body: bytes):  # type: ignore[no-untyped-def]
    return await running_app.client.post(
        "/api/webhooks/app-deleted", content=body, headers=saleor.webhook_headers(body, event="app_deleted")
    )


async def test_a_late_app_deleted_of_a_previous_app_leaves_the_reinstalled_app_alone(running_app, installed: FakeSaleor, worker, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    """Finding 2 of issue 12: the app is deleted, installed again (a new app id in Saleor), and then Saleor's retry
    of the first APP_DELETED arrives. It must not uninstall the new app: its orders would be refused with 401,
    which Saleor does not retry, and reconciliation skips uninstalled installations: lost without a trace."""
    from tests.conftest import configure

    old_app_id = installed.app_id
    stale = app_deleted_body(old_app_id)
    assert (await post_app_deleted(running_app, installed, stale)).status_code == 200
    async with running_app.ctx.db.session() as session:
        assert (await session.scalar(select(Installation))).status == "uninstalled"

    installed.app_id = "QXBwOjk="  # the re-installed app, with a token of its own
    installed.app_token = "N" * 30
    assert (await running_app.register(installed)).status_code == 200
    await configure(running_app, installed)

    stale_retry = await post_app_deleted(running_app, installed, stale)  # Saleor retrying the old app's deletion
    anonymous = await post_app_deleted(running_app, installed, app_deleted_body(None))  # names no app
    async with running_app.ctx.db.session() as session:
        installation = await session.scalar(select(Installation))
    assert (installation.status, installation.app_id) == ("active", "QXBwOjk=")
    for response in (stale_retry, anonymous):  # answered 200 (Saleor stops retrying), and ignored
        assert (response.status_code, response.json().get("outcome")) == (200, "ignored")

    order = installed.add_order(installed.make_order())
    assert (await running_app.send_webhook(installed, order)).status_code == 200
    await worker.run_until_idle()
    assert [e.order_id for e in fake_vtm.events] == [order["number"]]

    # The deletion of the app installed now still uninstalls it.
    response = await post_app_deleted(running_app, installed, app_deleted_body("QXBwOjk="))
    assert (response.status_code, response.json()["outcome"]) == (200, "stored")
    assert (await running_app.send_webhook(installed, installed.make_order())).status_code == 401


async def test_a_webhook_path_takes_only_post(running_app, installed: FakeSaleor) -> None:  # type: ignore[no-untyped-def]
    # POSTs are answered without the router (app.py); any other method still gets the router's answer.
    response = await running_app.client.get(PATH)
    assert response.status_code == 405
    assert "POST" in response.headers.get("allow", "")
    assert await deliveries(running_app) == []


async def test_a_database_failure_under_a_webhook_is_503_with_its_message(running_app, installed: FakeSaleor,  # type: ignore[no-untyped-def]
                                                                           monkeypatch) -> None:
    from sqlalchemy.exc import OperationalError

    async def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise OperationalError("INSERT", {}, Exception("disk I/O error"))

    # Below the intake's own handling: what escapes to the app's exception handlers (errors.py).
    monkeypatch.setattr(running_app.ctx.installations, "verify_webhook", broken)
    body = installed.webhook_body(installed.make_order())
    response = await running_app.client.post(PATH, content=body, headers=installed.webhook_headers(body))
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
