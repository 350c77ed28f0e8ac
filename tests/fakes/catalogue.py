"""The fake Saleor's catalogue: products, variants, pricing per channel, stock per warehouse, media, categories
with ancestors, attributes, and the published / visible / available flags of each channel listing.

It answers the root fields `products` and `attributes` the way Saleor does, through FakeSaleor's real-schema
execution (so a query the real schema rejects is rejected here):

- `products(channel:)` lists the products listed in that channel. A caller with MANAGE_ORDERS, MANAGE_DISCOUNTS or
  MANAGE_PRODUCTS sees EVERY listed product (unpublished, hidden, not yet available ones included), as the schema's
  text says; anyone else sees the published ones visible in listings. `where` / `filter` support `isPublished`,
  `isVisibleInListing` and `isAvailable`; anything else is answered with an error naming it (never ignored).
- Relay paging like Saleor's: `first`/`last` capped at 100, cursors of the sort key (the slug, Saleor's default).
- Nested data in the channel's context: `variants` are the ones with a price in the channel, `pricing` is the
  channel's (undiscounted and discounted gross), `stocks` the channel's warehouses, `quantityAvailable` capped at
  Saleor's per-checkout 50, `isAvailableForPurchase` the listing's date against now, `category.ancestors` root first.
- Permission gates as the schema documents them (`CATALOGUE_FIELD_GATES`): stock quantities need MANAGE_ORDERS or
  MANAGE_PRODUCTS, `Product.channelListings` needs MANAGE_PRODUCTS.

Tests build products with `add_product(...)`, or a big catalogue with `generate(...)` (the benchmark), and order
lines of catalogue variants with `order_line(...)`.
"""

from __future__ import annotations

import base64
import bisect
import json
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from graphql import GraphQLError

__all__ = ["CATALOGUE_COSTS", "CATALOGUE_FIELD_GATES", "Catalogue", "ProductRecord", "VariantRecord"]

ALL_PRODUCTS_PERMISSIONS = ("MANAGE_ORDERS", "MANAGE_DISCOUNTS", "MANAGE_PRODUCTS")
MAX_CONNECTION_LIMIT = 100
MAX_CHECKOUT_LINE_QUANTITY = 50  # Saleor's default limit per checkout line, what quantityAvailable is capped at

CATALOGUE_FIELD_GATES: dict[tuple[str, str], tuple[str, ...]] = {
    ("ProductVariant", "stocks"): ("MANAGE_PRODUCTS", "MANAGE_ORDERS"),
    ("Stock", "quantity"): ("MANAGE_PRODUCTS", "MANAGE_ORDERS"),
    ("Stock", "quantityAllocated"): ("MANAGE_PRODUCTS", "MANAGE_ORDERS"),
    ("Stock", "quantityReserved"): ("MANAGE_PRODUCTS", "MANAGE_ORDERS"),
    ("Product", "channelListings"): ("MANAGE_PRODUCTS",),
    ("ProductVariant", "channelListings"): ("AUTHENTICATED_APP", "AUTHENTICATED_STAFF_USER"),
    ("ProductVariant", "quantityOrdered"): ("MANAGE_PRODUCTS",),
    ("ProductVariant", "revenue"): ("MANAGE_PRODUCTS",),
    ("ProductVariant", "digitalContent"): ("MANAGE_PRODUCTS",),
    ("Product", "taxClass"): ("AUTHENTICATED_STAFF_USER", "AUTHENTICATED_APP"),
}

# The part of Saleor's COST_MAP (saleor/graphql/query_cost_map.py) the catalogue's fields add: (complexity,
# multiplied by first/last). Merged into FakeSaleor's map.
CATALOGUE_COSTS: dict[str, dict[str, tuple[int, bool]]] = {
    "Query": {"products": (1, True), "attributes": (1, True), "product": (1, False), "category": (1, False)},
    "Category": {"ancestors": (1, True), "children": (1, True), "parent": (1, False), "products": (1, True)},
    "ProductVariant": {"quantityAvailable": (1, False), "stocks": (1, False)},
}


def _error(message: str, code: str = "GraphQLError") -> GraphQLError:
    return GraphQLError(message, extensions={"exception": {"code": code}})


def _not_implemented(what: str) -> GraphQLError:
    return _error(f"FakeSaleor does not implement {what}", "NotImplementedInFake")


def _global_id(type_name: str, pk: object) -> str:
    return base64.b64encode(f"{type_name}:{pk}".encode()).decode("ascii")


def _money(amount: float, currency: str) -> dict[str, Any]:
    return {"amount": round(float(amount), 2), "currency": currency}


def _taxed(gross: float, currency: str) -> dict[str, Any]:
    return {"gross": _money(gross, currency), "net": _money(gross, currency), "tax": _money(0.0, currency),
            "currency": currency}


def _now() -> datetime:
    return datetime.now(timezone.utc)


def editorjs(*paragraphs: str) -> str:
    """A Saleor rich-text description (Editor.js JSON, as `Product.description` returns it)."""
    blocks = [{"id": f"b{i}", "type": "paragraph", "data": {"text": text}} for i, text in enumerate(paragraphs)]
    return json.dumps({"time": 1700000000000, "blocks": blocks, "version": "2.24.3"})


# --- records: the catalogue's own model (not GraphQL shapes) -----------------------------------------------------


@dataclass
class Listing:
    """A product's channel listing."""

    published: bool = True
    visible_in_listings: bool = True
    available_for_purchase_at: datetime | None = field(default_factory=lambda: _now() - timedelta(days=1))


@dataclass
class CategoryRecord:
    pk: int
    name: str
    slug: str
    parent: CategoryRecord | None = None

    @property
    def id(self) -> str:
        return _global_id("Category", self.pk)

    def ancestors(self) -> list[CategoryRecord]:
        chain, node = [], self.parent
        while node is not None:
            chain.append(node)
            node = node.parent
        return list(reversed(chain))  # root first, like MPTT's get_ancestors()


@dataclass
class VariantRecord:
    pk: int
    name: str
    sku: str | None
    external_reference: str | None = None
    # channel slug -> (price, discounted price or None); a variant is for sale in the channels it has a price in
    prices: dict[str, tuple[float, float | None]] = field(default_factory=dict)
    # warehouse -> (quantity, allocated, reserved)
    stocks: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    attributes: dict[str, list[str]] = field(default_factory=dict)
    track_inventory: bool = True

    @property
    def id(self) -> str:
        return _global_id("ProductVariant", self.pk)


@dataclass
class ProductRecord:
    pk: int
    name: str
    slug: str
    listings: dict[str, Listing]
    variants: list[VariantRecord]
    category: CategoryRecord | None = None
    description: str | None = None
    media: list[tuple[str, str]] = field(default_factory=list)  # (url, IMAGE|VIDEO)
    attributes: dict[str, list[str]] = field(default_factory=dict)
    external_reference: str | None = None
    default_variant_pk: int | None = None
    created: datetime = field(default_factory=_now)

    @property
    def id(self) -> str:
        return _global_id("Product", self.pk)


# --- the catalogue -------------------------------------------------------------------------------------------


class Catalogue:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.products: dict[int, ProductRecord] = {}
        self.categories: dict[int, CategoryRecord] = {}
        self.attributes: dict[str, str] = {}  # product attribute slug -> name
        # warehouse -> the channels it ships for (Saleor links warehouses to channels)
        self.warehouses: dict[str, set[str]] = {
            "wh-americas": {"default-channel"},
            "wh-europe": {"default-channel", "channel-pln"},
        }
        self._next_pk = 100
        self._sorted: list[ProductRecord] | None = None
        self._slugs: list[str] = []
        # Called in the server thread, while a `products` page is answered, with the number of pages answered before
        # it: a switch it flips (e.g. FakeSaleor.graphql_status_override) takes effect from the next request on.
        self.on_page: Callable[[int], None] | None = None
        self.pages_answered = 0

    def _pk(self) -> int:
        with self._lock:
            self._next_pk += 1
            return self._next_pk

    # -- building it ------------------------------------------------------------------------------------------

    def add_category(self, name: str, parent: CategoryRecord | None = None, slug: str | None = None) -> CategoryRecord:
        record = CategoryRecord(self._pk(), name, slug or name.lower().replace(" ", "-"), parent)
        with self._lock:
            self.categories[record.pk] = record
        return record

    def add_attribute(self, slug: str, name: str) -> None:
        with self._lock:
            self.attributes[slug] = name

    def add_product(
        self,
        name: str,
        *,
        variants: Iterable[Mapping[str, Any]],
        slug: str | None = None,
        channels: Mapping[str, Listing] | Iterable[str] = ("default-channel",),
        category: CategoryRecord | None = None,
        description: str | None = None,
        media: Iterable[tuple[str, str] | str] = (),
        attributes: Mapping[str, list[str]] | None = None,
        external_reference: str | None = None,
        default_variant: int | None = 0,
    ) -> ProductRecord:
        """A product listed in `channels` (slugs: published, visible, available since yesterday; or Listings).
        `variants`: dicts of VariantRecord fields but pk (e.g. {"name": "M", "sku": "A-M", "prices":
        {"default-channel": (20.0, None)}, "stocks": {"wh-americas": (5, 0, 0)}}). `default_variant`: the index of
        the default variant, None for none."""
        listings = dict(channels) if isinstance(channels, Mapping) else {slug: Listing() for slug in channels}
        variant_records = [VariantRecord(pk=self._pk(), **dict(v)) for v in variants]
        record = ProductRecord(
            pk=self._pk(), name=name, slug=slug or name.lower().replace(" ", "-"), listings=listings,
            variants=variant_records, category=category, description=description,
            media=[(m, "IMAGE") if isinstance(m, str) else m for m in media], attributes=dict(attributes or {}),
            external_reference=external_reference,
            default_variant_pk=variant_records[default_variant].pk if default_variant is not None and variant_records else None,
        )
        with self._lock:
            self.products[record.pk] = record
            self._sorted = None
        return record

    def generate(self, variants: int, *, per_product: int = 4, channel: str = "default-channel",
                 currency_decimals: int = 2) -> int:
        """A big catalogue for benchmarks: `variants` variants, `per_product` per product, every product for sale
        in `channel` with a 3-level category, two photos, a colour and a brand. Returns the products made."""
        self.add_attribute("color", "Color")
        self.add_attribute("brand", "Brand")
        root = self.add_category("Apparel")
        categories = [self.add_category(f"Line {i}", self.add_category(f"Group {i}", root)) for i in range(20)]
        made = 0
        for start in range(0, variants, per_product):
            n = made
            count = min(per_product, variants - start)
            self.add_product(
                f"Product {n:06d}",
                slug=f"product-{n:06d}",
                channels=(channel,),
                category=categories[n % len(categories)],
                description=editorjs(f"Product {n} is a <b>fine</b> thing.", "Made to last; washable."),
                media=[f"https://media.example.com/p/{n}/1.jpg", f"https://media.example.com/p/{n}/2.jpg"],
                attributes={"brand": [f"Brand {n % 50}"]},
                variants=[{
                    "name": f"Size {v}", "sku": f"SKU-{n:06d}-{v}",
                    "prices": {channel: (10.0 + (n % 90) + v, 9.0 + (n % 90) + v if n % 3 == 0 else None)},
                    "stocks": {"wh-americas": (10 + v, 1, 0)},
                    "attributes": {"color": [("Red", "Blue", "Green", "Black")[v % 4]]},
                } for v in range(count)],
            )
            made += 1
        return made

    # -- what orders of these variants look like ----------------------------------------------------------------

    def find_variant(self, variant_id: str) -> tuple[ProductRecord, VariantRecord]:
        for product in self.products.values():
            for variant in product.variants:
                if variant.id == variant_id:
                    return product, variant
        raise KeyError(variant_id)

    def order_line(self, variant: VariantRecord, quantity: int = 1, *, channel: str = "default-channel",
                   currency: str = "USD") -> dict[str, Any]:
        """An order line of a catalogue variant, shaped like FakeSaleor.make_line's (the OrderLines answer reads
        the same ids, SKU and external references the feed lists)."""
        product = next(p for p in self.products.values() if variant in p.variants)
        price = variant.prices.get(channel, (10.0, None))
        unit = price[1] if price[1] is not None else price[0]
        return {
            "id": _global_id("OrderLine", f"{variant.pk}-{self._pk()}"),
            "quantity": quantity,
            "productName": product.name,
            "variantName": variant.name,
            "productSku": variant.sku,
            "productVariantId": variant.id,
            "unitPrice": _taxed(unit, currency),
            "totalPrice": _taxed(unit * quantity, currency),
            "variant": {
                "id": variant.id,
                "sku": variant.sku,
                "externalReference": variant.external_reference,
                "product": {
                    "id": product.id, "name": product.name, "slug": product.slug,
                    "externalReference": product.external_reference,
                    "category": {"id": product.category.id, "name": product.category.name} if product.category else None,
                    "metadata": [],
                },
                "name": variant.name,
                "metadata": [],
            },
            "undiscountedUnitPrice": _taxed(price[0], currency),
            "undiscountedTotalPrice": _taxed(price[0] * quantity, currency),
            "unitDiscount": _money(price[0] - unit, currency),
            "quantityFulfilled": 0,
            "isShippingRequired": True,
            "metadata": [],
            "privateMetadata": [],
        }

    # -- GraphQL: products ---------------------------------------------------------------------------------------

    def resolve_products(self, requestor: Any, args: Mapping[str, Any], channels: list[dict[str, Any]]) -> dict:
        requestor.touch()
        sees_all = bool(requestor.permissions.intersection(ALL_PRODUCTS_PERMISSIONS))
        if args.get("search"):
            raise _not_implemented("products(search:)")
        if args.get("sortBy"):
            raise _not_implemented("products(sortBy:)")
        if args.get("filter") is not None and args.get("where") is not None:
            raise _error("Only one filtering argument (filter or where) can be specified.")
        _validate_connection_args("products", args)
        if self.on_page is not None:
            self.on_page(self.pages_answered)
        self.pages_answered += 1
        channel = args.get("channel")
        if channel is None:
            raise _not_implemented("products without `channel`")
        currency = next((c["currencyCode"] for c in channels if c["slug"] == channel), None)
        now = _now()
        tests = _listing_tests(args.get("where") or args.get("filter") or {}, now)
        with self._lock:
            if self._sorted is None:
                self._sorted = sorted(self.products.values(), key=lambda p: p.slug)
                self._slugs = [p.slug for p in self._sorted]
            ordered, slugs = self._sorted, self._slugs

        def visible(product: ProductRecord) -> bool:
            listing = product.listings.get(channel)
            if listing is None or currency is None:
                return False
            if not sees_all and not (listing.published and listing.visible_in_listings):
                return False
            return all(test(product, listing, channel) for test in tests)

        first = args.get("first")
        if first is not None and not args.get("before"):
            # Forward paging (what apps do) walks from the cursor and stops after one row more than the page.
            start = bisect.bisect_right(slugs, _decode(args["after"])) if args.get("after") else 0
            page: list[ProductRecord] = []
            for product in ordered[start:]:
                if visible(product):
                    page.append(product)
                    if len(page) > first:
                        break
            has_next = len(page) > first
            page = page[:first]
            cursors = [_cursor(p.slug) for p in page]
            page_info = {"hasNextPage": has_next, "hasPreviousPage": bool(args.get("after")),
                         "startCursor": cursors[0] if cursors else None, "endCursor": cursors[-1] if cursors else None}
        else:
            page, page_info = _relay_page([p for p in ordered if visible(p)], lambda p: p.slug, args)
        return {
            "edges": [{"node": self._product_node(p, channel, currency, now), "cursor": _cursor(p.slug)} for p in page],
            "pageInfo": page_info,
            "totalCount": lambda info, **_: sum(1 for p in ordered if visible(p)),
        }

    def _product_node(self, product: ProductRecord, channel: str, currency: str, now: datetime) -> dict[str, Any]:
        listing = product.listings[channel]
        available = listing.available_for_purchase_at is not None and listing.available_for_purchase_at <= now
        variants = [v for v in product.variants if channel in v.prices]
        default = next((v for v in variants if v.pk == product.default_variant_pk), None)
        variant_nodes = [self._variant_node(v, channel, currency) for v in variants]
        return {
            "id": product.id,
            "name": product.name,
            "slug": product.slug,
            "seoTitle": None,
            "seoDescription": None,
            "externalReference": product.external_reference,
            "description": product.description,
            "created": product.created.isoformat(),
            "updatedAt": product.created.isoformat(),
            "channel": channel,
            "isAvailableForPurchase": available,
            "availableForPurchaseAt": listing.available_for_purchase_at.isoformat() if listing.available_for_purchase_at else None,
            "isAvailable": available and any(v["quantityAvailable"] for v in variant_nodes),
            "category": _category_node(product.category) if product.category else None,
            "media": [{"id": _global_id("ProductMedia", f"{product.pk}-{i}"), "url": url, "type": kind, "alt": "",
                       "sortOrder": i, "oembedData": "{}", "metadata": [], "privateMetadata": []}
                      for i, (url, kind) in enumerate(product.media)],
            "attributes": self._selected(product.attributes),
            "defaultVariant": variant_nodes[variants.index(default)] if default else None,
            "variants": variant_nodes,
            "channelListings": [{"id": _global_id("ProductChannelListing", f"{product.pk}-{slug}"),
                                 "isPublished": listing.published, "visibleInListings": listing.visible_in_listings}
                                for slug, listing in product.listings.items()],
            "metadata": [],
            "privateMetadata": [],
        }

    def _variant_node(self, variant: VariantRecord, channel: str, currency: str) -> dict[str, Any]:
        price, discounted = variant.prices[channel]
        current = discounted if discounted is not None else price
        stocks = [(wh, level) for wh, level in variant.stocks.items() if channel in self.warehouses.get(wh, set())]
        available = sum(max(0, q - a - r) for _, (q, a, r) in stocks)
        return {
            "id": variant.id,
            "name": variant.name,
            "sku": variant.sku,
            "externalReference": variant.external_reference,
            "trackInventory": variant.track_inventory,
            "quantityAvailable": min(available, MAX_CHECKOUT_LINE_QUANTITY) if variant.track_inventory else MAX_CHECKOUT_LINE_QUANTITY,
            "channel": channel,
            "pricing": {
                "onSale": current < price,
                "discount": _taxed(price - current, currency) if current < price else None,
                "price": _taxed(current, currency),
                "priceUndiscounted": _taxed(price, currency),
                "pricePrior": None,
                "discountPrior": None,
                "priceLocalCurrency": None,
                "discountLocalCurrency": None,
            },
            "stocks": [{"id": _global_id("Stock", f"{variant.pk}-{wh}"), "quantity": q, "quantityAllocated": a,
                        "quantityReserved": r, "warehouse": {"id": _global_id("Warehouse", wh), "name": wh}}
                       for wh, (q, a, r) in stocks],
            "attributes": self._selected(variant.attributes),
            "channelListings": [{"id": _global_id("ProductVariantChannelListing", f"{variant.pk}-{slug}"),
                                 "price": _money(p, currency), "costPrice": None}
                                for slug, (p, _d) in variant.prices.items()],
            "media": [],
            "metadata": [],
            "privateMetadata": [],
        }

    def _selected(self, values: Mapping[str, list[str]]) -> list[dict[str, Any]]:
        return [
            {
                "attribute": {"id": _global_id("Attribute", slug), "slug": slug, "name": self.attributes.get(slug, slug),
                              "type": "PRODUCT_TYPE", "inputType": "DROPDOWN", "withChoices": True},
                "values": [{"id": _global_id("AttributeValue", f"{slug}-{name}"), "name": name,
                            "slug": name.lower().replace(" ", "-")} for name in names],
            }
            for slug, names in values.items()
        ]

    # -- GraphQL: attributes -------------------------------------------------------------------------------------

    def resolve_attributes(self, requestor: Any, args: Mapping[str, Any]) -> dict:
        if args.get("search") or args.get("sortBy"):
            raise _not_implemented("attributes(search:/sortBy:)")
        _validate_connection_args("attributes", args)
        where, flt = args.get("where") or {}, args.get("filter") or {}
        types: set[str] | None = None
        for key, value in {**flt, **where}.items():
            if value is None:
                continue
            if key != "type":
                raise _not_implemented(f"attributes(where/filter: {{{key}: ...}})")
            if isinstance(value, Mapping):  # AttributeTypeEnumFilterInput {eq, oneOf}
                types = {value["eq"]} if value.get("eq") else set(value.get("oneOf") or ())
            else:
                types = {value}
        with self._lock:
            rows = sorted(self.attributes.items())
        if types is not None and "PRODUCT_TYPE" not in types:
            rows = []
        page, page_info = _relay_page(rows, lambda item: item[0], args)
        return {
            "edges": [{"node": {"id": _global_id("Attribute", slug), "slug": slug, "name": name, "type": "PRODUCT_TYPE",
                                "inputType": "DROPDOWN", "withChoices": True, "metadata": [], "privateMetadata": []},
                       "cursor": _cursor(slug)} for slug, name in page],
            "pageInfo": page_info,
            "totalCount": len(rows),
        }


def _category_node(category: CategoryRecord) -> dict[str, Any]:
    ancestors = category.ancestors()

    def connection(info: Any = None, first: int | None = None, last: int | None = None, **_: Any) -> dict[str, Any]:
        chosen = ancestors[:first] if first is not None else (ancestors[-last:] if last else ancestors)
        edges = [{"node": _category_node(a), "cursor": _cursor(a.slug)} for a in chosen]
        return {"edges": edges, "pageInfo": {"hasNextPage": first is not None and len(ancestors) > first,
                                             "hasPreviousPage": False,
                                             "startCursor": edges[0]["cursor"] if edges else None,
                                             "endCursor": edges[-1]["cursor"] if edges else None},
                "totalCount": len(ancestors)}

    return {
        "id": category.id, "name": category.name, "slug": category.slug, "level": len(ancestors),
        "parent": (lambda info, **_: _category_node(category.parent)) if category.parent else None,
        "ancestors": connection, "description": None, "metadata": [], "privateMetadata": [],
    }


def _listing_tests(conditions: Mapping[str, Any], now: datetime) -> list:
    """`where`/`filter` conditions on a product's listing in the requested channel, as predicates."""
    tests = []
    for key, value in conditions.items():
        if value is None:
            continue
        if key == "isPublished":
            tests.append(lambda p, listing, channel, v=value: listing.published == v)
        elif key == "isVisibleInListing":
            tests.append(lambda p, listing, channel, v=value: listing.visible_in_listings == v)
        elif key == "isAvailable":  # available for purchase now, with a variant priced in the channel
            def available(p: ProductRecord, listing: Listing, channel: str, v: bool = value) -> bool:
                at = listing.available_for_purchase_at
                yes = at is not None and at <= now and any(channel in variant.prices for variant in p.variants)
                return yes == v

            tests.append(available)
        else:
            raise _not_implemented(f"products(where/filter: {{{key}: ...}})")
    return tests


def _cursor(value: str) -> str:
    return base64.b64encode(json.dumps([value]).encode()).decode("utf-8")


def _decode(cursor: str) -> str:
    try:
        values = json.loads(base64.b64decode(cursor))
        if not isinstance(values, list) or len(values) != 1 or not isinstance(values[0], str):
            raise ValueError
        return values[0]
    except (ValueError, TypeError):
        raise _error("Received cursor is invalid.") from None


def _validate_connection_args(name: str, args: Mapping[str, Any]) -> None:
    first, last, before, after = args.get("first"), args.get("last"), args.get("before"), args.get("after")
    if first is None and last is None:
        raise _error(f"You must provide a `first` or `last` value to properly paginate the `{name}` connection.")
    if first is not None and last is not None:
        raise _error("Argument `last` cannot be combined with `first`.")
    for arg, value in (("first", first), ("last", last)):
        if value is not None and value < 0:
            raise _error(f"Argument `{arg}` must be a non-negative integer.")
        if value is not None and value > MAX_CONNECTION_LIMIT:
            raise _error(f"Requesting {value} records on the `{name}` connection exceeds the `{arg}` limit of "
                         f"{MAX_CONNECTION_LIMIT} records.")
    if first is not None and before:
        raise _error("Argument `first` cannot be combined with `before`.")
    if last is not None and after:
        raise _error("Argument `last` cannot be combined with `after`.")


def _relay_page(rows: list, key, args: Mapping[str, Any]) -> tuple[list, dict[str, Any]]:  # type: ignore[no-untyped-def]
    """Keyset paging over rows already in key order."""
    first, last, after, before = args.get("first"), args.get("last"), args.get("after"), args.get("before")
    if after:
        mark = _decode(after)
        rows = [row for row in rows if key(row) > mark]
    if before:
        mark = _decode(before)
        rows = [row for row in rows if key(row) < mark]
    if first is not None:
        page, has_next, has_previous = rows[:first], len(rows) > first, bool(after)
    else:
        page, has_next, has_previous = (rows[-last:] if last else []), bool(before), len(rows) > (last or 0)
    cursors = [_cursor(key(row)) for row in page]
    return page, {"hasNextPage": has_next, "hasPreviousPage": has_previous,
                  "startCursor": cursors[0] if cursors else None, "endCursor": cursors[-1] if cursors else None}
