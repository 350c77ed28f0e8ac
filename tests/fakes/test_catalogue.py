"""The fake Saleor's catalogue answers `products` and `attributes` like Saleor: who sees which products, the channel
context of nested data, Relay paging, permission gates, and errors for what it does not implement."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from graphql import parse

from saleor_app.saleor.documents import load_document
from tests.fakes.catalogue import Listing
from tests.fakes.saleor import FakeSaleor, _query_cost
from tests.feed.conftest import stock_shop

HTTP = httpx.Client(timeout=10)
NAMES = "query($c: String, $first: Int, $after: String, $where: ProductWhereInput) { products(channel: $c, first: $first, after: $after, where: $where) { totalCount edges { node { name } } pageInfo { hasNextPage endCursor } } }"


@pytest.fixture(scope="module", autouse=True)
def _close_http() -> Iterator[None]:
    yield
    HTTP.close()


@pytest.fixture(scope="module")
def running() -> Iterator[FakeSaleor]:
    with FakeSaleor() as saleor:
        yield saleor


@pytest.fixture
def fake(running: FakeSaleor) -> FakeSaleor:
    running.reset()
    stock_shop(running)
    return running


def ask(fake: FakeSaleor, query: str, variables: dict | None = None, token: str | None = "app") -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {fake.app_token if token == 'app' else token}"} if token else {}
    response = HTTP.post(fake.api_url, json={"query": query, "variables": variables or {}}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def names(answer: dict) -> set[str]:
    return {edge["node"]["name"] for edge in answer["data"]["products"]["edges"]}


def test_manage_orders_sees_every_listed_product_others_only_what_shoppers_see(fake: FakeSaleor) -> None:
    listed = {"Monospace Tee", 'Zoë\'s "Best"; Sneaker', "Mug", "Unpublished Hat", "Hidden Scarf", "Future Gloves", "Belt"}
    assert names(ask(fake, NAMES, {"c": "default-channel", "first": 100})) == listed  # the app, MANAGE_ORDERS
    shopper = names(ask(fake, NAMES, {"c": "default-channel", "first": 100}, token=None))
    assert shopper == listed - {"Unpublished Hat", "Hidden Scarf"}
    assert names(ask(fake, NAMES, {"c": "channel-pln", "first": 100})) == {"Socks"}  # listed per channel


def test_where_filters_what_a_shopper_can_buy(fake: FakeSaleor) -> None:
    where = {"isPublished": True, "isVisibleInListing": True, "isAvailable": True}
    assert names(ask(fake, NAMES, {"c": "default-channel", "first": 100, "where": where})) == {
        "Monospace Tee", 'Zoë\'s "Best"; Sneaker', "Mug"}
    assert names(ask(fake, NAMES, {"c": "default-channel", "first": 100, "where": {"isPublished": False}})) == {"Unpublished Hat"}
    unknown = ask(fake, NAMES, {"c": "default-channel", "first": 10, "where": {"giftCard": False}})
    assert unknown["data"]["products"] is None
    assert unknown["errors"][0]["extensions"]["exception"]["code"] == "NotImplementedInFake"


def test_relay_paging_by_slug_with_saleor_limits(fake: FakeSaleor) -> None:
    seen, after = [], None
    while True:
        page = ask(fake, NAMES, {"c": "default-channel", "first": 2, "after": after})["data"]["products"]
        seen += [edge["node"]["name"] for edge in page["edges"]]
        assert page["totalCount"] == 7
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert len(seen) == 7 == len(set(seen))
    too_many = ask(fake, NAMES, {"c": "default-channel", "first": 101})
    assert "exceeds the `first` limit of 100" in too_many["errors"][0]["message"]
    assert "must provide a `first`" in ask(fake, NAMES, {"c": "default-channel"})["errors"][0]["message"]


def test_nested_data_is_in_the_channels_context(fake: FakeSaleor) -> None:
    answer = ask(fake, load_document("feed_products.query.graphql"), {"channel": "default-channel", "first": 100})
    assert "errors" not in answer
    products = {edge["node"]["name"]: edge["node"] for edge in answer["data"]["products"]["edges"]}
    assert [v["name"] for v in products["Mug"]["variants"]] == ["White"]  # Black has no price in the channel
    tee = products["Monospace Tee"]
    s = tee["variants"][0]
    assert s["pricing"]["priceUndiscounted"]["gross"] == {"amount": 20.0, "currency": "USD"}
    assert s["pricing"]["price"]["gross"]["amount"] == 15.0
    assert sorted(x["quantity"] for x in s["stocks"]) == [5, 10]  # both warehouses ship for default-channel
    assert [a["node"]["name"] for a in tee["category"]["ancestors"]["edges"]] == ["Apparel", "Men"]
    assert [m["type"] for m in tee["media"]] == ["IMAGE", "VIDEO", "IMAGE"]
    assert tee["defaultVariant"]["id"] == tee["variants"][1]["id"]
    pln = ask(fake, load_document("feed_products.query.graphql"), {"channel": "channel-pln", "first": 100})
    (socks,) = [e["node"] for e in pln["data"]["products"]["edges"]]
    assert [(v["pricing"]["price"]["gross"], [x["quantity"] for x in v["stocks"]]) for v in socks["variants"]] == [
        ({"amount": 20.0, "currency": "PLN"}, [9])]  # the channel's price; wh-europe ships for channel-pln


def test_permission_gates(fake: FakeSaleor) -> None:
    stocks = "query { products(channel: \"default-channel\", first: 5) { edges { node { variants { stocks { quantity } } } } } }"
    anonymous = ask(fake, stocks, token=None)
    assert {e["extensions"]["exception"]["code"] for e in anonymous["errors"]} == {"PermissionDenied"}
    assert "errors" not in ask(fake, stocks)  # MANAGE_ORDERS may read stock
    listings = "query { products(channel: \"default-channel\", first: 5) { edges { node { channelListings { isPublished } } } } }"
    denied = ask(fake, listings)
    assert denied["errors"][0]["extensions"]["exception"]["code"] == "PermissionDenied"
    assert "MANAGE_PRODUCTS" in denied["errors"][0]["message"]
    fake.app_permissions.append("MANAGE_PRODUCTS")
    assert "errors" not in ask(fake, listings)


def test_attributes_by_type_and_page(fake: FakeSaleor) -> None:
    query = load_document("feed_attributes.query.graphql")
    answer = ask(fake, query, {"channel": "default-channel"})
    assert [e["node"]["slug"] for e in answer["data"]["attributes"]["edges"]] == ["brand", "color", "material"]
    page_types = ask(fake, "query { attributes(first: 10, where: {type: {eq: PAGE_TYPE}}) { edges { node { slug } } } }")
    assert page_types["data"]["attributes"]["edges"] == []


def test_the_feed_query_is_answered_by_a_3_20_saleor_and_costs_little() -> None:
    with FakeSaleor(schema_version="3.20", saleor_version="3.20.119") as old:
        stock_shop(old)
        answer = ask(old, load_document("feed_products.query.graphql"), {"channel": "default-channel", "first": 100})
        assert "errors" not in answer and len(answer["data"]["products"]["edges"]) == 3
        cost = answer["extensions"]["cost"]
        assert cost["requestedQueryCost"] < cost["maximumAvailable"]  # Saleor refuses queries above 50000
        document = parse(load_document("feed_products.query.graphql"))
        assert _query_cost(old.schema, document, {"first": 100}, None) == cost["requestedQueryCost"] > 100


def test_products_not_available_until_tomorrow_become_available(fake: FakeSaleor) -> None:
    where = {"isPublished": True, "isVisibleInListing": True, "isAvailable": True}
    product = next(p for p in fake.catalogue.products.values() if p.name == "Future Gloves")
    assert "Future Gloves" not in names(ask(fake, NAMES, {"c": "default-channel", "first": 100, "where": where}))
    product.listings["default-channel"] = Listing()
    assert "Future Gloves" in names(ask(fake, NAMES, {"c": "default-channel", "first": 100, "where": where}))
