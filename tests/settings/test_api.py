"""The settings API (`POST /graphql`) as the dashboard page uses it: authentication by the dashboard token,
channels live from Saleor, settings, test events, the delivery log and resending."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import jwt
import pytest
from sqlalchemy import select, update

from saleor_app.settings.service import ChannelSettingsService
from saleor_app.storage.models import Delivery, utcnow
from saleor_app.worker_runtime import build_worker
from tests.conftest import RunningApp, configure, installation_id, place_order
from tests.fakes.saleor import FakeSaleor

CHANNELS = """
query { channels { id slug name currencyCode isActive existsInSaleor enabled apiKeyHint itemId orderId configured
  deliveryCounts { pending delivering retrying delivered failed skipped total } }
  channelsError { code message } }
"""
UPDATE = """
mutation($input: ChannelSettingsInput!) { updateChannelSettings(input: $input) {
  ok changed settings { channel enabled apiKeyHint itemId orderId configured } errors { field code message } } }
"""
TEST_EVENT = """
mutation($channel: String!, $apiKey: String) { sendTestEvent(channel: $channel, apiKey: $apiKey) {
  ok httpStatus message code orderId errors { field code message } } }
"""
DELIVERY_FIELDS = """id orderNumber orderId channel status statusLabel reason source receivedAt nextAttemptAt finishedAt
  expiresAt canRetry attempts { startedAt durationMs target httpStatus outcome excerpt }"""
DELIVERIES = f"""
query($status: String, $channel: String, $search: String, $first: Int, $after: String) {{
  deliveries(status: $status, channel: $channel, search: $search, first: $first, after: $after) {{
    items {{ {DELIVERY_FIELDS} }} hasMore endCursor }} }}
"""
RETRY = f"""mutation($id: ID!) {{ retryDelivery(id: $id) {{ ok delivery {{ {DELIVERY_FIELDS} }} errors {{ code message }} }} }}"""
RETRY_FAILED = """mutation($channel: String) { retryFailedDeliveries(channel: $channel) { ok count message } }"""
INSTALLATION = """query { installation { saleorApiUrl appId status statusReason lastReconcileAt lastReconcileChecked
  lastReconcileRecovered lastReconcileError retentionDays } viewer { email } }"""


# --- helpers ------------------------------------------------------------------------------------------------------


async def post_graphql(
    running_app: RunningApp,
    saleor: FakeSaleor,
    query: str,
    variables: dict | None = None,
    *,
    token: str | None = None,
    api_url: str | None = None,
    header: str = "authorization-bearer",
) -> httpx.Response:
    headers = {"Saleor-Api-Url": api_url or saleor.api_url}
    token = saleor.dashboard_token() if token is None else token
    if token:
        headers["Authorization-Bearer" if header == "authorization-bearer" else "Authorization"] = (
            token if header == "authorization-bearer" else f"Bearer {token}"
        )
    return await running_app.client.post("/graphql", json={"query": query, "variables": variables or {}}, headers=headers)


async def gql(running_app: RunningApp, saleor: FakeSaleor, query: str, variables: dict | None = None, **kwargs) -> dict:
    response = await post_graphql(running_app, saleor, query, variables, **kwargs)
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


def assert_refused(response: httpx.Response, status: int, code: str, token: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]["code"] == code, body
    assert body["error"]["message"]
    if token:
        assert token not in response.text
        signature = token.split(".")[-1]
        assert not signature or signature not in response.text  # not even the signature part
    return body


def b64url(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def unsigned_token(saleor: FakeSaleor, alg: str = "none") -> str:
    """A token with the right claims but `alg: none` and no signature."""
    good = jwt.decode(saleor.dashboard_token(), options={"verify_signature": False})
    return f"{b64url({'alg': alg, 'typ': 'JWT', 'kid': saleor.kid})}.{b64url(good)}."


async def deliveries_in_db(running_app: RunningApp) -> list[Delivery]:
    async with running_app.ctx.db.session() as session:
        return list(await session.scalars(select(Delivery).order_by(Delivery.id)))


@pytest.fixture
async def installed(running_app: RunningApp, fake_saleor: FakeSaleor) -> FakeSaleor:
    response = await running_app.register(fake_saleor)
    assert response.status_code == 200, response.text
    return fake_saleor


@pytest.fixture
def worker(running_app: RunningApp):  # type: ignore[no-untyped-def]
    return build_worker(running_app.ctx)


# --- authentication -----------------------------------------------------------------------------------------------


async def test_valid_token_is_accepted_with_either_header(running_app, installed) -> None:  # type: ignore[no-untyped-def]
    for header in ("authorization-bearer", "authorization"):
        data = await gql(running_app, installed, INSTALLATION, header=header)
        assert data["installation"]["saleorApiUrl"] == installed.api_url
        assert data["installation"]["appId"] == installed.app_id
        assert data["installation"]["status"] == "active"
        assert data["installation"]["retentionDays"] == running_app.ctx.settings.retention_days
        assert data["installation"]["lastReconcileAt"] is None
        assert data["viewer"]["email"] == "admin@example.com"


async def test_no_token_is_401(running_app, installed) -> None:  # type: ignore[no-untyped-def]
    response = await post_graphql(running_app, installed, INSTALLATION, token="")
    assert_refused(response, 401, "MISSING_TOKEN")


async def test_no_saleor_api_url_is_401(running_app, installed) -> None:  # type: ignore[no-untyped-def]
    token = installed.dashboard_token()
    response = await running_app.client.post(
        "/graphql", json={"query": INSTALLATION}, headers={"Authorization-Bearer": token}
    )
    assert_refused(response, 401, "MISSING_SALEOR_API_URL", token)


async def test_unknown_api_url_is_401_without_fetching_any_jwks(running_app, installed) -> None:  # type: ignore[no-untyped-def]
    before = installed.jwks_requests
    token = installed.dashboard_token()
    # Same host as the real fake, so a JWKS fetch for this URL would be counted by it.
    response = await post_graphql(running_app, installed, INSTALLATION, token=token, api_url=f"{installed.url}/other/graphql/")
    assert_refused(response, 401, "NOT_INSTALLED", token)
    assert installed.jwks_requests == before


async def test_never_installed_saleor_is_401_without_fetching_its_jwks(running_app, fake_saleor) -> None:  # type: ignore[no-untyped-def]
    token = fake_saleor.dashboard_token()
    response = await post_graphql(running_app, fake_saleor, INSTALLATION, token=token)
    assert_refused(response, 401, "NOT_INSTALLED", token)
    assert fake_saleor.jwks_requests == 0


async def test_uninstalled_app_is_401(running_app, installed) -> None:  # type: ignore[no-untyped-def]
    installations = running_app.ctx.installations
    inst = await ChannelSettingsService(running_app.ctx).installation(installed.api_url)
    await installations.mark_uninstalled(inst, "test")
    response = await post_graphql(running_app, installed, INSTALLATION)
    assert_refused(response, 401, "APP_UNINSTALLED")


@pytest.mark.parametrize(
    ("token_args", "code"),
    [
        ({"exp_in": -10}, "TOKEN_EXPIRED"),
        ({"app": "QXBwOjk5OQ=="}, "TOKEN_WRONG_APP"),
        ({"iss": "https://evil.example.com/graphql/"}, "TOKEN_WRONG_ISSUER"),
        ({"type_": "access"}, "TOKEN_WRONG_TYPE"),
    ],
    ids=["expired", "wrong-app", "wrong-issuer", "wrong-type"],
)
async def test_bad_claims_are_401(running_app, installed, token_args, code) -> None:  # type: ignore[no-untyped-def]
    token = installed.dashboard_token(**token_args)
    response = await post_graphql(running_app, installed, INSTALLATION, token=token)
    assert_refused(response, 401, code, token)


async def test_token_signed_by_a_key_not_in_the_jwks_is_401(running_app, installed) -> None:  # type: ignore[no-untyped-def]
    before = installed.jwks_requests
    forged = installed.dashboard_token(key=installed.other_key)  # the published kid, another key
    assert_refused(await post_graphql(running_app, installed, INSTALLATION, token=forged), 401, "TOKEN_INVALID_SIGNATURE", forged)
    # One refetch in case Saleor rotated its key; the same keys came back, so the token stays refused.
    assert installed.jwks_requests == before + 1
    unknown_kid = installed.dashboard_token(key=installed.other_key, kid=installed.other_kid)
    assert_refused(await post_graphql(running_app, installed, INSTALLATION, token=unknown_kid), 401, "TOKEN_UNKNOWN_KEY", unknown_kid)
    assert installed.jwks_requests == before + 1  # refetches are rate-limited: a forger cannot make us hammer Saleor


@pytest.mark.parametrize("alg", ["none", "HS256"])
async def test_unsigned_or_symmetric_token_is_401(running_app, installed, alg) -> None:  # type: ignore[no-untyped-def]
    if alg == "none":
        token = unsigned_token(installed)
    else:  # the classic confusion: HMAC keyed with the public JWKS
        claims = jwt.decode(installed.dashboard_token(), options={"verify_signature": False})
        signing_input = f"{b64url({'alg': 'HS256', 'typ': 'JWT', 'kid': installed.kid})}.{b64url(claims)}"
        mac = hmac.new(installed.jwks_json().encode(), signing_input.encode(), hashlib.sha256).digest()
        token = f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    response = await post_graphql(running_app, installed, INSTALLATION, token=token)
    assert_refused(response, 401, "TOKEN_INVALID_SIGNATURE", token)


async def test_garbage_token_is_401(running_app, installed) -> None:  # type: ignore[no-untyped-def]
    response = await post_graphql(running_app, installed, INSTALLATION, token="not-a-jwt")
    assert_refused(response, 401, "TOKEN_MALFORMED", "not-a-jwt")


async def test_user_without_manage_apps_is_403(running_app, installed) -> None:  # type: ignore[no-untyped-def]
    token = installed.dashboard_token(user_permissions=["MANAGE_ORDERS", "MANAGE_PRODUCTS"])
    for query in (CHANNELS, INSTALLATION):
        body = assert_refused(await post_graphql(running_app, installed, query, token=token), 403, "MISSING_PERMISSION", token)
        assert "MANAGE_APPS" in body["error"]["message"]


async def test_rotated_key_refetches_the_jwks_once_then_works(running_app, installed) -> None:  # type: ignore[no-untyped-def]
    installed.rotate_key()
    before = installed.jwks_requests
    await gql(running_app, installed, INSTALLATION)
    assert installed.jwks_requests == before + 1
    await gql(running_app, installed, INSTALLATION)  # the new keys were kept
    assert installed.jwks_requests == before + 1


async def test_get_and_graphiql_are_not_served(running_app, installed) -> None:  # type: ignore[no-untyped-def]
    token = installed.dashboard_token()
    response = await running_app.client.get(
        "/graphql", params={"query": "{ viewer { email } }"},
        headers={"Authorization-Bearer": token, "Saleor-Api-Url": installed.api_url},
    )
    assert response.status_code in (400, 404, 405)
    assert "graphiql" not in response.text.lower() and "admin@example.com" not in response.text


# --- channels -----------------------------------------------------------------------------------------------------


async def test_channels_come_live_from_saleor_with_settings_and_counts(running_app, installed, worker) -> None:  # type: ignore[no-untyped-def]
    await configure(running_app, installed, "default-channel", api_key="vtm-key-usd-12345678")
    await place_order(running_app, installed, channel_slug="default-channel")
    await place_order(running_app, installed, channel_slug="channel-pln")  # no key: skipped
    await worker.run_until_idle()
    installed.channels.append(
        {"id": "Q2hhbm5lbDoz", "slug": "channel-eur", "name": "Channel-EUR", "currencyCode": "EUR", "isActive": False,
         "defaultCountry": {"code": "DE", "country": "Germany"}, "metadata": []}
    )
    data = await gql(running_app, installed, CHANNELS)
    assert data["channelsError"] is None
    by_slug = {c["slug"]: c for c in data["channels"]}
    assert [c["slug"] for c in data["channels"]] == ["channel-pln", "default-channel", "channel-eur"]  # Saleor's order
    usd = by_slug["default-channel"]
    assert usd["name"] == "Channel-USD" and usd["currencyCode"] == "USD" and usd["isActive"] is True
    assert usd["id"] == "Q2hhbm5lbDox" and usd["existsInSaleor"] is True
    assert usd["configured"] is True and usd["enabled"] is True and usd["apiKeyHint"] == "…5678"
    assert usd["itemId"] == "sku" and usd["orderId"] == "number"
    assert usd["deliveryCounts"]["delivered"] == 1 and usd["deliveryCounts"]["total"] == 1
    pln = by_slug["channel-pln"]
    assert pln["configured"] is False and pln["apiKeyHint"] is None
    assert pln["deliveryCounts"]["skipped"] == 1 and pln["deliveryCounts"]["total"] == 1
    assert by_slug["channel-eur"]["isActive"] is False and by_slug["channel-eur"]["deliveryCounts"]["total"] == 0
    # Asked with the app's own token, not the user's.
    channel_queries = [r for r in installed.graphql_requests if r["query"] and "channels" in r["query"]]
    assert channel_queries and channel_queries[-1]["token"] == installed.app_token


async def test_stored_channel_missing_from_saleor_is_listed_and_marked(running_app, installed) -> None:  # type: ignore[no-untyped-def]
    await configure(running_app, installed, "old-channel", api_key="vtm-key-old-12345678")
    data = await gql(running_app, installed, CHANNELS)
    old = next(c for c in data["channels"] if c["slug"] == "old-channel")
    assert old["existsInSaleor"] is False and old["configured"] is True and old["id"] is None
    assert {c["slug"] for c in data["channels"] if c["existsInSaleor"]} == {"default-channel", "channel-pln"}


async def test_saleor_unreachable_gives_stored_settings_and_an_error(running_app, installed) -> None:  # type: ignore[no-untyped-def]
    await configure(running_app, installed, "default-channel", api_key="vtm-key-usd-12345678")
    installed.graphql_status_override = 503
    data = await gql(running_app, installed, CHANNELS)
    assert data["channelsError"]["code"] == "SALEOR_UNREACHABLE"
    assert "Saleor could not be reached" in data["channelsError"]["message"]
    assert [(c["slug"], c["configured"], c["existsInSaleor"]) for c in data["channels"]] == [("default-channel", True, None)]


async def test_saleor_refusing_the_app_token_is_reported(running_app, installed) -> None:  # type: ignore[no-untyped-def]
    installed.revoke_app_token()
    data = await gql(running_app, installed, CHANNELS)
    assert data["channelsError"]["code"] == "SALEOR_REFUSED"
    assert data["channels"] == []


# --- settings -----------------------------------------------------------------------------------------------------


async def test_api_key_is_never_shown_stored_in_clear_or_logged(running_app, installed, fake_vtm, tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)
    secret = "vtm-SECRET-key-0123456789abcdef"
    responses = []

    async def call(query: str, variables: dict | None = None) -> dict:
        response = await post_graphql(running_app, installed, query, variables)
        responses.append(response.text)
        assert response.status_code == 200, response.text
        return response.json()["data"]

    saved = await call(UPDATE, {"input": {"channel": "default-channel", "apiKey": secret}})
    assert saved["updateChannelSettings"]["ok"] is True
    assert saved["updateChannelSettings"]["settings"]["apiKeyHint"] == "…cdef"
    listed = await call(CHANNELS)
    assert next(c for c in listed["channels"] if c["slug"] == "default-channel")["apiKeyHint"] == "…cdef"
    tested = await call(TEST_EVENT, {"channel": "default-channel"})
    assert tested["sendTestEvent"]["ok"] is True
    await call(DELIVERIES)
    # A rejected key is not echoed either.
    fake_vtm.accept_keys("another-key")
    rejected = await call(TEST_EVENT, {"channel": "default-channel"})
    assert rejected["sendTestEvent"]["ok"] is False

    assert fake_vtm.events[0].api_key == secret  # it really was used
    for text in responses:
        assert secret not in text
    if running_app.ctx.db.is_sqlite:
        files = list(Path(tmp_path).glob("app.db*"))
        assert files
        for path in files:
            assert secret.encode() not in path.read_bytes(), path
    assert caplog.records
    for record in caplog.records:
        assert secret not in record.getMessage()
        assert secret not in json.dumps(record.__dict__, default=str)


async def test_partial_update_keeps_what_is_omitted(running_app, installed) -> None:  # type: ignore[no-untyped-def]
    first = await gql(running_app, installed, UPDATE, {"input": {
        "channel": "default-channel", "apiKey": "vtm-key-first-12345678", "itemId": "variant-id", "orderId": "id"}})
    assert first["updateChannelSettings"]["settings"] == {
        "channel": "default-channel", "enabled": True, "apiKeyHint": "…5678", "itemId": "variant-id", "orderId": "id",
        "configured": True,
    }
    second = await gql(running_app, installed, UPDATE, {"input": {"channel": "default-channel", "enabled": False}})
    assert second["updateChannelSettings"]["settings"] == {
        "channel": "default-channel", "enabled": False, "apiKeyHint": "…5678", "itemId": "variant-id", "orderId": "id",
        "configured": True,
    }
    third = await gql(running_app, installed, UPDATE, {"input": {"channel": "default-channel", "apiKey": None, "itemId": "sku"}})
    assert third["updateChannelSettings"]["settings"]["itemId"] == "sku"
    assert third["updateChannelSettings"]["settings"]["enabled"] is False
    inst = await installation_id(running_app, installed)
    assert await ChannelSettingsService(running_app.ctx).api_key(inst, "default-channel") == "vtm-key-first-12345678"
    # a new key replaces the old one
    await gql(running_app, installed, UPDATE, {"input": {"channel": "default-channel", "apiKey": "vtm-key-second-87654321"}})
    assert await ChannelSettingsService(running_app.ctx).api_key(inst, "default-channel") == "vtm-key-second-87654321"


async def test_field_errors_come_back_as_data_and_nothing_is_saved(running_app, installed) -> None:  # type: ignore[no-untyped-def]
    data = await gql(running_app, installed, UPDATE, {"input": {
        "channel": "default-channel", "apiKey": "has a space", "itemId": "bogus", "orderId": "nope", "enabled": False}})
    payload = data["updateChannelSettings"]
    assert payload["ok"] is False and payload["settings"] is None
    errors = {e["field"]: e["message"] for e in payload["errors"]}
    assert set(errors) == {"apiKey", "itemId", "orderId"}
    assert "sku" in errors["itemId"] and "number" in errors["orderId"]
    blank = await gql(running_app, installed, UPDATE, {"input": {"channel": "default-channel", "apiKey": "   "}})
    assert [e["field"] for e in blank["updateChannelSettings"]["errors"]] == ["apiKey"]
    channels = (await gql(running_app, installed, CHANNELS))["channels"]
    usd = next(c for c in channels if c["slug"] == "default-channel")
    assert usd["configured"] is False and usd["enabled"] is False  # no key: nothing is sent
    inst = await installation_id(running_app, installed)
    assert await ChannelSettingsService(running_app.ctx).list(inst) == []  # nothing of the refused update was stored


# --- test events --------------------------------------------------------------------------------------------------


async def test_test_event_uses_the_stored_key_and_is_clearly_marked(running_app, installed, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    await configure(running_app, installed, "default-channel", api_key="vtm-key-usd-12345678")
    data = await gql(running_app, installed, TEST_EVENT, {"channel": "default-channel"})
    result = data["sendTestEvent"]
    assert result["ok"] is True and result["httpStatus"] == 200 and result["errors"] == []
    assert "works" in result["message"]
    (event,) = fake_vtm.events
    assert event.api_key == "vtm-key-usd-12345678"
    generic = event.body["event"]["confirmation"]["generic"]
    assert generic["orderId"].startswith("saleor-vtmarketing-test-") and generic["orderId"] == result["orderId"]
    assert generic["status"] == "test"
    assert event.body["user"]["email"] == "test@saleor-vtmarketing.invalid"
    assert event.body["event"]["confirmation"]["items"] == [{"id": "saleor-vtmarketing-test-item", "quantity": 1}]
    assert await deliveries_in_db(running_app) == []  # a test is not an order


async def test_test_event_reports_a_refused_key(running_app, installed, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    await configure(running_app, installed, "default-channel", api_key="vtm-key-wrong-12345678")
    fake_vtm.accept_keys("vtm-key-right-12345678")
    result = (await gql(running_app, installed, TEST_EVENT, {"channel": "default-channel"}))["sendTestEvent"]
    assert result["ok"] is False and result["httpStatus"] == 401 and result["code"] == "KEY_REJECTED"
    assert "Invalid API key" in result["message"]
    assert result["errors"][0]["field"] == "apiKey"
    assert fake_vtm.events == []


async def test_test_event_with_an_unsaved_key(running_app, installed, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    result = (await gql(running_app, installed, TEST_EVENT, {"channel": "channel-pln", "apiKey": "vtm-key-try-12345678"}))
    assert result["sendTestEvent"]["ok"] is True
    assert fake_vtm.events[0].api_key == "vtm-key-try-12345678"
    channels = (await gql(running_app, installed, CHANNELS))["channels"]
    assert next(c for c in channels if c["slug"] == "channel-pln")["configured"] is False  # testing does not save


async def test_test_event_without_a_key_is_a_clear_error(running_app, installed, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    result = (await gql(running_app, installed, TEST_EVENT, {"channel": "default-channel"}))["sendTestEvent"]
    assert result["ok"] is False and result["code"] == "NO_API_KEY" and result["httpStatus"] is None
    assert "No VTmarketing API key" in result["message"]
    assert fake_vtm.requests == []


async def test_test_event_when_vtmarketing_is_down(running_app, installed, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    await configure(running_app, installed, "default-channel", api_key="vtm-key-usd-12345678")
    fake_vtm.fail_next(1, status=503)
    result = (await gql(running_app, installed, TEST_EVENT, {"channel": "default-channel"}))["sendTestEvent"]
    assert result["ok"] is False and result["httpStatus"] == 503 and result["code"] == "UNAVAILABLE"


# --- the delivery log ---------------------------------------------------------------------------------------------


async def test_deliveries_are_paginated_newest_first(running_app, installed) -> None:  # type: ignore[no-untyped-def]
    numbers = [(await place_order(running_app, installed))["number"] for _ in range(5)]
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        page = (await gql(running_app, installed, DELIVERIES, {"first": 2, "after": after}))["deliveries"]
        pages += 1
        seen += [d["orderNumber"] for d in page["items"]]
        if not page["hasMore"]:
            break
        after = page["endCursor"]
        assert after == page["items"][-1]["id"]
    assert pages == 3
    assert seen == list(reversed(numbers))
    bad = await post_graphql(running_app, installed, DELIVERIES, {"after": "nonsense"})
    assert bad.json()["errors"][0]["extensions"]["code"] == "BAD_CURSOR"


async def test_deliveries_filters_and_details(running_app, installed, worker, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    await configure(running_app, installed, "default-channel", api_key="vtm-key-usd-12345678")
    usd = await place_order(running_app, installed, channel_slug="default-channel")
    pln = await place_order(running_app, installed, channel_slug="channel-pln")
    await worker.run_until_idle()
    fake_vtm.fail_next(1, status=400, body={"errors": [{"message": "Missing event information", "description": "d"}]})
    failed = await place_order(running_app, installed, channel_slug="default-channel")
    await worker.run_until_idle()

    async def numbers(**variables) -> list[str]:  # type: ignore[no-untyped-def]
        page = (await gql(running_app, installed, DELIVERIES, variables))["deliveries"]
        return [d["orderNumber"] for d in page["items"]]

    assert await numbers(channel="channel-pln") == [pln["number"]]
    assert await numbers(channel="default-channel") == [failed["number"], usd["number"]]
    assert await numbers(status="skipped") == [pln["number"]]
    assert await numbers(status="failed") == [failed["number"]]
    assert await numbers(search=f"#{usd['number']}") == [usd["number"]]
    assert await numbers(search=usd["id"]) == [usd["number"]]
    assert await numbers(status="delivered", channel="channel-pln") == []
    bad = await post_graphql(running_app, installed, DELIVERIES, {"status": "lost"})
    assert bad.status_code == 200 and "Unknown status" in bad.json()["errors"][0]["message"]

    items = (await gql(running_app, installed, DELIVERIES))["deliveries"]["items"]
    by_number = {d["orderNumber"]: d for d in items}
    bad_one = by_number[failed["number"]]
    assert bad_one["status"] == "failed" and bad_one["statusLabel"] == "Failed" and bad_one["canRetry"] is True
    assert "Missing event information" in bad_one["reason"]
    vtm_attempts = [a for a in bad_one["attempts"] if a["target"] == "vtmarketing"]
    assert [a["httpStatus"] for a in vtm_attempts] == [400] and vtm_attempts[0]["outcome"] == "failed"
    good = by_number[usd["number"]]
    assert good["status"] == "delivered" and good["canRetry"] is False and good["source"] == "webhook"
    assert good["orderId"] == usd["id"] and good["channel"] == "default-channel"
    finished = datetime.fromisoformat(good["finishedAt"])
    expires = datetime.fromisoformat(good["expiresAt"])
    assert expires - finished == timedelta(days=running_app.ctx.settings.retention_days)
    assert by_number[pln["number"]]["reason"] and "no VTmarketing API key" in by_number[pln["number"]]["reason"]


async def test_retry_one_delivery(running_app, installed, worker, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    await configure(running_app, installed, "default-channel", api_key="vtm-key-usd-12345678")
    fake_vtm.fail_next(1, status=400)
    order = await place_order(running_app, installed)
    await worker.run_until_idle()
    (delivery,) = await deliveries_in_db(running_app)
    assert delivery.status == "failed"
    payload = (await gql(running_app, installed, RETRY, {"id": str(delivery.id)}))["retryDelivery"]
    assert payload["ok"] is True and payload["errors"] == []
    assert payload["delivery"]["status"] == "pending" and payload["delivery"]["canRetry"] is False
    again = (await gql(running_app, installed, RETRY, {"id": str(delivery.id)}))["retryDelivery"]
    assert again["ok"] is False and again["errors"][0]["code"] == "BAD_REQUEST"  # already on its way
    await worker.run_until_idle()
    assert [e.order_id for e in fake_vtm.events] == [order["number"]]
    (delivery,) = await deliveries_in_db(running_app)
    assert delivery.status == "delivered"


async def test_retry_all_failed_deliveries_of_a_channel_or_all(running_app, installed, worker, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    await configure(running_app, installed, "default-channel", api_key="vtm-key-usd-12345678")
    await configure(running_app, installed, "channel-pln", api_key="vtm-key-pln-12345678")
    fake_vtm.fail_next(3, status=400)
    await place_order(running_app, installed, channel_slug="default-channel")
    await place_order(running_app, installed, channel_slug="default-channel")
    await place_order(running_app, installed, channel_slug="channel-pln")
    await worker.run_until_idle()
    assert [d.status for d in await deliveries_in_db(running_app)] == ["failed"] * 3

    pln = (await gql(running_app, installed, RETRY_FAILED, {"channel": "channel-pln"}))["retryFailedDeliveries"]
    assert pln["ok"] is True and pln["count"] == 1 and "1 failed delivery" in pln["message"]
    await worker.run_until_idle()
    assert sorted(d.status for d in await deliveries_in_db(running_app)) == ["delivered", "failed", "failed"]
    everything = (await gql(running_app, installed, RETRY_FAILED))["retryFailedDeliveries"]
    assert everything["count"] == 2
    await worker.run_until_idle()
    assert [d.status for d in await deliveries_in_db(running_app)] == ["delivered"] * 3
    nothing = (await gql(running_app, installed, RETRY_FAILED))["retryFailedDeliveries"]
    assert nothing["count"] == 0 and "no failed deliveries" in nothing["message"]
    assert len(fake_vtm.events) == 3


async def test_another_installations_delivery_is_not_found(running_app, installed, worker, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    with FakeSaleor() as other:
        assert (await running_app.register(other)).status_code == 200
        await configure(running_app, other, "default-channel", api_key="vtm-key-other-12345678")
        fake_vtm.fail_next(1, status=400)
        await place_order(running_app, other)
        await worker.run_until_idle()
        (theirs,) = await deliveries_in_db(running_app)
        assert theirs.status == "failed"

        lookup = await gql(running_app, installed, "query($id: ID!) { delivery(id: $id) { id } }", {"id": str(theirs.id)})
        assert lookup["delivery"] is None
        retried = (await gql(running_app, installed, RETRY, {"id": str(theirs.id)}))["retryDelivery"]
        assert retried["ok"] is False and retried["errors"][0]["code"] == "NOT_FOUND"
        assert (await gql(running_app, installed, RETRY_FAILED))["retryFailedDeliveries"]["count"] == 0
        assert (await gql(running_app, installed, DELIVERIES))["deliveries"]["items"] == []
        counts = (await gql(running_app, installed, CHANNELS))["channels"]
        assert all(c["deliveryCounts"]["total"] == 0 for c in counts)
        # ...while its own installation sees it.
        mine = (await gql(running_app, other, "query($id: ID!) { delivery(id: $id) { id status } }", {"id": str(theirs.id)}))
        assert mine["delivery"] == {"id": str(theirs.id), "status": "failed"}
        assert (await deliveries_in_db(running_app))[0].status == "failed"  # nothing was requeued


# --- the page's HTTP side -----------------------------------------------------------------------------------------


async def test_page_is_served_with_a_strict_csp(running_app) -> None:  # type: ignore[no-untyped-def]
    response = await running_app.client.get("/app", params={"saleorApiUrl": "x", "id": "y", "theme": "dark"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors *" in csp and "default-src 'none'" in csp
    assert "unsafe-inline" not in csp
    assert "x-frame-options" not in response.headers
    html = response.text
    assert "<script>" not in html and " style=" not in html  # nothing inline
    assert "http://127.0.0.1:8000/api/manifest" in html
    for asset, kind in (("app.js", "javascript"), ("app.css", "css")):
        assert f"/static/{asset}?v=" in html
        static = await running_app.client.get(f"/static/{asset}")
        assert static.status_code == 200 and kind in static.headers["content-type"]
    for bad in ("../config.py", "..%2Fconfig.py", "app.html", "missing.js"):
        assert (await running_app.client.get(f"/static/{bad}")).status_code == 404


async def test_unexpected_failures_are_logged_and_masked(running_app, installed, monkeypatch, caplog) -> None:  # type: ignore[no-untyped-def]
    from saleor_app.delivery.service import DeliveryService

    async def broken(self, installation_id):  # type: ignore[no-untyped-def]
        raise RuntimeError("internal detail: postgres://user:pw@db")

    monkeypatch.setattr(DeliveryService, "counts", broken)
    response = await post_graphql(running_app, installed, CHANNELS)
    assert response.status_code == 200
    errors = response.json()["errors"]
    assert errors[0]["message"] == "Unexpected error; see the app's logs."
    assert "internal detail" not in response.text
    assert any(r.levelno == logging.ERROR and r.exc_info for r in caplog.records if r.name == "saleor_app.settings.schema")


# A retry is not due again within the test: what a test sees after `run_until_idle` does not depend on speed.
SLOW_RETRIES = pytest.mark.parametrize(
    "settings_overrides", [{"delivery_retry_base_seconds": 3600, "delivery_retry_max_seconds": 7200}], ids=["slow-retries"]
)


# --- the key's status on the channel card -------------------------------------------------------------------------

STORED = """query { storedChannels { slug name settings { channel enabled configured apiKeyHint keyStatus keyStatusMessage
  keyStatusAt } deliveryCounts { delivered failed skipped retrying total } } }"""
KEY_STATUS = "query { channels { slug enabled configured keyStatus keyStatusMessage keyStatusAt } }"


async def key_status(running_app, saleor, channel: str = "default-channel") -> dict:  # type: ignore[no-untyped-def]
    """The channel as the page's first load sees it (channels) and as its polls see it (storedChannels): the same."""
    listed = next(c for c in (await gql(running_app, saleor, KEY_STATUS))["channels"] if c["slug"] == channel)
    stored = next(c for c in (await gql(running_app, saleor, STORED))["storedChannels"] if c["slug"] == channel)
    for field in ("keyStatus", "keyStatusMessage", "keyStatusAt", "enabled", "configured"):
        assert listed[field] == stored["settings"][field], (field, listed, stored)
    return listed


@SLOW_RETRIES
async def test_a_key_refused_for_an_order_shows_until_an_order_is_delivered(running_app, installed, worker, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    await configure(running_app, installed, "default-channel", api_key="vtm-key-wrong-12345678")
    assert (await key_status(running_app, installed))["keyStatus"] is None  # nothing known yet

    fake_vtm.accept_keys("vtm-key-right-12345678")
    refused_order = await place_order(running_app, installed)
    await worker.run_until_idle()
    refused = await key_status(running_app, installed)
    assert refused["keyStatus"] == "refused" and refused["keyStatusAt"]
    assert refused["keyStatusMessage"].startswith(f"VTmarketing refused this key for order #{refused_order['number']}: HTTP 401")
    assert "Invalid API key" in refused["keyStatusMessage"]

    # An outage says nothing about the key.
    fake_vtm.accept_keys()
    fake_vtm.fail_next(1, status=503)
    await place_order(running_app, installed)
    await worker.run_until_idle()
    assert (await key_status(running_app, installed))["keyStatus"] == "refused"

    # A delivered order does (here: the retried one).
    async with running_app.ctx.db.transaction() as session:
        await session.execute(update(Delivery).where(Delivery.status == "retrying").values(next_attempt_at=utcnow()))
    await worker.run_until_idle()
    accepted = await key_status(running_app, installed)
    assert accepted["keyStatus"] == "accepted" and accepted["keyStatusMessage"].startswith("VTmarketing accepted order #")
    # ...and more delivered orders leave it as it is (no write per order).
    await place_order(running_app, installed)
    await worker.run_until_idle()
    assert (await key_status(running_app, installed)) == accepted


async def test_a_test_event_with_the_stored_key_tells_its_status_a_pasted_key_does_not(running_app, installed, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    await configure(running_app, installed, "default-channel", api_key="vtm-key-usd-12345678")
    fake_vtm.accept_keys("vtm-key-other-12345678")
    refused = (await gql(running_app, installed, TEST_EVENT_WITH_SETTINGS, {"channel": "default-channel"}))["sendTestEvent"]
    assert refused["ok"] is False and refused["code"] == "KEY_REJECTED"
    assert refused["settings"]["keyStatus"] == "refused"
    message = refused["settings"]["keyStatusMessage"]
    assert message.startswith("VTmarketing refused this key for a test event: HTTP 401") and "Invalid API key" in message
    assert (await key_status(running_app, installed))["keyStatus"] == "refused"

    # A pasted (unsaved) key is not the channel's key: its result changes nothing stored.
    pasted = (await gql(running_app, installed, TEST_EVENT_WITH_SETTINGS,
                        {"channel": "default-channel", "apiKey": "vtm-key-other-12345678"}))["sendTestEvent"]
    assert pasted["ok"] is True and pasted["settings"]["keyStatus"] == "refused"

    fake_vtm.accept_keys()
    accepted = (await gql(running_app, installed, TEST_EVENT_WITH_SETTINGS, {"channel": "default-channel"}))["sendTestEvent"]
    assert accepted["ok"] is True and accepted["settings"]["keyStatus"] == "accepted"
    assert accepted["settings"]["keyStatusMessage"] == "VTmarketing accepted a test event with this key."

    # VTmarketing down: nothing learnt about the key.
    fake_vtm.fail_next(1, status=503)
    down = (await gql(running_app, installed, TEST_EVENT_WITH_SETTINGS, {"channel": "default-channel"}))["sendTestEvent"]
    assert down["ok"] is False and down["settings"]["keyStatus"] == "accepted"


TEST_EVENT_WITH_SETTINGS = """
mutation($channel: String!, $apiKey: String) { sendTestEvent(channel: $channel, apiKey: $apiKey) {
  ok code message settings { channel keyStatus keyStatusMessage keyStatusAt } errors { field code message } } }
"""


async def test_a_new_key_starts_unknown_the_same_key_pasted_again_changes_nothing(running_app, installed, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    await configure(running_app, installed, "default-channel", api_key="vtm-key-usd-12345678")
    await gql(running_app, installed, TEST_EVENT, {"channel": "default-channel"})
    assert (await key_status(running_app, installed))["keyStatus"] == "accepted"
    same = (await gql(running_app, installed, UPDATE, {"input": {"channel": "default-channel", "apiKey": "vtm-key-usd-12345678"}}))
    assert same["updateChannelSettings"]["ok"] is True and same["updateChannelSettings"]["changed"] == []
    assert (await key_status(running_app, installed))["keyStatus"] == "accepted"
    new = (await gql(running_app, installed, UPDATE, {"input": {"channel": "default-channel", "apiKey": "vtm-key-new-87654321"}}))
    assert new["updateChannelSettings"]["changed"] == ["apiKey"]
    after = await key_status(running_app, installed)
    assert after["keyStatus"] is None and after["keyStatusMessage"] is None and after["keyStatusAt"] is None


async def test_a_verdict_about_a_key_replaced_meanwhile_is_ignored(running_app, installed, worker, fake_vtm, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A delivery is on its way with the old key when the merchant saves a new one: its refusal is about the old key."""
    await configure(running_app, installed, "default-channel", api_key="vtm-key-old-12345678")
    fake_vtm.accept_keys("vtm-key-new-12345678")
    await place_order(running_app, installed)
    sending, release = asyncio.Event(), asyncio.Event()
    real_send = running_app.ctx.vtmarketing.send

    async def held_send(api_key: str, body: bytes):  # type: ignore[no-untyped-def]
        sending.set()
        await release.wait()
        return await real_send(api_key, body)

    monkeypatch.setattr(running_app.ctx.vtmarketing, "send", held_send)
    run = asyncio.create_task(worker.run_until_idle())
    await asyncio.wait_for(sending.wait(), 30)
    await configure(running_app, installed, "default-channel", api_key="vtm-key-new-12345678")
    release.set()
    await asyncio.wait_for(run, 30)
    (delivery,) = await deliveries_in_db(running_app)
    assert delivery.status == "failed" and "401" in delivery.reason  # the old key was refused...
    assert (await key_status(running_app, installed))["keyStatus"] is None  # ...which says nothing of the new one


# --- the switch, and "Saved." only when something was saved --------------------------------------------------------


async def test_sending_cannot_be_turned_on_for_a_channel_without_a_key(running_app, installed) -> None:  # type: ignore[no-untyped-def]
    pln = next(c for c in (await gql(running_app, installed, CHANNELS))["channels"] if c["slug"] == "channel-pln")
    assert pln["configured"] is False and pln["enabled"] is False
    refused = (await gql(running_app, installed, UPDATE, {"input": {"channel": "channel-pln", "enabled": True}}))["updateChannelSettings"]
    assert refused["ok"] is False and [e["field"] for e in refused["errors"]] == ["enabled"]
    assert "API key first" in refused["errors"][0]["message"]
    assert await ChannelSettingsService(running_app.ctx).list(await installation_id(running_app, installed)) == []
    # With a key in the same update it may.
    both = (await gql(running_app, installed, UPDATE, {"input": {
        "channel": "channel-pln", "apiKey": "vtm-key-pln-12345678", "enabled": True}}))["updateChannelSettings"]
    assert both["ok"] is True and both["settings"]["enabled"] is True and set(both["changed"]) == {"apiKey"}
    off = (await gql(running_app, installed, UPDATE, {"input": {"channel": "channel-pln", "enabled": False}}))["updateChannelSettings"]
    assert off["ok"] is True and off["settings"]["enabled"] is False and off["changed"] == ["enabled"]


async def test_an_update_says_which_fields_it_changed(running_app, installed) -> None:  # type: ignore[no-untyped-def]
    async def changed(**fields) -> list[str]:  # type: ignore[no-untyped-def]
        payload = (await gql(running_app, installed, UPDATE, {"input": {"channel": "default-channel", **fields}}))
        assert payload["updateChannelSettings"]["ok"] is True, payload
        return payload["updateChannelSettings"]["changed"]

    assert await changed(apiKey="vtm-key-usd-12345678", itemId="variant-id") == ["apiKey", "itemId"]
    assert await changed(apiKey="vtm-key-usd-12345678", itemId="variant-id", orderId="number") == []
    assert await changed(orderId="id") == ["orderId"]
    assert await changed(enabled=True) == []  # already on
    assert await changed(enabled=False) == ["enabled"]


# --- resend, retry times, channel names ---------------------------------------------------------------------------


@SLOW_RETRIES
async def test_resend_keeps_the_received_time_and_restarts_the_retry_window(running_app, installed, worker, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    await configure(running_app, installed)
    fake_vtm.fail_next(1, status=400)
    await place_order(running_app, installed)
    await worker.run_until_idle()
    received = utcnow() - timedelta(hours=25)  # older than DELIVERY_MAX_AGE: its first window is long over
    async with running_app.ctx.db.transaction() as session:
        await session.execute(update(Delivery).values(received_at=received))
    (delivery,) = await deliveries_in_db(running_app)

    resent = (await gql(running_app, installed, RETRY_WITH_RESENT, {"id": str(delivery.id)}))["retryDelivery"]["delivery"]
    assert datetime.fromisoformat(resent["receivedAt"]) == received  # history is not rewritten
    resent_at = datetime.fromisoformat(resent["resentAt"])
    assert received < resent_at <= utcnow()

    # VTmarketing is down at the resend: it is retried, because the retry window restarted at the resend.
    fake_vtm.fail_next(1, status=503)
    await worker.run_until_idle()
    (delivery,) = await deliveries_in_db(running_app)
    assert delivery.status == "retrying", delivery.reason
    assert delivery.received_at == received and delivery.retry_window_started_at == resent_at


RETRY_WITH_RESENT = """mutation($id: ID!) { retryDelivery(id: $id) { ok delivery { id status receivedAt resentAt } } }"""


@SLOW_RETRIES
async def test_a_retrying_delivery_gives_its_next_try_as_a_time_not_in_its_reason(running_app, installed, worker, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    await configure(running_app, installed)
    fake_vtm.fail_next(1, status=503)
    await place_order(running_app, installed)
    await worker.run_until_idle()
    (item,) = (await gql(running_app, installed, DELIVERIES))["deliveries"]["items"]
    assert item["status"] == "retrying" and "503" in item["reason"]
    assert "next try" not in item["reason"] and "UTC" not in item["reason"]
    assert datetime.fromisoformat(item["nextAttemptAt"]) > datetime.fromisoformat(item["receivedAt"])
    # A reason stored by an earlier version, with its UTC time, is shown without it.
    async with running_app.ctx.db.transaction() as session:
        await session.execute(update(Delivery).values(reason=item["reason"] + "; next try at 2026-11-26 18:00:05 UTC"))
    (again,) = (await gql(running_app, installed, DELIVERIES))["deliveries"]["items"]
    assert again["reason"] == item["reason"]


async def test_channel_names_are_kept_for_the_log_and_the_dashboard_problems(running_app, installed, worker, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    await configure(running_app, installed, "default-channel", api_key="vtm-key-wrong-12345678")
    installed.channel("default-channel")["name"] = "US Store"
    await gql(running_app, installed, CHANNELS)  # the page lists the channels: their names are kept
    fake_vtm.accept_keys("vtm-key-right-12345678")
    await place_order(running_app, installed)
    await worker.run_until_idle()
    (item,) = (await gql(running_app, installed, "query { deliveries { items { channel channelName } } }"))["deliveries"]["items"]
    assert item == {"channel": "default-channel", "channelName": "US Store"}
    # The worker only knows the slug; the dashboard's problem names the channel as the merchant knows it.
    problem = installed.problems["vtmarketing-key-rejected:default-channel"]
    assert "channel US Store (default-channel)" in problem, problem
    stored = {c["slug"]: c["name"] for c in (await gql(running_app, installed, STORED))["storedChannels"]}
    assert stored["default-channel"] == "US Store"
    # A rename in Saleor reaches the log with the next channel list.
    installed.channel("default-channel")["name"] = "USA"
    await gql(running_app, installed, CHANNELS)
    (item,) = (await gql(running_app, installed, "query { deliveries { items { channelName } } }"))["deliveries"]["items"]
    assert item["channelName"] == "USA"


async def test_stored_channels_are_read_without_asking_saleor(running_app, installed, worker, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    await configure(running_app, installed, "default-channel", api_key="vtm-key-usd-12345678")
    await place_order(running_app, installed, channel_slug="default-channel")
    await place_order(running_app, installed, channel_slug="channel-pln")  # no key: skipped, no settings row
    await worker.run_until_idle()
    asked = len(installed.graphql_requests)
    stored = {c["slug"]: c for c in (await gql(running_app, installed, STORED))["storedChannels"]}
    assert len(installed.graphql_requests) == asked  # polling this never costs a call to Saleor
    assert stored["default-channel"]["settings"]["configured"] is True
    assert stored["default-channel"]["settings"]["keyStatus"] == "accepted"
    assert stored["default-channel"]["deliveryCounts"]["delivered"] == 1
    assert stored["channel-pln"]["settings"]["configured"] is False and stored["channel-pln"]["settings"]["enabled"] is False
    assert stored["channel-pln"]["deliveryCounts"]["skipped"] == 1


async def test_the_page_is_given_its_poll_interval_and_fonts(running_app) -> None:  # type: ignore[no-untyped-def]
    html = (await running_app.client.get("/app")).text
    assert f'data-poll-ms="{int(running_app.ctx.settings.page_poll_seconds * 1000)}"' in html
    for weight in (400, 500, 600):
        for subset in ("latin", "latin-ext"):
            font = await running_app.client.get(f"/static/fonts/inter-{subset}-{weight}-normal.woff2")
            assert font.status_code == 200 and font.headers["content-type"] == "font/woff2"
            assert font.content[:4] == b"wOF2"
    css = (await running_app.client.get("/static/app.css")).text
    assert 'url("fonts/inter-latin-400-normal.woff2")' in css
    for bad in ("fonts/../../config.py", "fonts/OFL.txt", "fonts/README.md", "fonts", "fonts/missing.woff2",
                "..%2F..%2Fsettings%2Frouter.py", "app%00.js", "fonts/%2e%2e/%2e%2e/config.py"):
        assert (await running_app.client.get(f"/static/{bad}")).status_code == 404, bad
