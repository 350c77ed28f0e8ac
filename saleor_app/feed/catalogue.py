"""What the feed reads from Saleor with the app token (through gql, the documents in manifest/): the channel's
products page by page, and the product attributes a merchant may pick for Color and Brand."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from graphql import ExecutionResult
from pydantic import ValidationError

from saleor_app.feed.products import CatalogueProduct
from saleor_app.saleor.client import SaleorClient
from saleor_app.saleor.exceptions import SaleorError, SaleorPermissionDenied

log = logging.getLogger(__name__)

PRODUCTS_DOCUMENT = "feed_products.query.graphql"
ATTRIBUTES_DOCUMENT = "feed_attributes.query.graphql"
PAGE_SIZE = 100  # Saleor's maximum for `first`
MAX_ATTRIBUTE_PAGES = 20


@dataclass(frozen=True)
class ProductPage:
    products: list[CatalogueProduct]
    skipped: int  # nodes that could not be read (logged)
    end_cursor: str | None
    has_next_page: bool


@dataclass(frozen=True)
class AttributeChoice:
    slug: str
    name: str


def _errors(result: ExecutionResult) -> list[dict]:
    return [e if isinstance(e, dict) else {"message": str(e)} for e in (result.errors or [])]


def _refusal(result: ExecutionResult, what: str) -> SaleorError:
    errors = _errors(result)
    if any((e.get("extensions") or {}).get("exception", {}).get("code") == "PermissionDenied" for e in errors):
        return SaleorPermissionDenied(f"Saleor refused to list {what} with the app token (PermissionDenied)")
    messages = "; ".join(str(e.get("message")) for e in errors)[:300] or "no data"
    return SaleorError(f"Saleor did not list {what}: {messages}")


class SaleorCatalogue:
    def __init__(self, saleor: SaleorClient, api_url: str, token: str) -> None:
        self._saleor, self._api_url, self._token = saleor, api_url, token

    async def product_page(self, channel: str, *, after: str | None = None, first: int = PAGE_SIZE) -> ProductPage:
        result = await self._saleor.execute(
            self._api_url, self._token, PRODUCTS_DOCUMENT, {"channel": channel, "first": first, "after": after}
        )
        connection = (result.data or {}).get("products")
        # Any error, even with data, fails the page: a feed missing a field or a product silently would be worse
        # than the previous feed, which stays served.
        if connection is None or result.errors:
            raise _refusal(result, f"the products of channel {channel}")
        products, skipped = [], 0
        for edge in connection.get("edges") or []:
            node = (edge or {}).get("node")
            try:
                products.append(CatalogueProduct.model_validate(node))
            except ValidationError:
                skipped += 1
                log.warning("feed: a product of channel %s could not be read; left out", channel)
        page_info = connection.get("pageInfo") or {}
        return ProductPage(products, skipped, page_info.get("endCursor"), bool(page_info.get("hasNextPage")))

    async def products(self, channel: str, *, first: int = PAGE_SIZE) -> AsyncIterator[ProductPage]:
        """Every page, in Saleor's order (Relay cursors). The next page is asked for while the caller works on this
        one, so Saleor's time and ours overlap; at most two pages are held. Use with contextlib.aclosing, so a
        caller that stops early also stops the page under way."""
        page = await self.product_page(channel, first=first)
        after: str | None = None
        pending: asyncio.Task[ProductPage] | None = None
        try:
            while True:
                more = page.has_next_page and page.end_cursor and page.end_cursor != after
                if more:
                    after = page.end_cursor
                    pending = asyncio.ensure_future(self.product_page(channel, after=after, first=first))
                yield page
                if pending is None:
                    return
                page, pending = await pending, None
        finally:
            if pending is not None:
                pending.cancel()
                await asyncio.gather(pending, return_exceptions=True)

    async def attributes(self, channel: str) -> list[AttributeChoice]:
        choices: list[AttributeChoice] = []
        after: str | None = None
        for _ in range(MAX_ATTRIBUTE_PAGES):
            result = await self._saleor.execute(
                self._api_url, self._token, ATTRIBUTES_DOCUMENT, {"channel": channel, "after": after}
            )
            connection = (result.data or {}).get("attributes")
            if connection is None:
                raise _refusal(result, "product attributes")
            for edge in connection.get("edges") or []:
                node = (edge or {}).get("node") or {}
                if node.get("slug"):
                    choices.append(AttributeChoice(str(node["slug"]), str(node.get("name") or node["slug"])))
            page_info = connection.get("pageInfo") or {}
            if not page_info.get("hasNextPage") or not page_info.get("endCursor"):
                break
            after = page_info["endCursor"]
        return sorted(choices, key=lambda c: (c.name.lower(), c.slug))
