"""The feed's pure parts: the product URL template, rich text to plain text, the CSV writer and its chunks, rows of
odd products, the schedule, and the HTTP validators."""

from __future__ import annotations

import csv
import gzip
import io
import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from saleor_app.feed.building import is_due
from saleor_app.feed.csv_file import FeedFileWriter
from saleor_app.feed.products import CatalogueProduct
from saleor_app.feed.rows import FEED_HEADER, FeedOptions, FeedRow, product_rows
from saleor_app.feed.serving import FeedFile, accepts_gzip
from saleor_app.feed.text import description_text, one_line
from saleor_app.feed.url_template import InvalidTemplate, ProductUrlTemplate
from saleor_app.storage.models import Feed

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


# --- the product URL template -------------------------------------------------------------------------------------


def test_template_renders_every_placeholder_percent_encoded() -> None:
    template = ProductUrlTemplate.parse(" https://shop.example.com/{channel}/p/{product_slug}?v={variant_id}&id={product_id}&s={sku} ")
    assert template.placeholders == {"channel", "product_slug", "variant_id", "product_id", "sku"}
    url = template.render({"channel": "default-channel", "product_slug": "tee", "variant_id": "VmFyOjE=",
                           "product_id": "UHJvZDox", "sku": "A/B 1"})
    assert url == "https://shop.example.com/default-channel/p/tee?v=VmFyOjE%3D&id=UHJvZDox&s=A%2FB%201"
    assert ProductUrlTemplate.parse("https://x.example/{{literal}}/{sku}").render({"sku": "1"}) == "https://x.example/{literal}/1"
    assert ProductUrlTemplate.parse("https://x.example/p").render({}) == "https://x.example/p"  # no placeholder is fine


@pytest.mark.parametrize(
    ("template", "words"),
    [
        ("", "Enter the URL"),
        ("https://x.example/{name}", "Unknown placeholder {name}"),
        ("https://x.example/{}", "Unknown placeholder {}"),
        ("https://x.example/{0}", "Unknown placeholder {0}"),
        ("https://x.example/{sku.upper}", "Unknown placeholder {sku.upper}"),
        ("https://x.example/{sku:>10}", "without a format"),
        ("https://x.example/{sku", "not closed"),
        ("https://x.example/sku}", "not closed"),
        ("ftp://x.example/{sku}", "https://"),
        ("/products/{sku}", "https://"),
        ("https://x.example/a b", "without spaces"),
        ("https://x.example/\x00{sku}", "without spaces"),
        ("https://x.example/" + "a" * 1000, "longer than"),
    ],
)
def test_bad_templates_are_refused_with_what_to_fix(template: str, words: str) -> None:
    with pytest.raises(InvalidTemplate) as error:
        ProductUrlTemplate.parse(template)
    assert words in str(error.value)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_property_any_template_text_is_parsed_or_refused_readably(text: str) -> None:
    try:
        template = ProductUrlTemplate.parse("https://shop.example.com/" + text)
    except InvalidTemplate as error:
        assert str(error)
        return
    url = template.render({"sku": "x y", "product_slug": "s", "product_id": "p", "variant_id": "v", "channel": "c"})
    assert url.startswith("https://shop.example.com/") and " " not in url


# --- text ---------------------------------------------------------------------------------------------------------


def test_editorjs_description_becomes_one_line_of_plain_text() -> None:
    description = json.dumps({"blocks": [
        {"type": "header", "data": {"text": "Big &amp; <i>bold</i>", "level": 2}},
        {"type": "paragraph", "data": {"text": "Line one<br>line two\nand\tthree"}},
        {"type": "list", "data": {"style": "unordered", "items": ["a", {"content": "b", "items": [{"content": "c", "items": []}]}]}},
        {"type": "quote", "data": {"text": "Q", "caption": "Who", "alignment": "left"}},
        {"type": "image", "data": {"file": {"url": "https://x/i.png"}, "caption": ""}},
    ]})
    assert description_text(description) == "Big & bold Line one line two and three a b c Q Who"


def test_description_edge_cases() -> None:
    assert description_text(None) == "" and description_text("") == "" and description_text("{}") == ""
    assert description_text("plain text, not JSON") == "plain text, not JSON"
    assert description_text(json.dumps("a JSON string")) == "a JSON string"
    long = json.dumps({"blocks": [{"type": "paragraph", "data": {"text": "word " * 500}}]})
    cut = description_text(long, limit=100)
    assert len(cut) <= 100 and cut.endswith("…") and not cut.endswith(" …")
    assert one_line("a\x00b\u2028c\r\n d ") == "a b c d"


# --- rows of odd products -----------------------------------------------------------------------------------------


OPTIONS = FeedOptions(channel="c", item_id="sku", url_template=ProductUrlTemplate.parse("https://s.example/{product_slug}"))


def product(**fields) -> CatalogueProduct:  # type: ignore[no-untyped-def]
    base = {"id": "UHJvZHVjdDox", "name": "P", "slug": "p", "isAvailableForPurchase": True, "variants": []}
    return CatalogueProduct.model_validate({**base, **fields})


def variant(vid: str, sku: str | None, price: float | None = 10.0, discounted: float | None = None, **fields) -> dict:  # type: ignore[no-untyped-def]
    pricing = None if price is None else {
        "priceUndiscounted": {"gross": {"amount": price, "currency": "USD"}},
        "price": {"gross": {"amount": discounted if discounted is not None else price, "currency": "USD"}},
    }
    return {"id": vid, "name": vid, "sku": sku, "pricing": pricing, **fields}


def test_products_without_anything_for_sale_give_no_rows() -> None:
    assert product_rows(product(variants=[variant("V1", "A", price=None)]), OPTIONS) == []
    assert product_rows(product(variants=None), OPTIONS) == []
    assert product_rows(product(isAvailableForPurchase=False, variants=[variant("V1", "A")]), OPTIONS) == []


def test_prices_are_rounded_to_the_currency_and_a_higher_discounted_price_is_no_discount() -> None:
    rows = product_rows(product(variants=[
        variant("V1", "A", 10.005, 9.994),
        variant("V2", "B", 10.0, 12.0),  # "discounted" above the price: not a discount
        {"id": "V3", "sku": "C", "pricing": {"price": {"gross": {"amount": 1500, "currency": "JPY"}}}},
    ]), OPTIONS)
    assert [(r.price, r.discount_price) for r in rows] == [
        (Decimal("10.01"), Decimal("9.99")), (Decimal("10.00"), 0), (Decimal("1500"), 0)]


def test_without_a_default_variant_the_first_row_is_main_and_stock_is_never_negative() -> None:
    rows = product_rows(product(variants=[
        variant("V1", "A", stocks=[{"quantity": 1, "quantityAllocated": 3, "quantityReserved": 0}]),
        variant("V2", "B", stocks=[{"quantity": 5, "quantityAllocated": 1, "quantityReserved": 1}]),
    ]), OPTIONS)
    assert [(r.main, r.stock) for r in rows] == [(1, 0), (0, 3)]


# --- the file -----------------------------------------------------------------------------------------------------


def row(i: int, title: str = "T") -> FeedRow:
    return FeedRow(id=f"id-{i}", title=title, url="https://s.example/p", category_ids="", category_titles="",
                   description='say "hi"; ok', price=Decimal("1.50"), discount_price=0, photos="", color="", brand="",
                   stock=i, main=1)


def test_the_writer_quotes_text_and_leaves_numbers_bare_and_chunks_a_gzip_stream() -> None:
    writer = FeedFileWriter(chunk_bytes=512)
    chunks: list[bytes] = []
    for start in range(0, 400, 40):
        writer.write(row(i, title=f"Zoë {i}") for i in range(start, start + 40))
        chunks += writer.full_chunks()
    assert all(len(c) == 512 for c in chunks)  # full chunks only, until the end
    chunks += writer.finish()
    assert len(chunks) > 2 and writer.gzip_bytes == sum(map(len, chunks)) and writer.rows == 400
    text = gzip.decompress(b"".join(chunks)).decode("utf-8")
    assert len(text.encode()) == writer.csv_bytes
    lines = text.split("\r\n")
    assert lines[0] == ";".join(f'"{name}"' for name in FEED_HEADER)
    assert lines[1] == '"id-0";"Zoë 0";"https://s.example/p";"";"";"say ""hi""; ok";1.50;0;"";"";"";0;1'
    parsed = list(csv.reader(io.StringIO(text, newline=""), delimiter=";"))
    assert len(parsed) == 401 and parsed[1][5] == 'say "hi"; ok'


# --- the schedule -------------------------------------------------------------------------------------------------


def feed(**fields) -> Feed:  # type: ignore[no-untyped-def]
    values = dict(refresh_minutes=60, rebuild_requested=False, build_lease_until=None, last_attempt_at=NOW - timedelta(minutes=10),
                  last_error=None, built_item_id="sku")
    values.update(fields)
    return Feed(**values)


def test_when_a_feed_is_due() -> None:
    assert not is_due(feed(), "sku", NOW)  # built 10 minutes ago, hourly
    assert is_due(feed(last_attempt_at=NOW - timedelta(minutes=61)), "sku", NOW)
    assert is_due(feed(last_attempt_at=None), "sku", NOW)  # never built
    assert is_due(feed(rebuild_requested=True), "sku", NOW)  # "Rebuild now"
    assert is_due(feed(), "variant-id", NOW)  # the events send other ids now
    assert not is_due(feed(last_error="x", last_attempt_at=NOW - timedelta(minutes=2)), "sku", NOW)
    assert is_due(feed(last_error="x", last_attempt_at=NOW - timedelta(minutes=6)), "sku", NOW)  # retried after 5 min
    assert not is_due(feed(rebuild_requested=True, build_lease_until=NOW + timedelta(seconds=30)), "sku", NOW)  # building


# --- HTTP validators ------------------------------------------------------------------------------------------------


def test_accept_encoding() -> None:
    assert accepts_gzip("gzip, deflate") and accepts_gzip("br;q=1.0, gzip;q=0.5") and accepts_gzip("*")
    assert not accepts_gzip(None) and not accepts_gzip("identity") and not accepts_gzip("gzip;q=0")
    assert not accepts_gzip("deflate, br") and not accepts_gzip("gzip;q=nonsense")


def test_conditional_requests() -> None:
    file = FeedFile(1, "c", 1, 1, 1, 1, 1, "ab" * 32, datetime(2026, 12, 1, 12, 0, 30, 500000, tzinfo=timezone.utc))
    assert file.last_modified == "Tue, 01 Dec 2026 12:00:30 GMT"
    assert file.not_modified(file.etag(False), None) and file.not_modified(f'W/{file.etag(True)}, "x"', None)
    assert file.not_modified("*", None) and not file.not_modified('"other"', file.last_modified)  # ETag wins
    assert file.not_modified(None, file.last_modified) and file.not_modified(None, "Wed, 02 Dec 2026 00:00:00 GMT")
    assert not file.not_modified(None, "Tue, 01 Dec 2026 12:00:29 GMT") and not file.not_modified(None, "yesterday")


def test_builds_relax_young_collections_and_the_last_one_restores_the_default() -> None:
    import gc

    from saleor_app.feed.building import YOUNG_COLLECTION_THRESHOLD, fewer_young_collections

    default = gc.get_threshold()
    with fewer_young_collections():
        assert gc.get_threshold()[0] == max(default[0], YOUNG_COLLECTION_THRESHOLD)
        with fewer_young_collections():  # two builds in one process, ending in any order
            pass
        assert gc.get_threshold()[0] == max(default[0], YOUNG_COLLECTION_THRESHOLD)
    assert gc.get_threshold() == default
