"""The per-channel product URL template: Saleor does not know storefront URLs, so the merchant writes one, e.g.
`https://shop.example.com/products/{product_slug}?variant={variant_id}`. Unknown placeholders are refused."""

from __future__ import annotations

import string
from dataclasses import dataclass
from functools import lru_cache
from typing import Mapping
from urllib.parse import quote, urlsplit

PLACEHOLDERS: dict[str, str] = {
    "product_slug": "the product's slug",
    "product_id": "Saleor's product ID",
    "variant_id": "Saleor's variant ID",
    "sku": "the variant's SKU",
    "channel": "the channel's slug",
}
MAX_TEMPLATE_LENGTH = 1000
EXAMPLE_VALUES = {
    "product_slug": "monospace-tee", "product_id": "UHJvZHVjdDo3Mg==", "variant_id": "UHJvZHVjdFZhcmlhbnQ6MjAz",
    "sku": "328223580", "channel": "default-channel",
}


class InvalidTemplate(ValueError):
    """The template cannot make product URLs; the message says how to fix it."""


def _placeholder_list() -> str:
    return ", ".join("{" + name + "}" for name in PLACEHOLDERS)


@dataclass(frozen=True)
class ProductUrlTemplate:
    text: str

    @classmethod
    def parse(cls, value: str) -> "ProductUrlTemplate":
        text = (value or "").strip()
        if not text:
            raise InvalidTemplate("Enter the URL of a product page, e.g. https://shop.example.com/products/{product_slug}.")
        if len(text) > MAX_TEMPLATE_LENGTH:
            raise InvalidTemplate(f"The template is longer than {MAX_TEMPLATE_LENGTH} characters.")
        if any(c.isspace() or not c.isprintable() for c in text):
            raise InvalidTemplate("The template must be one URL without spaces.")
        try:
            parts = list(string.Formatter().parse(text))
        except ValueError:
            raise InvalidTemplate("A { or } is not closed: write placeholders as {product_slug}, "
                                  "or double a brace ({{ or }}) to keep it.") from None
        for _literal, name, spec, conversion in parts:
            if name is None:
                continue
            if name not in PLACEHOLDERS:
                shown = "{" + name + "}" if name else "{}"
                raise InvalidTemplate(f"Unknown placeholder {shown}: use {_placeholder_list()}.")
            if spec or conversion:
                raise InvalidTemplate(f"Write the placeholder as {{{name}}}, without a format.")
        template = cls(text)
        example = urlsplit(template.render(EXAMPLE_VALUES))
        if example.scheme not in ("http", "https") or not example.netloc:
            raise InvalidTemplate("The template must start with https:// (or http://) and a host name, e.g. "
                                  "https://shop.example.com/products/{product_slug}.")
        return template

    @property
    def placeholders(self) -> set[str]:
        return {name for _, name, _, _ in string.Formatter().parse(self.text) if name}

    def render(self, values: Mapping[str, str | None]) -> str:
        """The URL for one product/variant; values are percent-encoded (an SKU with a space or `/` stays one)."""
        return self.text.format_map({name: _quoted(values.get(name) or "") for name in PLACEHOLDERS})


@lru_cache(maxsize=4096)
def _quoted(value: str) -> str:
    # Cached: a product's slug, id and channel repeat on every one of its rows.
    return quote(value, safe="")
