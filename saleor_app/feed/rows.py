"""A product of the channel becomes its feed rows (pure: no I/O, no clock).

One row per item id, the id computed by `item_ids.item_id` under the channel's item-id choice, exactly as the
confirmation event computes it for an order line of that variant. Variants that share an id (every variant under
`product-id`, say) share a row; a variant whose product lacks the chosen field falls back to its SKU, then its
variant id, as the events do, so it gets a row of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from saleor_app.feed.products import CatalogueProduct, CatalogueVariant, Money, attribute_values
from saleor_app.feed.text import DESCRIPTION_LIMIT, description_text, one_line
from saleor_app.feed.url_template import ProductUrlTemplate
from saleor_app.vtmarketing.item_ids import item_id, normalise_id
from saleor_app.vtmarketing.mapping import currency_exponent

FEED_HEADER: tuple[str, ...] = (
    "ID", "Product title", "Product URL", "Categories IDs", "Categories Titles", "Description", "Price",
    "DiscountPrice", "Photos", "Color", "Brand", "Stock", "Main",
)
TITLE_SEPARATOR = " - "


@dataclass(frozen=True)
class FeedOptions:
    """How one channel's feed is written."""

    channel: str
    item_id: str  # the channel's item-id choice (ChannelSettings.item_id)
    url_template: ProductUrlTemplate
    color_attribute: str | None = None
    brand_attribute: str | None = None
    description_limit: int = DESCRIPTION_LIMIT


@dataclass(frozen=True)
class FeedRow:
    id: str
    title: str
    url: str
    category_ids: str
    category_titles: str
    description: str
    price: Decimal
    discount_price: Decimal | int  # 0 when there is no discount, as the vendor asks
    photos: str
    color: str
    brand: str
    stock: int
    main: int

    def cells(self) -> list[Any]:
        """Cells in FEED_HEADER order: text as str (quoted by the writer), numbers as Decimal/int (left bare)."""
        return [self.id, self.title, self.url, self.category_ids, self.category_titles, self.description, self.price,
                self.discount_price, self.photos, self.color, self.brand, self.stock, self.main]


@dataclass(frozen=True)
class _Identifiers:
    """What item_id() reads, for one variant of a product (the same fields an order line of it carries)."""

    sku: str | None
    variant_id: str | None
    product_id: str | None
    variant_external_reference: str | None
    product_external_reference: str | None


def _amount(money: Money | None) -> Decimal | None:
    if money is None or money.amount is None:
        return None
    try:
        value = Decimal(repr(float(money.amount)))
        if not value.is_finite() or value < 0:
            return None
        return value.quantize(Decimal(1).scaleb(-currency_exponent(money.currency)), rounding=ROUND_HALF_UP)
    except (InvalidOperation, ValueError, OverflowError):
        return None


def _prices(variant: CatalogueVariant) -> tuple[Decimal, Decimal] | None:
    """(undiscounted, discounted) gross in the channel; None when the variant has no price there (not for sale)."""
    pricing = variant.pricing
    if pricing is None:
        return None
    current = _amount(pricing.price.gross if pricing.price else None)
    undiscounted = _amount(pricing.price_undiscounted.gross if pricing.price_undiscounted else None)
    if undiscounted is None:
        undiscounted = current
    if undiscounted is None:
        return None
    return undiscounted, current if current is not None else undiscounted


def variant_stock(variant: CatalogueVariant) -> int:
    """What can be bought in the channel: the channel's stocks minus what is allocated or reserved. A variant whose
    stock Saleor does not track is sold without limit: Saleor's per-checkout quantity then stands for it."""
    if variant.track_inventory is False or variant.stocks is None:
        return max(0, variant.quantity_available or 0)
    return sum(max(0, s.quantity - s.quantity_allocated - s.quantity_reserved) for s in variant.stocks if s)


def _listing(values: list[str]) -> str:
    """Comma-separated, as the vendor lists several categories or photos; a comma inside one value is dropped so
    the list stays readable (and IDs and titles stay paired)."""
    return ",".join(one_line(value.replace(",", " ")) for value in values if one_line(value))


def _photos(product: CatalogueProduct) -> str:
    # Every image of the product, in Saleor's order; videos are left out (the column is for photos). A comma in a
    # URL is percent-encoded, which names the same resource.
    urls = [m.url.strip().replace(",", "%2C") for m in product.media or []
            if m and m.url and m.url.strip() and (m.type or "IMAGE") == "IMAGE"]
    return ",".join(urls)


def _attribute(name: str | None, variant: CatalogueVariant, product: CatalogueProduct) -> str:
    """The variant's values of the attribute, else the product's; names joined by ", "."""
    values = attribute_values(variant.attributes, name) or attribute_values(product.attributes, name)
    return one_line(", ".join(values))


def product_rows(product: CatalogueProduct, options: FeedOptions) -> list[FeedRow]:
    """The product's rows, in Saleor's variant order; none when the product cannot be bought in the channel."""
    if product.is_available_for_purchase is False:
        return []
    variants = [v for v in product.variants or [] if v is not None and _prices(v) is not None]
    if not variants:
        return []
    groups: dict[str, list[CatalogueVariant]] = {}
    for variant in variants:
        key = item_id(
            _Identifiers(variant.sku, variant.id, product.id, variant.external_reference, product.external_reference),
            options.item_id,
        )
        if key is not None:
            groups.setdefault(key, []).append(variant)
    if not groups:
        return []

    default_id = product.default_variant.id if product.default_variant else None
    main_key = next((key for key, members in groups.items() if any(v.id == default_id for v in members)),
                    next(iter(groups)))
    path = product.category.path() if product.category else []
    category_ids = ",".join(filter(None, (normalise_id(node.id) for node in path)))
    category_titles = _listing([node.name or "" for node in path])
    description = description_text(product.description, options.description_limit)
    photos = _photos(product)
    product_name = one_line(product.name)

    rows = []
    for key, members in groups.items():
        representative = next((v for v in members if v.id == default_id), members[0])
        undiscounted, discounted = _prices(representative)  # type: ignore[misc]  # filtered above
        if len(members) == len(variants):  # one product row (a single variant, or every variant under one id)
            title = product_name
        else:
            suffix = one_line(representative.name) or one_line(representative.sku)
            title = f"{product_name}{TITLE_SEPARATOR}{suffix}" if suffix else product_name
        url = options.url_template.render({
            "product_slug": product.slug, "product_id": product.id, "variant_id": representative.id,
            "sku": representative.sku, "channel": options.channel,
        })
        rows.append(FeedRow(
            id=key,
            title=title,
            url=url,
            category_ids=category_ids,
            category_titles=category_titles,
            description=description,
            price=undiscounted,
            discount_price=discounted if discounted < undiscounted else 0,
            photos=photos,
            color=_attribute(options.color_attribute, representative, product),
            brand=_attribute(options.brand_attribute, representative, product),
            stock=sum(variant_stock(v) for v in members),
            main=1 if key == main_key else 0,
        ))
    return rows
