"""The one rule for VTmarketing item ids: which identifier of a variant is sent under the channel's `item-id`
choice (with fallbacks), normalised the way VTmarketing normalises ids.

The confirmation event (`mapping.py`, per order line) and the product feed (`saleor_app/feed/`, per variant) both
call `item_id`, so an id an event sends is by construction an id the channel's feed lists. VTmarketing lowercases
ids and turns spaces into `_` ("FLV-GV 12" becomes "flv-gv_12", see tests/data/vtmarketing/FEED.md); doing the same
on both sides makes them agree whatever VTmarketing does on its side.
"""

from __future__ import annotations

import re
from typing import Protocol

__all__ = ["ITEM_ID_FIELDS", "PRODUCT_LEVEL_CHOICES", "ItemIdentifiers", "item_id", "normalise_id"]

ITEM_ID_FIELDS: dict[str, str] = {
    "sku": "sku",
    "variant-id": "variant_id",
    "product-id": "product_id",
    "variant-external-reference": "variant_external_reference",
    "product-external-reference": "product_external_reference",
}
# Choices under which every variant of a product shares the product's id (when the product has a value for it).
PRODUCT_LEVEL_CHOICES = frozenset({"product-id", "product-external-reference"})

_WHITESPACE = re.compile(r"\s")


class ItemIdentifiers(Protocol):
    """What a line or a variant says about itself; any of it may be missing (None or blank)."""

    @property
    def sku(self) -> str | None: ...
    @property
    def variant_id(self) -> str | None: ...
    @property
    def product_id(self) -> str | None: ...
    @property
    def variant_external_reference(self) -> str | None: ...
    @property
    def product_external_reference(self) -> str | None: ...


def normalise_id(value: object) -> str | None:
    """VTmarketing's form of an id: stripped, lower case, every whitespace character `_`; None when blank."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text:
        return None
    # Lone surrogates (only from corrupted input) cannot be encoded as UTF-8: make the id encodable instead.
    text = text.encode("utf-8", errors="replace").decode("utf-8")
    return _WHITESPACE.sub("_", text.lower())


def item_id(item: ItemIdentifiers, choice: str) -> str | None:
    """The id `item` is sent (and listed) under: the chosen field, else the SKU, else the variant id, normalised.

    The fallbacks keep an item countable when, say, a variant has no external reference yet or was deleted: an id
    present in the feed (the feed uses the same fallbacks) is better than silently losing the quantity.
    Raises KeyError for an unknown choice (MappingOptions refuses those earlier).
    """
    field = ITEM_ID_FIELDS[choice]
    for name in (field, "sku", "variant_id"):
        value = normalise_id(getattr(item, name))
        if value is not None:
            return value
    return None
