"""Typed views of what Saleor sends: the ORDER_CONFIRMED body and the OrderLines answer. Tolerant of nulls and of
fields that a Saleor version or a missing permission leaves out; unknown fields are ignored."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


def _storable(value: str | None, what: str, limit: int) -> str | None:
    """An identifier we store in a column of `limit` characters (and PostgreSQL text never holds NUL): a value no
    Saleor sends is refused here, as an unreadable payload, rather than failing the database write."""
    if value is not None:
        if len(value) > limit:
            raise ValueError(f"{what} is longer than {limit} characters")
        if "\x00" in value:
            raise ValueError(f"{what} contains a NUL character")
    return value


class Money(_Model):
    amount: float | None = None
    currency: str | None = None


class TaxedMoney(_Model):
    gross: Money | None = None


class Country(_Model):
    code: str | None = None
    country: str | None = None


class Address(_Model):
    first_name: str | None = Field(None, alias="firstName")
    last_name: str | None = Field(None, alias="lastName")
    phone: str | None = None
    city: str | None = None
    country: Country | None = None


class User(_Model):
    email: str | None = None
    first_name: str | None = Field(None, alias="firstName")
    last_name: str | None = Field(None, alias="lastName")


class Channel(_Model):
    slug: str | None = None
    currency_code: str | None = Field(None, alias="currencyCode")

    @field_validator("slug")
    @classmethod
    def _slug_storable(cls, value: str | None) -> str | None:
        return _storable(value, "channel slug", 255)


class OrderSummary(_Model):
    """The `OrderSummary` fragment of manifest/order_summary.fragment.graphql."""

    id: str
    number: str | None = None
    created: str | None = None
    updated_at: str | None = Field(None, alias="updatedAt")
    status: str | None = None
    user_email: str | None = Field(None, alias="userEmail")
    user: User | None = None
    billing_address: Address | None = Field(None, alias="billingAddress")
    channel: Channel | None = None
    total: TaxedMoney | None = None
    shipping_price: TaxedMoney | None = Field(None, alias="shippingPrice")
    voucher_code: str | None = Field(None, alias="voucherCode")

    @field_validator("number", mode="before")
    @classmethod
    def _number_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value

    @field_validator("number")
    @classmethod
    def _number_storable(cls, value: str | None) -> str | None:
        return _storable(value, "order number", 64)

    @field_validator("id")
    @classmethod
    def _id_present(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("order id is empty")
        return _storable(value, "order id", 256) or value


class OrderConfirmedPayload(_Model):
    typename: str | None = Field(None, alias="__typename")
    issued_at: str | None = Field(None, alias="issuedAt")
    version: str | None = None
    order: OrderSummary | None = None
    errors: list[dict[str, Any]] | None = None


class PayloadError(ValueError):
    """A signed body that is not the ORDER_CONFIRMED payload we subscribed to."""


def parse_order_confirmed(body: bytes) -> OrderConfirmedPayload:
    try:
        payload = OrderConfirmedPayload.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        if first["type"] == "json_invalid":
            raise PayloadError("the body is not valid JSON") from None
        raise PayloadError(f"unexpected payload at {where}: {first['msg']}") from None
    if payload.order is None:
        raise PayloadError("the payload has no order (was the subscription changed?)")
    return payload


def describe_errors(errors: list[dict[str, Any]] | None) -> str | None:
    """Saleor's `errors` in a payload (fields the app may not read), in one line a merchant can read."""
    if not errors:
        return None
    messages = []
    for error in errors[:3]:
        path = ".".join(str(p) for p in error.get("path") or [])
        messages.append(f"{path}: {error.get('message', '?')}" if path else str(error.get("message", "?")))
    return ("Saleor left fields out of the order: " + "; ".join(messages)).replace("\x00", "\ufffd")


class ProductRef(_Model):
    id: str | None = None
    name: str | None = None
    external_reference: str | None = Field(None, alias="externalReference")


class VariantRef(_Model):
    id: str | None = None
    sku: str | None = None
    external_reference: str | None = Field(None, alias="externalReference")
    product: ProductRef | None = None


class OrderLineDetail(_Model):
    """One line of the OrderLines query. The line's own copies (productSku, …) survive a deleted variant."""

    id: str | None = None
    quantity: int = 0
    product_name: str | None = Field(None, alias="productName")
    product_sku: str | None = Field(None, alias="productSku")
    product_variant_id: str | None = Field(None, alias="productVariantId")
    variant: VariantRef | None = None
