"""Typed view of one page of the FeedProducts query (manifest/feed_products.query.graphql): tolerant of nulls,
unknown fields ignored. Amounts stay as Saleor sent them; rows.py rounds them to the currency."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, alias_generator=to_camel)


class Money(_Model):
    amount: float | None = None
    currency: str | None = None


class TaxedMoney(_Model):
    gross: Money | None = None


class VariantPricing(_Model):
    price: TaxedMoney | None = None
    price_undiscounted: TaxedMoney | None = None


class StockLevel(_Model):
    quantity: int = 0
    quantity_allocated: int = 0
    quantity_reserved: int = 0


class AttributeRef(_Model):
    slug: str | None = None


class AttributeValueRef(_Model):
    name: str | None = None


class SelectedAttribute(_Model):
    attribute: AttributeRef | None = None
    values: list[AttributeValueRef | None] = Field(default_factory=list)


class CategoryNode(_Model):
    id: str | None = None
    name: str | None = None


class CategoryEdge(_Model):
    node: CategoryNode | None = None


class CategoryConnection(_Model):
    edges: list[CategoryEdge | None] = Field(default_factory=list)


class Category(CategoryNode):
    ancestors: CategoryConnection | None = None

    def path(self) -> list[CategoryNode]:
        """Root first, this category last (Saleor lists ancestors from the root down)."""
        ancestors = [edge.node for edge in (self.ancestors.edges if self.ancestors else []) if edge and edge.node]
        return [*ancestors, self]


class Media(_Model):
    url: str | None = None
    type: str | None = None


class VariantRef(_Model):
    id: str | None = None


class CatalogueVariant(_Model):
    id: str
    name: str | None = None
    sku: str | None = None
    external_reference: str | None = None
    track_inventory: bool | None = None
    quantity_available: int | None = None
    pricing: VariantPricing | None = None
    stocks: list[StockLevel | None] | None = None
    attributes: list[SelectedAttribute | None] = Field(default_factory=list)


class CatalogueProduct(_Model):
    id: str
    name: str | None = None
    slug: str | None = None
    external_reference: str | None = None
    description: str | None = None
    is_available_for_purchase: bool | None = None
    category: Category | None = None
    media: list[Media | None] | None = None
    attributes: list[SelectedAttribute | None] = Field(default_factory=list)
    default_variant: VariantRef | None = None
    variants: list[CatalogueVariant | None] | None = None


def attribute_values(attributes: list[SelectedAttribute | None], slug: str | None) -> list[str]:
    """The value names of attribute `slug` (empty when the attribute is not set)."""
    if not slug:
        return []
    for selected in attributes:
        if selected and selected.attribute and selected.attribute.slug == slug:
            return [value.name.strip() for value in selected.values if value and value.name and value.name.strip()]
    return []
