"""The neutral order model that the VTmarketing mapping takes.

It knows nothing about Saleor's payloads: another part of the app turns a Saleor webhook into `OrderData`
(choosing fallbacks such as "userEmail else user.email" there). Keeping the boundary here means the mapping can be
tested, and reasoned about, without any Saleor JSON, and a change in Saleor's schema touches one converter only.

Empty strings are allowed in these objects; the mapping treats them exactly like ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass

ITEM_ID_CHOICES: tuple[str, ...] = (
    "sku",
    "variant-id",
    "product-id",
    "variant-external-reference",
    "product-external-reference",
)
"""Which line field becomes VTmarketing's item id; it must match the ids in the merchant's product feed."""

ORDER_ID_CHOICES: tuple[str, ...] = ("number", "id")
"""Which order field becomes VTmarketing's ``orderId``: the human order number or Saleor's global id."""


@dataclass(frozen=True)
class OrderLine:
    """One order line, with every identifier a merchant's product feed might use."""

    quantity: int
    sku: str | None
    variant_id: str | None
    product_id: str | None
    product_name: str | None
    variant_external_reference: str | None
    product_external_reference: str | None


@dataclass(frozen=True)
class OrderData:
    """An order as VTmarketing needs to see it; money amounts are in major units (e.g. 86.37 USD)."""

    order_id: str
    number: str
    status: str | None
    email: str | None
    phone: str | None
    first_name: str | None
    last_name: str | None
    city: str | None
    country_name: str | None
    total: float | None
    currency: str | None
    shipping_total: float | None
    coupons: tuple[str, ...]
    lines: tuple[OrderLine, ...]


@dataclass(frozen=True)
class MappingOptions:
    """Per-channel choices of the merchant about how ids are sent.

    Unknown values are refused when the object is built (ValueError), so a typo in stored settings shows up at
    once instead of silently sending ids that match nothing in the product feed.
    """

    item_id: str = "sku"
    order_id: str = "number"

    def __post_init__(self) -> None:
        if self.item_id not in ITEM_ID_CHOICES:
            raise ValueError(f"item_id must be one of {', '.join(ITEM_ID_CHOICES)}, not {self.item_id!r}")
        if self.order_id not in ORDER_ID_CHOICES:
            raise ValueError(f"order_id must be one of {', '.join(ORDER_ID_CHOICES)}, not {self.order_id!r}")
