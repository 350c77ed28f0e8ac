"""The catalogue the feed tests share (everything the issue lists), and helpers to turn a feed on, build it and
fetch it over HTTP like VTmarketing."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from saleor_app.feed.building import BuildResult
from saleor_app.feed.service import FeedService, FeedView
from saleor_app.storage.repositories import InstallationRepository
from tests.conftest import RunningApp, configure
from tests.fakes.catalogue import Listing, ProductRecord, VariantRecord, editorjs
from tests.fakes.saleor import FakeSaleor

CHANNEL = "default-channel"
TEMPLATE = "https://shop.example.com/products/{product_slug}?variant={variant_id}&sku={sku}"
HEADER = ('"ID";"Product title";"Product URL";"Categories IDs";"Categories Titles";"Description";"Price";'
          '"DiscountPrice";"Photos";"Color";"Brand";"Stock";"Main"')


@dataclass
class Shop:
    """The products of the shared catalogue, by role."""

    tee: ProductRecord  # several variants, default M, 3-level category, photos and a video, colour and brand
    sneaker: ProductRecord  # one variant; non-ASCII, `;` and `"` in the name
    mug: ProductRecord  # two variants, only one priced in the channel
    hat: ProductRecord  # unpublished
    scarf: ProductRecord  # hidden from listings
    gloves: ProductRecord  # available for purchase only tomorrow
    belt: ProductRecord  # never available for purchase
    socks: ProductRecord  # listed in channel-pln only

    @property
    def tee_s(self) -> VariantRecord:
        return self.tee.variants[0]

    @property
    def tee_m(self) -> VariantRecord:
        return self.tee.variants[1]

    @property
    def tee_l(self) -> VariantRecord:
        return self.tee.variants[2]

    @property
    def left_out(self) -> list[ProductRecord]:
        return [self.hat, self.scarf, self.gloves, self.belt, self.socks]


def stock_shop(saleor: FakeSaleor) -> Shop:
    c = saleor.catalogue
    c.add_attribute("color", "Colour")
    c.add_attribute("brand", "Brand")
    c.add_attribute("material", "Material")
    apparel = c.add_category("Apparel")
    men = c.add_category("Men", apparel)
    tshirts = c.add_category("T-shirts", men)
    shoes = c.add_category("Shoes")
    usd = {CHANNEL: Listing()}
    tee = c.add_product(
        "Monospace Tee", slug="monospace-tee", channels=usd, category=tshirts,
        description=editorjs('Soft "organic" cotton; made in Łódź.', "<b>Bold</b> &amp; comfy"),
        media=["https://media.example.com/tee/front.jpg", ("https://youtu.be/tee-video", "VIDEO"),
               "https://media.example.com/tee/back.jpg"],
        attributes={"brand": ["Acme"], "color": ["Black"]}, external_reference="ERP-TEE",
        default_variant=1,
        variants=[
            {"name": "S", "sku": "TEE-S", "external_reference": "ERP-TEE-S",
             "prices": {CHANNEL: (20.0, 15.0)}, "stocks": {"wh-americas": (10, 2, 1), "wh-europe": (5, 0, 0)},
             "attributes": {"color": ["Red"]}},
            {"name": "M", "sku": "Tee M", "prices": {CHANNEL: (20.0, None)}, "stocks": {"wh-americas": (0, 0, 0)},
             "attributes": {"color": ["Blue"]}},
            {"name": "L", "sku": None, "prices": {CHANNEL: (22.5, None)}, "track_inventory": False},
        ],
    )
    sneaker = c.add_product(
        'Zoë\'s "Best"; Sneaker', slug="zoes-best-sneaker", channels=usd, category=shoes,
        description=editorjs("Runs; jumps."), media=["https://media.example.com/sneaker.jpg"],
        attributes={"brand": ["Zoë & Co"]},
        variants=[{"name": "42", "sku": "SNK 42", "prices": {CHANNEL: (99.99, None)}, "stocks": {"wh-europe": (3, 0, 0)}}],
    )
    mug = c.add_product(
        "Mug", channels=usd, variants=[
            {"name": "White", "sku": "MUG-W", "prices": {CHANNEL: (8.0, None)}, "stocks": {"wh-americas": (4, 0, 0)}},
            {"name": "Black", "sku": "MUG-B", "prices": {"channel-pln": (30.0, None)}, "stocks": {"wh-europe": (4, 0, 0)}},
        ],
    )
    tomorrow = datetime.now(timezone.utc) + timedelta(days=1)
    one = [{"name": "One", "sku": None, "prices": {CHANNEL: (5.0, None), "channel-pln": (20.0, None)},
            "stocks": {"wh-europe": (9, 0, 0)}}]
    hat = c.add_product("Unpublished Hat", channels={CHANNEL: Listing(published=False)}, variants=[dict(one[0], sku="HAT")])
    scarf = c.add_product("Hidden Scarf", channels={CHANNEL: Listing(visible_in_listings=False)}, variants=[dict(one[0], sku="SCARF")])
    gloves = c.add_product("Future Gloves", channels={CHANNEL: Listing(available_for_purchase_at=tomorrow)},
                           variants=[dict(one[0], sku="GLOVES")])
    belt = c.add_product("Belt", channels={CHANNEL: Listing(available_for_purchase_at=None)}, variants=[dict(one[0], sku="BELT")])
    socks = c.add_product("Socks", channels=("channel-pln",), variants=[dict(one[0], sku="SOCKS")])
    return Shop(tee, sneaker, mug, hat, scarf, gloves, belt, socks)


@pytest.fixture
def shop(installed: FakeSaleor) -> Shop:
    return stock_shop(installed)


async def the_installation(running_app: RunningApp, saleor: FakeSaleor):  # type: ignore[no-untyped-def]
    async with running_app.ctx.db.session() as session:
        return await InstallationRepository(session).by_api_url(saleor.api_url)


async def turn_on(running_app: RunningApp, saleor: FakeSaleor, channel: str = CHANNEL, *, item_id: str | None = None,
                  **fields) -> FeedView:  # type: ignore[no-untyped-def]
    """The channel's key saved (and its item-id choice), then the feed on with the shared template."""
    await configure(running_app, saleor, channel, **({"item_id": item_id} if item_id else {}))
    fields.setdefault("product_url_template", TEMPLATE)
    for column in ("color", "brand"):  # the shared catalogue's attributes, when it has them
        if column in saleor.catalogue.attributes:
            fields.setdefault(f"{column}_attribute", column)
    installation = await the_installation(running_app, saleor)
    return await FeedService(running_app.ctx).update(installation, channel, enabled=True, **fields)


async def build(running_app: RunningApp, saleor: FakeSaleor, channel: str = CHANNEL) -> BuildResult:
    installation = await the_installation(running_app, saleor)
    return await FeedService(running_app.ctx).build_now(installation, channel)


async def view(running_app: RunningApp, saleor: FakeSaleor, channel: str = CHANNEL) -> FeedView:
    installation = await the_installation(running_app, saleor)
    return await FeedService(running_app.ctx).view(installation, channel)


async def fetch(running_app: RunningApp, url: str, **headers: str) -> httpx.Response:
    """GET the feed as VTmarketing would: no session, just the URL (httpx asks for gzip and decodes it)."""
    path = url.removeprefix(running_app.ctx.settings.app_url)
    return await running_app.client.get(path, headers=headers)


def parse(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline=""), delimiter=";"))


def by_id(rows: list[dict[str, str]]) -> dict[str, dict[str, str]]:
    ids = [row["ID"] for row in rows]
    assert len(ids) == len(set(ids)), f"duplicate ids: {ids}"
    return {row["ID"]: row for row in rows}
