"""The product feed end to end: built from the fake Saleor (the real schema, over HTTP, through gql), stored in the
database, served at its secret URL, parsed back with Python's csv module, and compared with the events sent."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import func, select

from saleor_app.feed.consistency import problem_key
from saleor_app.feed.service import FeedService
from saleor_app.storage.models import FeedBuild, FeedChunk, FeedItem
from saleor_app.vtmarketing.item_ids import normalise_id
from saleor_app.worker_runtime import feed_scheduler
from tests.conftest import configure, place_order
from tests.fakes.catalogue import Listing
from tests.feed.conftest import (
    CHANNEL,
    HEADER,
    Shop,
    build,
    by_id,
    fetch,
    parse,
    the_installation,
    turn_on,
    view,
)


def lower(value: str) -> str:
    return value.lower()


def feed_requests(saleor) -> list[dict]:  # type: ignore[no-untyped-def]
    return [r for r in saleor.graphql_requests if r["query"] and "FeedProducts" in r["query"]]


async def built_feed(running_app, saleor, **fields) -> tuple[str, list[dict[str, str]], str]:  # type: ignore[no-untyped-def]
    """Turn on, build, download: (url, parsed rows, raw text)."""
    on = await turn_on(running_app, saleor, **fields)
    result = await build(running_app, saleor)
    assert result.ok, result.error
    response = await fetch(running_app, on.url)
    assert response.status_code == 200, response.text
    return on.url, parse(response.text), response.text


# --- the file -------------------------------------------------------------------------------------------------


async def test_every_column_of_the_served_feed(running_app, installed, shop: Shop) -> None:  # type: ignore[no-untyped-def]
    url, rows, text = await built_feed(running_app, installed)
    assert text.startswith(HEADER + "\r\n")  # the documented header, every name quoted
    assert list(rows[0]) == ["ID", "Product title", "Product URL", "Categories IDs", "Categories Titles", "Description",
                             "Price", "DiscountPrice", "Photos", "Color", "Brand", "Stock", "Main"]
    feed = by_id(rows)
    tee_l_id = lower(shop.tee_l.id)  # no SKU: the variant id, as the events fall back to it
    assert set(feed) == {"tee-s", "tee_m", tee_l_id, "snk_42", "mug-w"}  # SKUs normalised: lower case, spaces `_`

    s, m, l = feed["tee-s"], feed["tee_m"], feed[tee_l_id]
    # Several variants: the product name plus the variant name.
    assert (s["Product title"], m["Product title"], l["Product title"]) == (
        "Monospace Tee - S", "Monospace Tee - M", "Monospace Tee - L")
    assert s["Product URL"] == (f"https://shop.example.com/products/monospace-tee?variant={quote(shop.tee_s.id, safe='')}"
                                "&sku=TEE-S")
    assert m["Product URL"].endswith("&sku=Tee%20M") and l["Product URL"].endswith("&sku=")
    # The category and its ancestors, root first; ids normalised like every id.
    path = [shop.tee.category.parent.parent, shop.tee.category.parent, shop.tee.category]  # type: ignore[union-attr]
    assert s["Categories IDs"] == ",".join(lower(c.id) for c in path)
    assert s["Categories Titles"] == "Apparel,Men,T-shirts"
    assert s["Description"] == 'Soft "organic" cotton; made in Łódź. Bold & comfy'  # rich text → plain text
    # Price: undiscounted gross; DiscountPrice: the discounted gross when lower, else 0.
    assert (s["Price"], s["DiscountPrice"]) == ("20.00", "15.00")
    assert (m["Price"], m["DiscountPrice"]) == ("20.00", "0")
    assert (l["Price"], l["DiscountPrice"]) == ("22.50", "0")
    # Every image of the product (the video is not a photo), comma-separated.
    assert s["Photos"] == "https://media.example.com/tee/front.jpg,https://media.example.com/tee/back.jpg"
    # Color: the variant's value first, else the product's; Brand: the product's.
    assert (s["Color"], m["Color"], l["Color"]) == ("Red", "Blue", "Black")
    assert {s["Brand"], m["Brand"], l["Brand"]} == {"Acme"}
    # Stock in the channel's warehouses minus allocated and reserved; an untracked variant: Saleor's 50 per checkout.
    assert (s["Stock"], m["Stock"], l["Stock"]) == ("12", "0", "50")
    assert (s["Main"], m["Main"], l["Main"]) == ("0", "1", "0")  # M is the default variant

    sneaker = feed["snk_42"]
    assert sneaker["Product title"] == 'Zoë\'s "Best"; Sneaker'  # one variant: the product name alone
    assert (sneaker["Price"], sneaker["DiscountPrice"], sneaker["Stock"], sneaker["Main"]) == ("99.99", "0", "3", "1")
    assert sneaker["Brand"] == "Zoë & Co" and sneaker["Color"] == ""  # no colour: empty
    assert sneaker["Categories Titles"] == "Shoes" and sneaker["Description"] == "Runs; jumps."
    # Only one of the mug's variants is priced in the channel: a single row, titled by the product name.
    assert feed["mug-w"]["Product title"] == "Mug"

    # The format on the wire: `;`, text quoted with inner quotes doubled, numbers bare with a dot, UTF-8.
    line = next(line for line in text.splitlines() if line.startswith('"snk_42"'))
    assert line.startswith('"snk_42";"Zoë\'s ""Best""; Sneaker";"https://shop.example.com/products/zoes-best-sneaker?')
    assert line.endswith(';"Runs; jumps.";99.99;0;"https://media.example.com/sneaker.jpg";"";"Zoë & Co";3;1')


async def test_products_a_shopper_cannot_buy_are_left_out(running_app, installed, shop: Shop) -> None:  # type: ignore[no-untyped-def]
    # The app token's MANAGE_ORDERS shows every product listed in the channel: the app must filter them itself.
    async with httpx.AsyncClient() as client:
        answer = await client.post(installed.api_url, headers={"Authorization": f"Bearer {installed.app_token}"}, json={
            "query": "query($c: String!) { products(channel: $c, first: 100) { edges { node { name } } } }",
            "variables": {"c": CHANNEL}})
    names = {edge["node"]["name"] for edge in answer.json()["data"]["products"]["edges"]}
    assert {"Unpublished Hat", "Hidden Scarf", "Future Gloves", "Belt"} <= names  # Saleor would show them
    _, rows, text = await built_feed(running_app, installed)
    for product in shop.left_out:
        assert product.name not in text
    assert "MUG-B" not in text.upper()  # the variant without a price in the channel
    (query,) = feed_requests(installed)
    assert query["variables"]["channel"] == CHANNEL


async def test_one_query_per_page_of_products_never_one_per_product(running_app, installed) -> None:  # type: ignore[no-untyped-def]
    for i in range(230):
        installed.catalogue.add_product(f"Item {i:03d}", variants=[{"name": "One", "sku": f"ITEM-{i:03d}",
                                                                   "prices": {CHANNEL: (1.0 + i, None)}}])
    _, rows, _ = await built_feed(running_app, installed)
    assert sorted(row["ID"] for row in rows) == [f"item-{i:03d}" for i in range(230)]
    requests = feed_requests(installed)
    assert len(requests) == 3  # 100 + 100 + 30 products
    assert [r["variables"]["first"] for r in requests] == [100, 100, 100]
    assert requests[0]["variables"]["after"] is None and requests[1]["variables"]["after"]


# --- item ids: the feed lists what the events send -------------------------------------------------------------


@pytest.mark.parametrize(
    "choice", ["sku", "variant-id", "product-id", "variant-external-reference", "product-external-reference"]
)
async def test_every_item_id_an_event_sends_is_an_id_of_the_feed(running_app, installed, shop: Shop, worker, fake_vtm,
                                                                 choice: str) -> None:  # type: ignore[no-untyped-def]
    _, rows, _ = await built_feed(running_app, installed, item_id=choice)
    ids = {row["ID"] for row in rows}
    catalogue = installed.catalogue
    lines = [catalogue.order_line(v, q) for v, q in
             ((shop.tee_s, 1), (shop.tee_m, 2), (shop.tee_l, 1), (shop.sneaker.variants[0], 3), (shop.mug.variants[0], 1))]
    order = await place_order(running_app, installed, lines=lines)
    await worker.run_until_idle()
    (event,) = fake_vtm.events_for(order["number"])
    sent = [item["id"] for item in event.body["event"]["confirmation"]["items"]]
    assert sent and set(sent) <= ids, (sent, sorted(ids))
    if choice in ("product-id",):
        assert len(rows) == 3  # one row per product
        assert sent[0] == lower(shop.tee.id)
    if choice == "product-external-reference":
        assert "erp-tee" in ids and "snk_42" in ids  # the sneaker has none: its SKU, as in the event


async def test_product_level_ids_give_one_row_per_product(running_app, installed, shop: Shop) -> None:  # type: ignore[no-untyped-def]
    _, rows, _ = await built_feed(running_app, installed, item_id="product-id")
    tee = by_id(rows)[lower(shop.tee.id)]
    assert tee["Product title"] == "Monospace Tee"  # the row stands for every variant
    assert tee["Stock"] == "62" and tee["Main"] == "1"  # 12 + 0 + 50
    assert (tee["Price"], tee["Color"]) == ("20.00", "Blue")  # the default variant's
    assert "variant=" + quote(shop.tee_m.id, safe="") in tee["Product URL"]


async def test_changing_the_item_id_choice_rebuilds_the_feed_at_once(running_app, installed, shop: Shop) -> None:  # type: ignore[no-untyped-def]
    url, rows, _ = await built_feed(running_app, installed)
    scheduler = feed_scheduler(running_app.ctx)
    assert await scheduler.run_due() == []  # just built: not due for an hour
    await configure(running_app, installed, item_id="variant-id")
    (result,) = await scheduler.run_due()
    assert result.ok
    rows = parse((await fetch(running_app, url)).text)
    assert lower(shop.tee_s.id) in {row["ID"] for row in rows}


# --- serving ------------------------------------------------------------------------------------------------------


async def test_etag_last_modified_304_and_gzip(running_app, installed, shop: Shop) -> None:  # type: ignore[no-untyped-def]
    url, rows, text = await built_feed(running_app, installed)
    path = url.removeprefix(running_app.ctx.settings.app_url)
    plain = await running_app.client.get(path, headers={"Accept-Encoding": "identity"})
    assert plain.status_code == 200 and "content-encoding" not in plain.headers
    assert plain.headers["content-type"] == "text/csv; charset=utf-8"
    assert plain.text == text and int(plain.headers["content-length"]) == len(text.encode())
    zipped = await running_app.client.get(path, headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip" and zipped.headers["vary"] == "Accept-Encoding"
    assert gzip.decompress(await _raw(running_app, path)).decode() == text
    assert zipped.headers["etag"] != plain.headers["etag"]  # one validator per representation

    for headers in ({"If-None-Match": plain.headers["etag"]}, {"If-None-Match": zipped.headers["etag"]},
                    {"If-Modified-Since": plain.headers["last-modified"]}):
        again = await running_app.client.get(path, headers=headers)
        assert again.status_code == 304 and again.content == b"", headers
    changed = await running_app.client.get(path, headers={"If-None-Match": '"something-else"'})
    assert changed.status_code == 200 and changed.text == text
    head = await running_app.client.head(path, headers={"Accept-Encoding": "identity"})
    assert head.status_code == 200 and head.content == b"" and head.headers["etag"] == plain.headers["etag"]

    # A rebuild of the same catalogue gives the same bytes: the same ETag, so VTmarketing's copy stays valid.
    assert (await build(running_app, installed)).ok
    assert (await running_app.client.get(path, headers={"If-None-Match": plain.headers["etag"]})).status_code == 304
    # A change in Saleor gives a new file and a new ETag.
    installed.catalogue.add_product("New Cap", variants=[{"name": "One", "sku": "CAP", "prices": {CHANNEL: (7.0, None)}}])
    assert (await build(running_app, installed)).ok
    fresh = await running_app.client.get(path, headers={"If-None-Match": plain.headers["etag"]})
    assert fresh.status_code == 200 and '"cap"' in fresh.text


async def _raw(running_app, path: str) -> bytes:  # type: ignore[no-untyped-def]
    """The body exactly as sent (httpx would decode gzip)."""
    async with running_app.client.stream("GET", path, headers={"Accept-Encoding": "gzip"}) as response:
        return b"".join([chunk async for chunk in response.aiter_raw()])


async def test_before_the_first_build_503_with_retry_after(running_app, installed, shop: Shop, caplog) -> None:  # type: ignore[no-untyped-def]
    on = await turn_on(running_app, installed)
    with caplog.at_level(logging.DEBUG):
        response = await fetch(running_app, on.url)
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) > 0
    assert "first time" in response.json()["error"]["message"]
    app_logs = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("saleor_app"))
    assert "/api/feeds/{token}/{filename}" in app_logs  # the 503 is logged by its route…
    assert on.url.rsplit("/", 2)[1] not in app_logs  # …never with the token


async def test_wrong_token_unknown_channel_and_feed_off_are_the_same_404(running_app, installed, shop: Shop) -> None:  # type: ignore[no-untyped-def]
    url, _, _ = await built_feed(running_app, installed)
    base, token, filename = url.rsplit("/", 2)
    wrong_token = await fetch(running_app, f"{base}/{token[:-2]}xx/{filename}")
    unknown_channel = await fetch(running_app, f"{base}/{token}/no-such-channel.csv")
    not_csv = await fetch(running_app, f"{base}/{token}/{CHANNEL}.json")
    installation = await the_installation(running_app, installed)
    await FeedService(running_app.ctx).update(installation, CHANNEL, enabled=False)
    feed_off = await fetch(running_app, url)
    answers = [wrong_token, unknown_channel, not_csv, feed_off]
    assert {a.status_code for a in answers} == {404}
    assert len({a.content for a in answers}) == 1  # byte-identical bodies…
    assert len({tuple(sorted(a.headers.items())) for a in answers}) == 1  # …and headers: no hint of what was wrong
    assert token not in wrong_token.text


async def test_a_rotated_url_answers_404_and_the_new_one_serves(running_app, installed, shop: Shop) -> None:  # type: ignore[no-untyped-def]
    url, _, text = await built_feed(running_app, installed)
    installation = await the_installation(running_app, installed)
    rotated = await FeedService(running_app.ctx).rotate(installation, CHANNEL)
    assert rotated.url != url and rotated.url.endswith(f"/{CHANNEL}.csv")
    assert (await fetch(running_app, url)).status_code == 404
    new = await fetch(running_app, rotated.url)
    assert new.status_code == 200 and new.text == text


async def test_the_token_is_random_and_stored_hashed_and_encrypted(running_app, installed, shop: Shop, settings) -> None:  # type: ignore[no-untyped-def]
    on = await turn_on(running_app, installed)
    token = on.url.rsplit("/", 2)[1]
    assert len(token) >= 32  # 24 random bytes, URL-safe base64: 192 bits
    other = await turn_on(running_app, installed, "channel-pln")
    assert other.url.rsplit("/", 2)[1] != token  # per channel
    if settings.is_sqlite:
        raw = open(settings.resolved_database_url.split("///", 1)[1], "rb").read()
        assert token.encode() not in raw


# --- building -----------------------------------------------------------------------------------------------------


async def test_saleor_down_mid_build_keeps_the_previous_feed_and_shows_why(running_app, installed) -> None:  # type: ignore[no-untyped-def]
    for i in range(350):
        installed.catalogue.add_product(f"Item {i:03d}", variants=[{"name": "One", "sku": f"ITEM-{i:03d}",
                                                                   "prices": {CHANNEL: (1.0, None)}}])
    url, rows, text = await built_feed(running_app, installed)
    etag = (await fetch(running_app, url)).headers["etag"]
    installed.catalogue.add_product("Newer", variants=[{"name": "One", "sku": "NEWER", "prices": {CHANNEL: (1.0, None)}}])
    start = installed.catalogue.pages_answered

    def down_after_two_pages(answered: int) -> None:
        if answered == start + 1:  # while answering this build's second page: Saleor is down from the next request
            installed.graphql_status_override = 503

    installed.catalogue.on_page = down_after_two_pages
    result = await build(running_app, installed)
    assert not result.ok and "503" in (result.error or "")
    # The first build's 4 pages, then this one's 2 before Saleor went down (the 503 came before reading the query).
    assert len(feed_requests(installed)) == 4 + 2 and installed.graphql_requests[-1]["query"] is None
    served = await fetch(running_app, url)
    assert served.status_code == 200 and served.text == text and served.headers["etag"] == etag  # the previous file
    shown = await view(running_app, installed)
    assert shown.state == "error" and "HTTP 503" in shown.last_error and shown.rows == len(rows)
    assert "previous feed is still served" in shown.state_text
    async with running_app.ctx.db.session() as session:  # nothing half-built is left behind
        assert await session.scalar(select(func.count()).select_from(FeedBuild)) == 1

    installed.graphql_status_override = None
    installed.catalogue.on_page = None
    assert (await build(running_app, installed)).ok
    assert '"newer"' in (await fetch(running_app, url)).text
    assert (await view(running_app, installed)).state == "ready"


async def test_the_scheduler_builds_due_feeds_and_waits_for_their_interval(running_app, installed, shop: Shop) -> None:  # type: ignore[no-untyped-def]
    on = await turn_on(running_app, installed)
    scheduler = feed_scheduler(running_app.ctx)
    (result,) = await scheduler.run_due()
    assert result.ok and result.rows == 5
    assert await scheduler.run_due() == []  # built: next in refresh_minutes
    installation = await the_installation(running_app, installed)
    await FeedService(running_app.ctx).request_rebuild(installation, CHANNEL)  # "Rebuild now"
    (again,) = await scheduler.run_due()
    assert again.ok
    assert (await fetch(running_app, on.url)).status_code == 200


async def test_superseded_files_are_pruned_and_ids_kept_only_for_the_current_one(running_app, installed, shop: Shop) -> None:  # type: ignore[no-untyped-def]
    await built_feed(running_app, installed)
    for _ in range(3):
        assert (await build(running_app, installed)).ok
    async with running_app.ctx.db.session() as session:
        statuses = sorted(await session.scalars(select(FeedBuild.status)))
        assert statuses == ["current", "superseded"]  # the previous file stays for downloads under way
        current = await session.scalar(select(FeedBuild.id).where(FeedBuild.status == "current"))
        assert set(await session.scalars(select(FeedItem.build_id))) == {current}
        assert await session.scalar(select(func.count()).select_from(FeedChunk)) == 2


async def test_a_big_file_is_stored_and_streamed_in_many_chunks(running_app, installed) -> None:  # type: ignore[no-untyped-def]
    from saleor_app.feed.building import FeedBuilder

    for i in range(300):
        installed.catalogue.add_product(f"Item {i:03d}", description=json.dumps({"blocks": [
            {"type": "paragraph", "data": {"text": f"Item {i} " + "lorem ipsum dolor " * (i % 17)}}]}),
            variants=[{"name": "One", "sku": f"ITEM-{i:03d}", "prices": {CHANNEL: (1.0 + i, None)}}])
    on = await turn_on(running_app, installed)
    ctx = running_app.ctx
    small = FeedBuilder(ctx.db, ctx.saleor, ctx.secrets, ctx.metrics, chunk_bytes=1024, batch_rows=50)
    result = await FeedService(ctx, builder=small).build_now(await the_installation(running_app, installed), CHANNEL)
    assert result.ok and result.rows == 300
    async with ctx.db.session() as session:
        assert await session.scalar(select(func.count()).select_from(FeedChunk)) > 5
    path = on.url.removeprefix(ctx.settings.app_url)
    text = (await running_app.client.get(path, headers={"Accept-Encoding": "identity"})).text
    assert sorted(row["ID"] for row in parse(text)) == [f"item-{i:03d}" for i in range(300)]
    assert gzip.decompress(await _raw(running_app, path)).decode() == text


# --- consistency --------------------------------------------------------------------------------------------------


async def test_orders_with_items_missing_from_the_feed_are_shown_and_become_a_problem(
    running_app, installed, shop: Shop, worker
) -> None:  # type: ignore[no-untyped-def]
    await built_feed(running_app, installed)
    catalogue = installed.catalogue
    good = await place_order(running_app, installed, lines=[catalogue.order_line(shop.tee_s)])
    bad = await place_order(running_app, installed, lines=[catalogue.order_line(shop.tee_m),
                                                           catalogue.order_line(shop.hat.variants[0])])
    await worker.run_until_idle()
    shown = (await view(running_app, installed)).consistency
    assert shown is not None and (shown.checked, shown.with_missing) == (2, 1)
    assert shown.message == f"1 of the last 2 delivered orders had items missing from the feed: #{bad['number']} (hat)"
    assert f"#{good['number']}" not in shown.message

    installation = await the_installation(running_app, installed)
    service = FeedService(running_app.ctx)
    assert (await service.build_now(installation, CHANNEL)).ok
    assert problem_key(CHANNEL) not in installed.problems  # once could be a product added a minute ago
    assert (await service.build_now(installation, CHANNEL)).ok
    assert "1 of the last 2" in installed.problems[problem_key(CHANNEL)]  # persistent: in the dashboard (3.22+)

    shop.hat.listings[CHANNEL] = Listing()  # the merchant publishes the hat
    assert (await service.build_now(installation, CHANNEL)).ok
    assert (await view(running_app, installed)).consistency.with_missing == 0  # type: ignore[union-attr]
    assert problem_key(CHANNEL) not in installed.problems  # dismissed


# --- several workers ----------------------------------------------------------------------------------------------


async def test_two_workers_build_a_due_feed_once(running_app, installed, shop: Shop, settings) -> None:  # type: ignore[no-untyped-def]
    from saleor_app.context import AppContext

    await turn_on(running_app, installed)
    installed.graphql_latency = 0.2  # a build takes a while: both workers look while it runs
    other = AppContext.create(settings)  # a second process's context: its own engine and connections
    try:
        results = await asyncio.gather(feed_scheduler(running_app.ctx).run_due(), feed_scheduler(other).run_due())
    finally:
        await other.aclose()
    built = [r for batch in results for r in batch]
    assert len(built) == 1 and built[0].ok
    assert len(feed_requests(installed)) == 1  # one walk of the catalogue
    assert normalise_id("TEE-S") in (await fetch(running_app, (await view(running_app, installed)).url)).text  # type: ignore[arg-type]


# --- metrics ----------------------------------------------------------------------------------------------------


async def test_metrics_count_builds_rows_and_requests(running_app, installed, shop: Shop) -> None:  # type: ignore[no-untyped-def]
    url, _, _ = await built_feed(running_app, installed)  # one build, one 200
    await fetch(running_app, url.replace("/default-channel.csv", "/nope.csv"))  # 404
    installed.graphql_status_override = 503
    assert not (await build(running_app, installed)).ok
    text = (await running_app.client.get("/metrics")).text
    installation = await the_installation(running_app, installed)

    def value(line_start: str) -> float:
        (line,) = [line for line in text.splitlines() if line.startswith(line_start + " ")]
        return float(line.rsplit(" ", 1)[1])

    assert value('vtm_feed_builds_total{outcome="ok"}') == 1
    assert value('vtm_feed_builds_total{outcome="failed"}') == 1
    assert value("vtm_feed_build_seconds_count") == 1 and value("vtm_feed_build_seconds_sum") > 0
    assert value(f'vtm_feed_rows{{channel="{CHANNEL}",installation="{installation.id}"}}') == 5
    assert value('vtm_feed_requests_total{status="200"}') == 1
    assert value('vtm_feed_requests_total{status="404"}') == 1
    assert url.rsplit("/", 2)[1] not in text  # the token is never a label
