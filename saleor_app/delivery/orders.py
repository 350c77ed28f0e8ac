"""Joins the two sides: a Saleor order (summary + line details) becomes the neutral OrderData the mapping takes.
The fallbacks the product promises live here: userEmail else user.email, billing names else the user's, and a
line's own copies (productSku, productVariantId, productName) when its variant was deleted."""

from __future__ import annotations

from saleor_app.saleor.payloads import OrderLineDetail, OrderSummary
from saleor_app.vtmarketing.models import OrderData, OrderLine


def _first(*values: str | None) -> str | None:
    for value in values:
        if value is not None and str(value).strip():
            return str(value).strip()
    return None


def to_order_line(detail: OrderLineDetail) -> OrderLine:
    variant = detail.variant
    product = variant.product if variant else None
    return OrderLine(
        quantity=detail.quantity,
        sku=_first(variant.sku if variant else None, detail.product_sku),
        variant_id=_first(variant.id if variant else None, detail.product_variant_id),
        product_id=product.id if product else None,
        product_name=_first(product.name if product else None, detail.product_name),
        variant_external_reference=variant.external_reference if variant else None,
        product_external_reference=product.external_reference if product else None,
    )


def to_order_data(order: OrderSummary, lines: list[OrderLineDetail]) -> OrderData:
    billing = order.billing_address
    user = order.user
    total = order.total.gross if order.total else None
    shipping = order.shipping_price.gross if order.shipping_price else None
    return OrderData(
        order_id=order.id,
        number=order.number or "",
        status=order.status,
        email=_first(order.user_email, user.email if user else None),
        phone=_first(billing.phone if billing else None),
        first_name=_first(billing.first_name if billing else None, user.first_name if user else None),
        last_name=_first(billing.last_name if billing else None, user.last_name if user else None),
        city=_first(billing.city if billing else None),
        country_name=_first(billing.country.country if billing and billing.country else None),
        total=total.amount if total else None,
        currency=_first(total.currency if total else None, order.channel.currency_code if order.channel else None),
        shipping_total=shipping.amount if shipping else None,
        coupons=tuple(c for c in [_first(order.voucher_code)] if c),
        lines=tuple(to_order_line(line) for line in lines),
    )
