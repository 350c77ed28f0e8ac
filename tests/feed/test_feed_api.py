"""The feed in the settings API (`POST /graphql`, dashboard token): what the page reads and changes."""

from __future__ import annotations

from saleor_app.worker_runtime import feed_scheduler
from tests.conftest import configure
from tests.feed.conftest import CHANNEL, TEMPLATE, Shop, fetch, parse
from tests.settings.test_api import gql, post_graphql

FEED_FIELDS = """channel enabled url productUrlTemplate colorAttribute brandAttribute refreshMinutes state stateText rows
  builtAt buildSeconds lastError lastErrorAt nextBuildAt
  consistency { checkedOrders ordersWithMissingItems message examples { orderNumber itemIds } }"""
FEED = f"query($channel: String!) {{ feed(channel: $channel) {{ {FEED_FIELDS} }} }}"
UPDATE = f"""mutation($input: FeedInput!) {{ updateFeed(input: $input) {{ ok feed {{ {FEED_FIELDS} }}
  errors {{ field code message }} }} }}"""
REBUILD = f"mutation($channel: String!) {{ rebuildFeed(channel: $channel) {{ ok feed {{ {FEED_FIELDS} }} errors {{ code message }} }} }}"
ROTATE = f"mutation($channel: String!) {{ rotateFeedUrl(channel: $channel) {{ ok feed {{ {FEED_FIELDS} }} errors {{ code message }} }} }}"
ATTRIBUTES = "query($channel: String!) { feedAttributes(channel: $channel) { items { slug name } error { code message } } }"
PREVIEW = """query($channel: String!, $template: String!) { feedUrlPreview(channel: $channel, template: $template) {
  url productName error } feedUrlPlaceholders { name description } }"""


async def update(running_app, saleor, **fields) -> dict:  # type: ignore[no-untyped-def]
    return (await gql(running_app, saleor, UPDATE, {"input": {"channel": CHANNEL, **fields}}))["updateFeed"]


async def test_a_channel_without_a_feed_is_off_with_no_url(running_app, installed) -> None:  # type: ignore[no-untyped-def]
    feed = (await gql(running_app, installed, FEED, {"channel": CHANNEL}))["feed"]
    assert feed["enabled"] is False and feed["url"] is None and feed["state"] == "off"
    assert feed["refreshMinutes"] == 60 and feed["consistency"] is None


async def test_turn_on_build_and_read_state(running_app, installed, shop: Shop) -> None:  # type: ignore[no-untyped-def]
    await configure(running_app, installed)
    result = await update(running_app, installed, enabled=True, productUrlTemplate=TEMPLATE, colorAttribute="color",
                          brandAttribute="brand", refreshMinutes=30)
    assert result["ok"] and result["errors"] == []
    feed = result["feed"]
    assert feed["enabled"] and feed["state"] == "waiting" and feed["refreshMinutes"] == 30
    assert feed["url"].startswith("http://127.0.0.1:8000/api/feeds/") and feed["url"].endswith(f"/{CHANNEL}.csv")
    assert (feed["colorAttribute"], feed["brandAttribute"]) == ("color", "brand")

    (built,) = await feed_scheduler(running_app.ctx).run_due()  # what the worker does within seconds
    assert built.ok
    feed = (await gql(running_app, installed, FEED, {"channel": CHANNEL}))["feed"]
    assert feed["state"] == "ready" and feed["rows"] == 5 and feed["builtAt"] and feed["buildSeconds"] >= 0
    assert feed["stateText"] == "5 rows." and feed["lastError"] is None
    assert feed["consistency"]["message"] == "No delivered orders to compare with the feed yet."
    assert len(parse((await fetch(running_app, feed["url"])).text)) == 5

    rebuilt = (await gql(running_app, installed, REBUILD, {"channel": CHANNEL}))["rebuildFeed"]
    assert rebuilt["ok"] and rebuilt["feed"]["nextBuildAt"]
    assert len(await feed_scheduler(running_app.ctx).run_due()) == 1

    rotated = (await gql(running_app, installed, ROTATE, {"channel": CHANNEL}))["rotateFeedUrl"]
    assert rotated["ok"] and rotated["feed"]["url"] != feed["url"]
    assert (await fetch(running_app, feed["url"])).status_code == 404
    assert (await fetch(running_app, rotated["feed"]["url"])).status_code == 200


async def test_bad_input_is_refused_next_to_its_field(running_app, installed, shop: Shop) -> None:  # type: ignore[no-untyped-def]
    # No API key yet, no template: the feed cannot be turned on.
    refused = await update(running_app, installed, enabled=True)
    fields = {e["field"]: e["message"] for e in refused["errors"]}
    assert not refused["ok"] and set(fields) == {"productUrlTemplate", "enabled"}
    assert "template" in fields["productUrlTemplate"] and "API key" in fields["enabled"]
    await configure(running_app, installed)
    for template, words in (
        ("https://shop.example.com/{slug}", "Unknown placeholder {slug}"),
        ("https://shop.example.com/{product_slug", "not closed"),
        ("https://shop.example.com/{product_slug!r}", "without a format"),
        ("shop.example.com/{product_slug}", "https://"),
        ("https://shop.example.com/my products/{sku}", "without spaces"),
    ):
        refused = await update(running_app, installed, enabled=True, productUrlTemplate=template)
        assert not refused["ok"], template
        (error,) = refused["errors"]
        assert error["field"] == "productUrlTemplate" and words in error["message"], (template, error)
    refused = await update(running_app, installed, enabled=True, productUrlTemplate=TEMPLATE, brandAttribute="maker")
    assert [(e["field"], "no product attribute 'maker'" in e["message"]) for e in refused["errors"]] == [("brandAttribute", True)]
    refused = await update(running_app, installed, refreshMinutes=1)
    assert refused["errors"][0]["field"] == "refreshMinutes"
    # Nothing of it was stored.
    assert (await gql(running_app, installed, FEED, {"channel": CHANNEL}))["feed"]["url"] is None
    # A channel with no feed cannot be rebuilt or rotated.
    for mutation, name in ((REBUILD, "rebuildFeed"), (ROTATE, "rotateFeedUrl")):
        answer = (await gql(running_app, installed, mutation, {"channel": CHANNEL}))[name]
        assert not answer["ok"] and answer["errors"][0]["code"] == "NO_FEED"


async def test_attribute_choices_and_the_url_preview_come_from_saleor(running_app, installed, shop: Shop) -> None:  # type: ignore[no-untyped-def]
    attributes = (await gql(running_app, installed, ATTRIBUTES, {"channel": CHANNEL}))["feedAttributes"]
    assert attributes["error"] is None
    assert attributes["items"] == [{"slug": "brand", "name": "Brand"}, {"slug": "color", "name": "Colour"},
                                   {"slug": "material", "name": "Material"}]
    answer = await gql(running_app, installed, PREVIEW, {"channel": CHANNEL, "template": TEMPLATE})
    preview = answer["feedUrlPreview"]
    assert preview["error"] is None and preview["productName"] == "Monospace Tee - S"  # the channel's first product
    assert preview["url"].startswith("https://shop.example.com/products/monospace-tee?variant=")
    assert {p["name"] for p in answer["feedUrlPlaceholders"]} == {"product_slug", "product_id", "variant_id", "sku", "channel"}
    bad = (await gql(running_app, installed, PREVIEW, {"channel": CHANNEL, "template": "https://x/{nope}"}))["feedUrlPreview"]
    assert bad["url"] is None and "Unknown placeholder {nope}" in bad["error"]


async def test_saleor_unreachable_for_attributes_and_preview(running_app, installed, shop: Shop) -> None:  # type: ignore[no-untyped-def]
    installed.graphql_status_override = 502
    attributes = (await gql(running_app, installed, ATTRIBUTES, {"channel": CHANNEL}))["feedAttributes"]
    assert attributes["items"] == [] and attributes["error"]["code"] == "SALEOR_UNREACHABLE"
    preview = (await gql(running_app, installed, PREVIEW, {"channel": CHANNEL, "template": TEMPLATE}))["feedUrlPreview"]
    assert preview["productName"] is None and preview["url"].startswith("https://shop.example.com/products/monospace-tee")
    await configure(running_app, installed)
    refused = await update(running_app, installed, enabled=True, productUrlTemplate=TEMPLATE, colorAttribute="color")
    assert refused["errors"][0]["field"] == "colorAttribute" and "could not be asked" in refused["errors"][0]["message"]


async def test_the_feed_api_needs_the_dashboard_token(running_app, installed) -> None:  # type: ignore[no-untyped-def]
    response = await post_graphql(running_app, installed, FEED, {"channel": CHANNEL}, token="")
    assert response.status_code == 401
    staff = installed.dashboard_token(user_permissions=["MANAGE_ORDERS"])
    assert (await post_graphql(running_app, installed, FEED, {"channel": CHANNEL}, token=staff)).status_code == 403


async def test_a_channel_no_database_could_hold_is_refused_not_looked_up(running_app, installed, shop: Shop) -> None:  # type: ignore[no-untyped-def]
    # PostgreSQL refuses NUL even as a query parameter: found by tests/hostile (`rebuildFeed(channel: "\u0000")`).
    for channel in ("\x00", "a\x00b", "x" * 256, ""):
        assert (await gql(running_app, installed, FEED, {"channel": channel}))["feed"]["url"] is None
        for mutation, name in ((REBUILD, "rebuildFeed"), (ROTATE, "rotateFeedUrl")):
            answer = (await gql(running_app, installed, mutation, {"channel": channel}))[name]
            assert answer["errors"] == [{"code": "NO_FEED", "message": "Choose a channel."}]
        refused = await update(running_app, installed, channel=channel, enabled=True, productUrlTemplate=TEMPLATE)
        assert [e["field"] for e in refused["errors"]] == ["channel"]
        preview = (await gql(running_app, installed, PREVIEW, {"channel": channel, "template": TEMPLATE}))["feedUrlPreview"]
        assert preview["error"] == "Choose a channel."
