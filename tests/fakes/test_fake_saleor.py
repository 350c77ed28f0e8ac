"""The fake Saleor answers like the real 3.23.28 of tests/data/saleor/captured/ (and rejects what a real 3.20 rejects)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest

from saleor_app.saleor.signature import SignatureError, verify_dashboard_token, verify_saleor_signature
from tests.fakes.saleor import CAPTURED_SUBSCRIPTION, FakeSaleor, jwk_thumbprint
from tests.paths import CAPTURED_DIR

CAPTURED_KID = "GWbwirDfVaULqjW-vpS80fpHb9aIVhZlRQxS7M7obUs"
# Transport-level headers the HTTP client sets itself.
TRANSPORT_HEADERS = {"Connection", "Content-Length", "Host"}
ORDER_A_QUERY = json.loads(json.loads((CAPTURED_DIR / "apptoken-iii-order-a.json").read_text())["request"]["body"])
ORDER_FILTER_QUERY = """
query Orders($first: Int!, $after: String, $filter: OrderFilterInput, $sortBy: OrderSortingInput) {
  orders(first: $first, after: $after, filter: $filter, sortBy: $sortBy) {
    totalCount
    edges { cursor node { id number status updatedAt channel { slug } } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}
"""


def captured_json(name: str) -> Any:
    return json.loads((CAPTURED_DIR / name).read_text())


def captured_order(name: str) -> dict[str, Any]:
    return json.loads((CAPTURED_DIR / name).read_bytes())["order"]


def shape(value: Any) -> Any:
    """Keys and value types, recursively (lists: the shape of their first item)."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


def assert_has_shape(expected: Any, actual: Any, path: str = "") -> None:
    """Every key of `expected` is in `actual` with the same kind of value (None matches anything)."""
    if expected is None or actual is None:
        return
    if isinstance(expected, dict):
        assert isinstance(actual, dict), path
        for key, item in expected.items():
            assert key in actual, f"{path}.{key} missing"
            assert_has_shape(item, actual[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list), path
        if expected and actual:
            assert_has_shape(expected[0], actual[0], f"{path}[0]")
    else:
        assert type(expected) is type(actual), f"{path}: {type(expected).__name__} vs {type(actual).__name__}"


# One client for the module: a new httpx.Client per request would build an SSL context each time (~15 ms).
HTTP = httpx.Client(timeout=10)


@pytest.fixture(scope="module", autouse=True)
def _close_http() -> Iterator[None]:
    yield
    HTTP.close()


def gql(fake: FakeSaleor, query: str, variables: dict | None = None, token: str | None = "app") -> httpx.Response:
    headers = {}
    if token == "app":
        token = fake.app_token
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    payload: dict[str, Any] = {"query": query}
    if variables is not None:
        payload["variables"] = variables
    return HTTP.post(fake.api_url, json=payload, headers=headers)


# One running fake per version for the whole module (stopping a server costs ~0.2 s); reset before each test.
@pytest.fixture(scope="module")
def running_323() -> Iterator[FakeSaleor]:
    with FakeSaleor() as saleor:
        yield saleor


@pytest.fixture(scope="module")
def running_320() -> Iterator[FakeSaleor]:
    with FakeSaleor(schema_version="3.20", saleor_version="3.20.119") as saleor:
        yield saleor


@pytest.fixture
def fake(running_323: FakeSaleor) -> FakeSaleor:
    running_323.reset()
    return running_323


@pytest.fixture
def fake_320(running_320: FakeSaleor) -> FakeSaleor:
    running_320.reset()
    return running_320


# --- keys and signatures -----------------------------------------------------------------------------------


def test_jwks_endpoint_looks_like_saleors(fake: FakeSaleor) -> None:
    response = HTTP.get(fake.jwks_url)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert fake.jwks_requests == 1
    ours, theirs = response.json(), captured_json("jwks.json")
    assert list(ours) == list(theirs) == ["keys"]
    assert len(ours["keys"]) == 1
    assert list(ours["keys"][0]) == list(theirs["keys"][0])  # same fields, same order
    key = ours["keys"][0]
    assert (key["kty"], key["e"], key["use"], key["alg"], key["key_ops"]) == ("RSA", "AQAB", "sig", "RS256", ["verify"])
    assert len(base64.urlsafe_b64decode(key["n"] + "==")) == 256  # 2048 bits
    assert key["kid"] == jwk_thumbprint(key) == fake.kid
    # Serialized like the capture: json.dumps with its default separators.
    assert response.text == json.dumps(ours) == fake.jwks_json()
    assert (CAPTURED_DIR / "jwks.json").read_text() == json.dumps(theirs)


def test_thumbprint_matches_saleors_kid() -> None:
    key = captured_json("jwks.json")["keys"][0]
    assert jwk_thumbprint(key) == key["kid"]


def test_signature_header_is_byte_identical_in_form_to_saleors(fake: FakeSaleor) -> None:
    def header_of(signature: str) -> bytes:
        segment, empty, _ = signature.split(".")
        assert empty == ""
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))

    captured_signature = captured_json("webhook-order-a.json")["headers"]["Saleor-Signature"]
    theirs = header_of(captured_signature).replace(CAPTURED_KID.encode(), b"KID")
    assert header_of(fake.sign(b"{}")).replace(fake.kid.encode(), b"KID") == theirs
    without_crit = b'{"alg":"RS256","b64":false,"kid":"' + fake.kid.encode() + b'","typ":"JWT"}'
    assert header_of(fake.sign(b"{}", with_crit=False)) == without_crit
    assert len(fake.sign(b"{}")) - len(fake.kid) == len(captured_signature) - len(CAPTURED_KID)


def test_webhooks_verify_against_the_served_jwks(fake: FakeSaleor) -> None:
    jwks = HTTP.get(fake.jwks_url).text
    order = fake.make_order()
    body = fake.webhook_body(order)
    headers = fake.webhook_headers(body)
    verify_saleor_signature(headers["Saleor-Signature"], body, jwks)
    verify_saleor_signature(headers["X-Saleor-Signature"], body, jwks)
    verify_saleor_signature(fake.sign(body, with_crit=False), body, jwks)
    projected = fake.webhook_body(order, query=CAPTURED_SUBSCRIPTION)
    verify_saleor_signature(fake.sign(projected), projected, jwks)


def test_concurrent_fakes_have_different_keys(fake: FakeSaleor) -> None:
    other = FakeSaleor()  # not started: only its keys are needed, and stop() is then instant
    try:
        assert other.kid != fake.kid
        with pytest.raises(SignatureError) as info:
            verify_saleor_signature(other.sign(b"{}"), b"{}", fake.jwks_json())
        assert info.value.kind == "unknown_kid"
    finally:
        other.stop()


def test_rotate_key_replaces_the_single_key(fake: FakeSaleor) -> None:
    body = fake.webhook_body(fake.make_order())
    old_signature, old_kid = fake.sign(body), fake.kid
    new_kid = fake.rotate_key()
    assert new_kid != old_kid and new_kid == fake.kid
    served = HTTP.get(fake.jwks_url).json()
    assert [key["kid"] for key in served["keys"]] == [new_kid]  # no overlap
    with pytest.raises(SignatureError) as info:
        verify_saleor_signature(old_signature, body, fake.jwks_json())
    assert info.value.kind == "unknown_kid"
    verify_saleor_signature(fake.sign(body), body, fake.jwks_json())


def test_jwks_status_override(fake: FakeSaleor) -> None:
    fake.jwks_status_override = 503
    assert HTTP.get(fake.jwks_url).status_code == 503
    assert fake.jwks_requests == 1


# --- what Saleor sends -------------------------------------------------------------------------------------


def test_webhook_headers_are_the_captured_ones(fake: FakeSaleor) -> None:
    captured = captured_json("webhook-order-a.json")["headers"]
    body = fake.webhook_body(fake.make_order())
    headers = fake.webhook_headers(body)
    assert set(headers) == set(captured) - TRANSPORT_HEADERS
    assert headers["Saleor-Event"] == headers["X-Saleor-Event"] == "order_confirmed"
    assert headers["Saleor-Domain"] == headers["X-Saleor-Domain"] == fake.domain
    assert fake.api_url == f"http://{fake.domain}/graphql/"
    assert headers["Saleor-Api-Url"] == fake.api_url and fake.api_url.endswith("/graphql/")
    assert headers["User-Agent"] == captured["User-Agent"] == "Saleor/3.23"
    assert headers["Content-Type"] == "application/json"
    assert headers["traceparent"].startswith("00-") and len(headers["traceparent"]) == len(captured["traceparent"])
    assert "Saleor-Schema-Version" not in headers
    assert fake.webhook_headers(body, "order_created")["Saleor-Event"] == "order_created"


def test_webhook_body_is_serialized_like_saleor(fake: FakeSaleor) -> None:
    order = fake.make_order(lines=[{"sku": "Z-1", "product_name": "Zoë's tee 🙂", "quantity": 3, "unit_price": 9.5}])
    body = fake.webhook_body(order, issued_at="2026-11-26T17:15:42.703258+00:00")
    assert body == json.dumps(json.loads(body)).encode()  # ", " and ": " separators
    assert body.isascii() and b"Zo\\u00eb's tee \\ud83d\\ude42" in body
    parsed = json.loads(body)
    assert list(parsed) == ["__typename", "issuedAt", "version", "order"]
    assert parsed["__typename"] == "OrderConfirmed" and parsed["version"] == "3.23.28"
    assert parsed["issuedAt"] == "2026-11-26T17:15:42.703258+00:00"
    assert parsed["order"]["lines"][0]["totalPrice"]["gross"] == {"amount": 28.5, "currency": "USD"}
    assert parsed["order"]["total"]["gross"]["amount"] == 28.5


@pytest.mark.parametrize("name", ["webhook-order-a.body", "webhook-order-b.body"])
def test_projection_through_the_subscription_reproduces_the_captured_bytes(fake: FakeSaleor, name: str) -> None:
    captured = (CAPTURED_DIR / name).read_bytes()
    parsed = json.loads(captured)
    body = fake.webhook_body(parsed["order"], issued_at=parsed["issuedAt"], query=CAPTURED_SUBSCRIPTION)
    assert body == captured


def test_minimal_subscription_body_has_no_event_fields(fake: FakeSaleor) -> None:
    captured = (CAPTURED_DIR / "webhook-minimal.body").read_bytes()
    query = (
        "subscription { event { ... on OrderConfirmed { order {"
        " id number userEmail total { gross { amount currency } } lines { quantity variant { sku } } } } } }"
    )
    assert fake.webhook_body(json.loads(captured)["order"], query=query) == captured


def test_top_level_subscription_field_body_is_wrapped_in_data(fake: FakeSaleor) -> None:
    order = fake.make_order()
    body = json.loads(fake.webhook_body(order, query="subscription { orderConfirmed { order { id } } }"))
    assert body == {"data": {"orderConfirmed": {"order": {"id": order["id"]}}}}


def test_subscription_invalid_on_the_schema_is_refused(fake_320: FakeSaleor) -> None:
    with pytest.raises(ValueError, match="3.20"):
        fake_320.webhook_body(fake_320.make_order(), query=CAPTURED_SUBSCRIPTION)  # OrderDiscount.total is 3.21+


def test_make_order_has_the_captured_shape(fake: FakeSaleor) -> None:
    order = fake.make_order()
    assert_has_shape(captured_order("webhook-order-a.body"), order)
    assert_has_shape(captured_order("webhook-order-b.body"), order)
    # Projected through the captured subscription, it has exactly the captured keys.
    projected = json.loads(fake.webhook_body(order, query=CAPTURED_SUBSCRIPTION))
    captured = json.loads((CAPTURED_DIR / "webhook-order-a.body").read_bytes())
    assert shape(projected)["order"].keys() == shape(captured)["order"].keys()
    assert shape(projected)["order"]["lines"] == shape(captured)["order"]["lines"]
    assert all(isinstance(order[key], str) for key in ("number", "updatedAt", "created"))
    assert base64.b64decode(order["id"]).decode().startswith("Order:")
    assert order["billingAddress"]["phone"].startswith("+")
    assert order["status"] == "UNFULFILLED" and order["user"] is None


def test_make_order_is_unique_and_configurable(fake: FakeSaleor) -> None:
    first, second = fake.make_order(), fake.make_order(channel_slug="channel-pln", status="CANCELED")
    assert first["id"] != second["id"] and int(second["number"]) == int(first["number"]) + 1
    assert second["channel"]["slug"] == "channel-pln" and second["channel"]["currencyCode"] == "PLN"
    assert second["total"]["gross"]["currency"] == "PLN" and second["status"] == "CANCELED"
    custom = fake.make_order(
        lines=[{"sku": None, "quantity": 2, "unit_price": 1.79}, fake.make_line(sku="X", unit_price=10.0)],
        shipping_amount=5.0,
    )
    assert [line["productSku"] for line in custom["lines"]] == [None, "X"]
    assert custom["lines"][0]["variantName"] == custom["lines"][0]["productVariantId"]  # sku-less, as in Saleor
    assert custom["subtotal"]["gross"]["amount"] == 13.58 and custom["total"]["gross"]["amount"] == 18.58
    with pytest.raises(KeyError):
        fake.make_order(channel_slug="nope")


def test_register_request_is_the_captured_one(fake: FakeSaleor) -> None:
    captured = captured_json("register-request.json")
    assert set(fake.register_headers()) == set(captured["headers"]) - TRANSPORT_HEADERS
    assert fake.register_headers()["Saleor-Schema-Version"] == "3.23"
    assert fake.register_headers()["Saleor-Api-Url"] == fake.api_url
    body = fake.register_body()
    assert body == b'{"auth_token": "' + fake.app_token.encode() + b'"}'
    assert len(body) == len((CAPTURED_DIR / "register-request.body").read_bytes())
    assert len(fake.app_token) == 30 and fake.app_token.isalnum()
    assert set(fake.manifest_headers()) == set(captured_json("manifest-request.json")["headers"]) - TRANSPORT_HEADERS


# --- GraphQL: answers like the captures --------------------------------------------------------------------


def test_app_query_like_the_capture(fake: FakeSaleor) -> None:
    captured = json.loads((CAPTURED_DIR / "apptoken-i-app.body").read_bytes())
    response = gql(fake, "{ app { id } }")
    assert response.status_code == 200
    assert response.content == (CAPTURED_DIR / "apptoken-i-app.body").read_bytes()  # same app id, compact JSON
    assert shape(response.json()) == shape(captured)


def test_app_permissions(fake: FakeSaleor) -> None:
    fake.app_permissions = ["MANAGE_ORDERS", "MANAGE_CHANNELS"]
    data = gql(fake, "{ app { id isActive permissions { code name } } }").json()["data"]
    assert [p["code"] for p in data["app"]["permissions"]] == ["MANAGE_ORDERS", "MANAGE_CHANNELS"]
    assert data["app"]["permissions"][0]["name"] == "Manage orders."


def test_channels_like_the_capture(fake: FakeSaleor) -> None:
    request = json.loads(captured_json("apptoken-ii-channels.json")["request"]["body"])
    response = gql(fake, request["query"])
    assert response.status_code == 200
    assert response.content == (CAPTURED_DIR / "apptoken-ii-channels.body").read_bytes()
    fake.channels = [dict(fake.channels[1], isActive=False)]
    assert gql(fake, "{ channels { slug isActive } }").json()["data"]["channels"] == [
        {"slug": "default-channel", "isActive": False}
    ]


def test_channels_need_authentication(fake: FakeSaleor) -> None:
    body = gql(fake, "{ channels { slug } }", token=None).json()
    assert body["data"] == {"channels": None}
    assert body["errors"][0]["extensions"] == {"exception": {"code": "PermissionDenied"}}
    assert "AUTHENTICATED_APP, AUTHENTICATED_STAFF_USER" in body["errors"][0]["message"]


def test_order_like_the_capture(fake: FakeSaleor) -> None:
    fake.add_order(captured_order("webhook-order-a.body"))
    response = gql(fake, ORDER_A_QUERY["query"], ORDER_A_QUERY["variables"])
    assert response.status_code == 200
    assert response.content == (CAPTURED_DIR / "apptoken-iii-order-a.body").read_bytes()


def test_unknown_token_reads_order_anonymously_like_the_capture(fake: FakeSaleor) -> None:
    fake.add_order(captured_order("webhook-order-a.body"))
    wrong = fake.app_token[:-1] + ("A" if fake.app_token[-1] != "A" else "B")
    response = gql(fake, ORDER_A_QUERY["query"], ORDER_A_QUERY["variables"], token=wrong)
    assert response.status_code == 200
    assert response.json() == json.loads((CAPTURED_DIR / "apptoken-iv-invalid-token.body").read_bytes())


def test_unknown_token_app_query_is_permission_denied_like_the_capture(fake: FakeSaleor) -> None:
    captured = json.loads((CAPTURED_DIR / "apptoken-iv-d-invalid-token-app-query.body").read_bytes())
    for token in ("7EucSBp3X5faVC5mO5h46HVWScZ3PA", None, "not-a-token"):
        response = gql(fake, "{ app { id } }", token=token)
        assert response.status_code == 200
        assert response.json() == captured, token


def test_revoked_token_is_anonymous(fake: FakeSaleor) -> None:
    assert gql(fake, "{ app { id } }").json()["data"]["app"]["id"] == fake.app_id
    fake.revoke_app_token()
    body = gql(fake, "{ app { id } }").json()
    assert body["data"] == {"app": None}
    assert body["errors"][0]["extensions"]["exception"]["code"] == "PermissionDenied"


def test_tampered_dashboard_jwt_fails_per_field_like_the_capture(fake: FakeSaleor) -> None:
    fake.add_order(captured_order("webhook-order-a.body"))
    header, claims, signature = fake.dashboard_token().split(".")
    tampered = f"{header}.{claims}.{signature[:-4]}AAAA"
    response = gql(fake, ORDER_A_QUERY["query"], ORDER_A_QUERY["variables"], token=tampered)
    assert response.status_code == 200
    assert response.json() == json.loads((CAPTURED_DIR / "apptoken-iv-f-tampered-saleor-jwt.body").read_bytes())


def test_expired_dashboard_jwt_fails_per_field_like_the_capture(fake: FakeSaleor) -> None:
    fake.add_order(captured_order("webhook-order-a.body"))
    expired = fake.dashboard_token(exp_in=-10)
    response = gql(fake, ORDER_A_QUERY["query"], ORDER_A_QUERY["variables"], token=expired)
    assert response.json() == json.loads((CAPTURED_DIR / "apptoken-iv-g-expired-dashboard-jwt.body").read_bytes())


def test_dashboard_token_looks_like_the_captured_one(fake: FakeSaleor) -> None:
    captured = captured_json("dashboard-token.json")
    token = fake.dashboard_token()
    header_segment = token.split(".")[0]
    assert list(jwt.get_unverified_header(token)) == list(captured["header"]) == ["alg", "kid", "typ"]
    assert base64.urlsafe_b64decode(header_segment + "==") == (
        b'{"alg":"RS256","kid":"' + fake.kid.encode() + b'","typ":"JWT"}'
    )
    claims = jwt.decode(token, options={"verify_signature": False})
    assert list(claims) == list(captured["claims"])
    assert claims["iss"] == fake.api_url and claims["app"] == fake.app_id and claims["exp"] - claims["iat"] == 300
    assert claims["permissions"] == ["MANAGE_ORDERS"] and claims["type"] == "thirdparty"
    verify_dashboard_token(token, jwks_json=fake.jwks_json(), app_id=fake.app_id, saleor_api_url=fake.api_url)


def test_dashboard_token_acts_as_staff(fake: FakeSaleor) -> None:
    token = fake.dashboard_token()
    body = gql(fake, "query($id: ID!) { app(id: $id) { id accessToken } }", {"id": fake.app_id}, token=token).json()
    assert body["data"]["app"]["id"] == fake.app_id
    assert body["data"]["app"]["accessToken"].count(".") == 2
    assert gql(fake, "{ channels { slug } }", token=token).json()["data"]["channels"]
    # The app's token gets no accessToken (staff users only).
    assert gql(fake, "{ app { accessToken } }").json()["data"]["app"]["accessToken"] is None


def test_shop_version_needs_authentication(fake: FakeSaleor) -> None:
    assert gql(fake, "{ shop { version } }").json()["data"] == {"shop": {"version": "3.23.28"}}
    body = gql(fake, "{ shop { version } }", token=None).json()
    assert body["errors"][0]["extensions"]["exception"]["code"] == "PermissionDenied"


def test_orders_need_manage_orders(fake: FakeSaleor) -> None:
    fake.app_permissions = []
    body = gql(fake, ORDER_FILTER_QUERY, {"first": 10}).json()
    assert body["data"] == {"orders": None}
    message = "To access this path, you need one of the following permissions: MANAGE_ORDERS"
    assert body["errors"][0]["message"] == message


def test_validation_errors_are_http_400_without_data(fake: FakeSaleor) -> None:
    response = gql(fake, "{ app { nope } }")
    assert response.status_code == 400
    body = response.json()
    assert "data" not in body
    assert "nope" in body["errors"][0]["message"]
    assert gql(fake, "{ app { id }").status_code == 400  # syntax error
    assert gql(fake, "query($n: Int!) { orders(first: $n) { totalCount } }", {"n": "x"}).status_code == 400
    assert HTTP.post(fake.api_url, content=b"not json", headers={"Content-Type": "application/json"}).status_code == 400


def test_requests_are_recorded_and_status_can_be_forced(fake: FakeSaleor) -> None:
    gql(fake, "query($id: ID!) { order(id: $id) { id } }", {"id": "T3JkZXI6MQ=="})
    assert fake.graphql_requests[-1]["query"].startswith("query($id")
    assert fake.graphql_requests[-1]["variables"] == {"id": "T3JkZXI6MQ=="}
    assert fake.graphql_requests[-1]["token"] == fake.app_token
    fake.graphql_status_override = 503
    assert gql(fake, "{ app { id } }").status_code == 503
    assert len(fake.graphql_requests) == 2
    fake.graphql_status_override = None
    assert gql(fake, "{ app { id } }").status_code == 200


# --- orders: filters and pagination ------------------------------------------------------------------------


def add_orders(fake: FakeSaleor) -> list[dict[str, Any]]:
    """Orders 1..6 updated a day apart; #3 in PLN, #5 a draft (never listed), #6 canceled."""
    orders = []
    for day in range(1, 7):
        overrides: dict[str, Any] = {"updatedAt": f"2026-01-0{day}T12:00:00+00:00"}
        if day == 5:
            overrides["status"] = "DRAFT"
        if day == 6:
            overrides["status"] = "CANCELED"
        orders.append(fake.add_order(fake.make_order(channel_slug="channel-pln" if day == 3 else "default-channel",
                                                     **overrides)))
    return orders


def numbers(body: dict) -> list[str]:
    return [edge["node"]["number"] for edge in body["data"]["orders"]["edges"]]


def test_orders_default_order_is_newest_number_first_and_drafts_are_hidden(fake: FakeSaleor) -> None:
    add_orders(fake)
    body = gql(fake, ORDER_FILTER_QUERY, {"first": 10}).json()
    assert numbers(body) == ["6", "4", "3", "2", "1"]
    assert body["data"]["orders"]["totalCount"] == 5


def test_orders_pagination_walks_every_order_once(fake: FakeSaleor) -> None:
    add_orders(fake)
    seen, after, pages = [], None, 0
    while True:
        variables = {"first": 2, "after": after, "sortBy": {"field": "LAST_MODIFIED_AT", "direction": "ASC"}}
        body = gql(fake, ORDER_FILTER_QUERY, variables).json()
        connection = body["data"]["orders"]
        seen += numbers(body)
        pages += 1
        assert connection["pageInfo"]["hasPreviousPage"] is bool(after)
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]
        assert after == connection["edges"][-1]["cursor"]
    assert seen == ["1", "2", "3", "4", "6"] and pages == 3


def test_orders_cursor_is_saleors_format(fake: FakeSaleor) -> None:
    add_orders(fake)
    body = gql(fake, ORDER_FILTER_QUERY, {"first": 1, "sortBy": {"field": "NUMBER", "direction": "ASC"}}).json()
    assert json.loads(base64.b64decode(body["data"]["orders"]["pageInfo"]["endCursor"])) == ["1"]
    bad = gql(fake, ORDER_FILTER_QUERY, {"first": 1, "after": "garbage"}).json()
    assert bad["data"] == {"orders": None} and bad["errors"]


def test_orders_filter_by_updated_at_channel_and_status(fake: FakeSaleor) -> None:
    orders = add_orders(fake)
    window = {"updatedAt": {"gte": "2026-01-02T00:00:00+00:00", "lte": "2026-01-04T12:00:00Z"}}
    sort = {"field": "NUMBER", "direction": "ASC"}
    in_window = gql(fake, ORDER_FILTER_QUERY, {"first": 10, "filter": window, "sortBy": sort}).json()
    assert numbers(in_window) == ["2", "3", "4"]
    usd = dict(window, channels=[fake.channel("default-channel")["id"]])
    assert numbers(gql(fake, ORDER_FILTER_QUERY, {"first": 10, "filter": usd, "sortBy": sort}).json()) == ["2", "4"]
    status = {"status": ["CANCELED"]}
    assert numbers(gql(fake, ORDER_FILTER_QUERY, {"first": 10, "filter": status}).json()) == ["6"]
    # Channels are filtered by global ID, as in Saleor: a slug is an error, not an empty filter.
    slug = gql(fake, ORDER_FILTER_QUERY, {"first": 10, "filter": {"channels": ["default-channel"]}}).json()
    assert slug["data"] == {"orders": None} and slug["errors"]
    # The `channel` argument takes a slug.
    by_slug = gql(fake, '{ orders(first: 10, channel: "channel-pln") { edges { node { number } } } }').json()
    assert numbers(by_slug) == [orders[2]["number"]]


def test_orders_where_on_3_23(fake: FakeSaleor) -> None:
    add_orders(fake)
    query = """query($where: OrderWhereInput) { orders(first: 10, where: $where) { edges { node { number } } } }"""
    where = {"updatedAt": {"gte": "2026-01-02T00:00:00Z"}, "channelId": {"eq": fake.channel("default-channel")["id"]},
             "status": {"oneOf": ["UNFULFILLED"]}}
    assert numbers(gql(fake, query, {"where": where}).json()) == ["4", "2"]
    both = gql(fake, '{ orders(first: 1, filter: {}, where: {}) { totalCount } }').json()
    assert both["errors"][0]["message"] == "Only one filtering argument (filter or where) can be specified."


def test_orders_connection_arguments_are_checked(fake: FakeSaleor) -> None:
    no_first = gql(fake, "{ orders { totalCount } }").json()
    assert "You must provide a `first` or `last` value" in no_first["errors"][0]["message"]
    too_many = gql(fake, "{ orders(first: 101) { totalCount } }").json()
    assert "exceeds the `first` limit of 100 records" in too_many["errors"][0]["message"]


def test_unimplemented_filters_fail_loudly(fake: FakeSaleor) -> None:
    body = gql(fake, '{ orders(first: 1, filter: {search: "x"}) { totalCount } }').json()
    assert body["errors"][0]["extensions"]["exception"]["code"] == "NotImplementedInFake"


def test_the_same_orders_query_works_on_3_20(fake_320: FakeSaleor) -> None:
    add_orders(fake_320)
    variables = {"first": 2, "filter": {"updatedAt": {"gte": "2026-01-01T00:00:00Z"},
                                        "channels": [fake_320.channel("default-channel")["id"]]}}
    response = gql(fake_320, ORDER_FILTER_QUERY, variables)
    assert response.status_code == 200, response.text
    assert numbers(response.json()) == ["6", "4"]
    where = gql(fake_320, "{ orders(first: 1, where: {}) { totalCount } }")
    assert where.status_code == 400  # `where` is 3.22+


# --- app problems ------------------------------------------------------------------------------------------

PROBLEM_CREATE = """
mutation($input: AppProblemCreateInput!) {
  appProblemCreate(input: $input) { appProblem { id key message count isCritical } errors { field code message } }
}
"""
PROBLEM_DISMISS = """
mutation($keys: [String!]) { appProblemDismiss(input: {byApp: {keys: $keys}}) { errors { field code message } } }
"""


def test_app_problems_on_3_23(fake: FakeSaleor) -> None:
    first = gql(fake, PROBLEM_CREATE, {"input": {"message": "VTmarketing rejects the API key", "key": "vtm-auth"}})
    assert first.status_code == 200
    created = first.json()["data"]["appProblemCreate"]
    assert created["errors"] == [] and created["appProblem"]["count"] == 1
    again_input = {"message": "still rejected", "key": "vtm-auth", "criticalThreshold": 2}
    again = gql(fake, PROBLEM_CREATE, {"input": again_input})
    problem = again.json()["data"]["appProblemCreate"]["appProblem"]
    assert (problem["count"], problem["isCritical"], problem["id"]) == (2, True, created["appProblem"]["id"])
    assert fake.problems == {"vtm-auth": "still rejected"}
    assert [call["mutation"] for call in fake.problem_calls] == ["appProblemCreate", "appProblemCreate"]
    short = gql(fake, PROBLEM_CREATE, {"input": {"message": "no", "key": "vtm-auth"}}).json()
    assert short["data"]["appProblemCreate"]["errors"][0]["field"] == "message"
    dismissed = gql(fake, PROBLEM_DISMISS, {"keys": ["vtm-auth"]})
    assert dismissed.json()["data"]["appProblemDismiss"]["errors"] == []
    assert fake.problems == {}
    assert fake.problem_calls[-1] == {"mutation": "appProblemDismiss", "input": {"byApp": {"keys": ["vtm-auth"]}}}


def test_app_problems_need_the_app_token(fake: FakeSaleor) -> None:
    body = gql(fake, PROBLEM_CREATE, {"input": {"message": "hello", "key": "k-1"}}, token=None).json()
    assert body["data"] == {"appProblemCreate": None}
    assert body["errors"][0]["extensions"]["exception"]["code"] == "PermissionDenied"
    assert fake.problems == {}


def test_3_20_rejects_app_problem_mutations(fake_320: FakeSaleor) -> None:
    for query, variables in ((PROBLEM_CREATE, {"input": {"message": "hello", "key": "k-1"}}),
                             (PROBLEM_DISMISS, {"keys": ["k-1"]})):
        response = gql(fake_320, query, variables)
        assert response.status_code == 400
        assert "data" not in response.json()
        assert response.json()["errors"][0]["extensions"]["exception"]["code"] == "GraphQLError"
    assert fake_320.problem_calls == []
    assert gql(fake_320, "{ shop { version } }").json()["data"]["shop"]["version"] == "3.20.119"
