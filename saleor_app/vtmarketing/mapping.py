"""Turn an `OrderData` into VTmarketing's "confirmation" event, and encode it for the wire.

This module is pure (no I/O, no clock, no settings) so the exact bytes sent for an order can be tested and so a
stored delivery can be rebuilt identically. The vendor's documentation is loose (its first example is not even
valid JSON), so the rules here lean towards what is certain to be accepted:

* a key is omitted rather than sent as ``null`` or ``""``: an empty value carries no information and some APIs
  overwrite a known value (e.g. the customer's phone) with it;
* money is a JSON number rounded to the currency's minor unit, because the vendor documents ``total`` as a float
  and binary floats such as ``0.1 + 0.2`` would otherwise leak as ``0.30000000000000004``;
* ids are strings and quantities integers, exactly as the vendor's field table says;
* item ids follow `item_ids.item_id` (the channel's choice, fallbacks, VTmarketing's normalisation): the product
  feed lists variants under the same function, so every id sent is one of the feed's.
"""

from __future__ import annotations

import json
import math
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation
from typing import Any

from saleor_app.vtmarketing.exceptions import VTMarketingError
from saleor_app.vtmarketing.item_ids import item_id
from saleor_app.vtmarketing.models import MappingOptions, OrderData, OrderLine

__all__ = ["MappingError", "build_confirmation_event", "currency_exponent", "encode_event", "item_id"]


class MappingError(VTMarketingError):
    """The order cannot be sent to VTmarketing; `reason` says why in words a merchant understands.

    It is a permanent problem of the order itself (retrying will not help), so the delivery layer should record
    the reason and stop, not retry.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# ISO 4217 minor units for the currencies that do not use 2 decimals. Everything else (including HUF, which ISO
# lists with 2 even though cash has none) defaults to 2.
_CURRENCY_EXPONENTS: dict[str, int] = {
    # no minor unit
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0, "PYG": 0, "RWF": 0,
    "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
    # three decimals
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
    # four decimals (units of account)
    "CLF": 4, "UYW": 4,
}  # fmt: skip
_DEFAULT_EXPONENT = 2

# Enough digits for any finite float quantized to 4 decimals (the largest float has 309 integer digits), so
# quantize() never fails with InvalidOperation on huge but valid amounts.
_DECIMAL_CONTEXT = Context(prec=400)


def currency_exponent(currency: str | None) -> int:
    """Number of decimals of `currency` (ISO 4217); 2 when unknown or absent."""
    if not currency:
        return _DEFAULT_EXPONENT
    return _CURRENCY_EXPONENTS.get(currency.strip().upper(), _DEFAULT_EXPONENT)


def build_confirmation_event(order: OrderData, options: MappingOptions) -> dict[str, Any]:
    """Build the JSON-ready body VTmarketing expects for a confirmed order.

    Raises MappingError when the order lacks what VTmarketing requires (a customer email, a total): sending it
    anyway would only earn a 400, or worse an event attached to nobody.
    """
    email = _text(order.email)
    if email is None:
        raise MappingError("the order has no customer email")

    currency = _currency(order.currency)
    exponent = currency_exponent(currency)
    total = _money(order.total, exponent)
    if total is None:
        if order.total is None:
            raise MappingError("the order has no total")
        raise MappingError(f"the order total is not a valid amount ({order.total!r})")

    phone = _text(order.phone)
    user = _without_empty(
        {
            "email": email,
            "tel": phone,
            "firstname": _text(order.first_name),
            "lastname": _text(order.last_name),
            "city": _text(order.city),
            "country": _text(order.country_name),
        }
    )

    status = _text(order.status)
    generic = _without_empty(
        {
            "orderId": _order_id(order, options),
            "total": total,
            "status": status.lower() if status else None,
            "coupons": _coupons(order.coupons),
            "phone": phone,
            "currency": currency,
            # 0.0 is a real amount (free shipping) and is kept; only an absent value is omitted.
            "total_shipping": _money(order.shipping_total, exponent),
        }
    )

    confirmation: dict[str, Any] = {"generic": generic}
    items = _items(order.lines, options.item_id)
    if items:
        confirmation["items"] = items
    return {"user": user, "event": {"confirmation": confirmation}}


def encode_event(event: dict[str, Any]) -> bytes:
    """Serialise an event to compact UTF-8 JSON, refusing NaN/Infinity (they are not JSON).

    Non-ASCII text is written as UTF-8 rather than ``\\u`` escapes: both are valid JSON, and UTF-8 keeps names such
    as "Zoë" readable in stored payloads and logs.
    """
    try:
        text = json.dumps(event, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    except ValueError as exc:  # NaN or Infinity somewhere in the event
        raise MappingError(f"the order contains a value that is not a number ({exc})") from exc
    # A lone surrogate (only possible from corrupted input) cannot be encoded; replace it rather than fail.
    return text.encode("utf-8", errors="replace")


# --- helpers -------------------------------------------------------------------------------------------------


def _text(value: object) -> str | None:
    """Strip a string; empty, blank or non-string values count as absent."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    if not value:
        return None
    # Lone surrogates cannot be encoded as UTF-8; make the string encodable instead of failing the whole order.
    return value.encode("utf-8", errors="replace").decode("utf-8")


def _without_empty(mapping: dict[str, Any]) -> dict[str, Any]:
    """Drop keys whose value is None or an empty list (the vendor gains nothing from them)."""
    return {key: value for key, value in mapping.items() if value is not None and value != []}


def _currency(value: str | None) -> str | None:
    """Upper-case 3-letter ISO code, or None: a malformed code is omitted rather than sent (it is optional)."""
    code = _text(value)
    if code is None:
        return None
    code = code.upper()
    if len(code) != 3 or not code.isascii() or not code.isalpha():
        return None
    return code


def _money(value: object, exponent: int) -> float | None:
    """Round an amount half-up to `exponent` decimals; None when absent or not a finite number.

    Rounding goes through Decimal(repr(x)) so 2.675 (stored as 2.67499999…) rounds to 2.68, as a person would.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        amount = value
    elif isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        amount = Decimal(repr(value))
    else:
        return None
    if not amount.is_finite():
        return None
    try:
        rounded = amount.quantize(Decimal(1).scaleb(-exponent), rounding=ROUND_HALF_UP, context=_DECIMAL_CONTEXT)
    except InvalidOperation:
        return None
    result = float(rounded)
    if not math.isfinite(result):
        return None
    return result + 0.0  # turn -0.0 into 0.0


def _order_id(order: OrderData, options: MappingOptions) -> str | None:
    """The chosen order identifier, falling back to the other one so the event is still attached uniquely."""
    number, global_id = _text(order.number), _text(order.order_id)
    if options.order_id == "id":
        return global_id or number
    return number or global_id


def _coupons(coupons: tuple[str, ...] | None) -> list[str]:
    """Non-empty coupon codes, each once, in their original order."""
    seen: dict[str, None] = {}
    for coupon in coupons or ():
        code = _text(coupon)
        if code is not None:
            seen.setdefault(code, None)
    return list(seen)


def _items(lines: tuple[OrderLine, ...], choice: str) -> list[dict[str, Any]]:
    """One entry per id with quantities summed, in order of first appearance.

    Lines with no usable id or a non-positive quantity are dropped: VTmarketing cannot match them to its feed,
    and a zero or negative quantity is not a purchase.
    """
    quantities: dict[str, int] = {}
    for line in lines:
        quantity = line.quantity
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity <= 0:
            continue
        identifier = item_id(line, choice)
        if identifier is None:
            continue
        quantities[identifier] = quantities.get(identifier, 0) + quantity
    return [{"id": identifier, "quantity": quantity} for identifier, quantity in quantities.items()]
