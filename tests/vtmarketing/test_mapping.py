"""The confirmation event built from an order: exact fields, types, rounding, id choices and their fallbacks."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from saleor_app.vtmarketing.exceptions import VTMarketingError
from saleor_app.vtmarketing.mapping import MappingError, build_confirmation_event, currency_exponent, encode_event
from saleor_app.vtmarketing.models import ITEM_ID_CHOICES, MappingOptions, OrderData, OrderLine
from tests.paths import CAPTURED_DIR as CAPTURED


# --- helpers ---------------------------------------------------------------------------------------------------


def order_from_captured(name: str) -> OrderData:
    """A minimal Saleor-payload → OrderData conversion, enough to feed real orders to the mapping."""
    order = json.loads((CAPTURED / f"{name}.body").read_bytes())["order"]
    billing = order.get("billingAddress") or {}
    user = order.get("user") or {}
    lines = []
    for line in order["lines"]:
        variant = line.get("variant") or {}
        product = variant.get("product") or {}
        lines.append(
            OrderLine(
                quantity=line["quantity"],
                sku=variant.get("sku") or line.get("productSku"),
                variant_id=variant.get("id") or line.get("productVariantId"),
                product_id=product.get("id"),
                product_name=product.get("name") or line.get("productName"),
                variant_external_reference=variant.get("externalReference"),
                product_external_reference=product.get("externalReference"),
            )
        )
    return OrderData(
        order_id=order["id"],
        number=order["number"],
        status=order["status"],
        email=order.get("userEmail") or user.get("email"),
        phone=billing.get("phone"),
        first_name=billing.get("firstName") or user.get("firstName"),
        last_name=billing.get("lastName") or user.get("lastName"),
        city=billing.get("city"),
        country_name=(billing.get("country") or {}).get("country"),
        total=order["total"]["gross"]["amount"],
        currency=order["total"]["gross"]["currency"],
        shipping_total=order["shippingPrice"]["gross"]["amount"],
        coupons=(order["voucherCode"],) if order.get("voucherCode") else (),
        lines=tuple(lines),
    )


def line(quantity: int = 1, sku: str | None = "SKU-1", **fields: Any) -> OrderLine:
    values: dict[str, Any] = {
        "variant_id": "VAR-1",
        "product_id": "PROD-1",
        "product_name": "Thing",
        "variant_external_reference": None,
        "product_external_reference": None,
    }
    values.update(fields)
    return OrderLine(quantity=quantity, sku=sku, **values)


def order(**fields: Any) -> OrderData:
    values: dict[str, Any] = {
        "order_id": "T3JkZXI6MQ==",
        "number": "42",
        "status": "UNFULFILLED",
        "email": "buyer@example.com",
        "phone": None,
        "first_name": None,
        "last_name": None,
        "city": None,
        "country_name": None,
        "total": 10.0,
        "currency": "USD",
        "shipping_total": None,
        "coupons": (),
        "lines": (line(),),
    }
    values.update(fields)
    return OrderData(**values)


def roundtrip(data: OrderData, options: MappingOptions | None = None) -> dict[str, Any]:
    """Build, encode and parse back: what VTmarketing would actually read."""
    encoded = encode_event(build_confirmation_event(data, options or MappingOptions()))
    assert isinstance(encoded, bytes)
    return json.loads(encoded.decode("utf-8"))


def generic(event: dict[str, Any]) -> dict[str, Any]:
    return event["event"]["confirmation"]["generic"]


def items(event: dict[str, Any]) -> list[dict[str, Any]]:
    return event["event"]["confirmation"].get("items", [])


def assert_no_empty_values(value: Any) -> None:
    if isinstance(value, dict):
        for child in value.values():
            assert child is not None and child != "" and child != [] and child != {}
            assert_no_empty_values(child)
    elif isinstance(value, list):
        for child in value:
            assert child is not None and child != ""
            assert_no_empty_values(child)


# --- captured orders -------------------------------------------------------------------------------------------


def test_captured_order_a_guest_with_voucher() -> None:
    event = roundtrip(order_from_captured("webhook-order-a"))
    assert event == {
        "user": {
            "email": "ada.buyer@example.com",
            "tel": "+16502530000",
            "firstname": "Ada",
            "lastname": "Buyer",
            "city": "MOUNTAIN VIEW",
            "country": "United States of America",
        },
        "event": {
            "confirmation": {
                "generic": {
                    "orderId": "26",
                    "total": 86.37,
                    "status": "unfulfilled",
                    "coupons": ["SAVE10"],
                    "phone": "+16502530000",
                    "currency": "USD",
                    "total_shipping": 0.0,
                },
                "items": [
                    {"id": "118223581", "quantity": 1},
                    {"id": "328223580", "quantity": 2},
                    # sku is null: falls back to the variant id, lower-cased as VTmarketing normalises ids
                    {"id": "uhjvzhvjdfzhcmlhbnq6mzg0", "quantity": 3},
                ],
            }
        },
    }


def test_captured_order_b_customer_without_voucher_or_phone() -> None:
    event = roundtrip(order_from_captured("webhook-order-b"))
    assert event["user"] == {
        "email": "ashley.cook@example.com",
        "firstname": "Ashley",
        "lastname": "Cook",
        "city": "SOUTH ROBERTFORT",
        "country": "United States of America",
    }
    assert generic(event) == {
        "orderId": "27",
        "total": 75.0,
        "status": "unfulfilled",
        "currency": "USD",
        "total_shipping": 0.0,
    }
    assert items(event) == [{"id": "uhjvzhvjdfzhcmlhbnq6mzq1", "quantity": 1}, {"id": "111223580", "quantity": 1}]


def test_encoded_bytes_are_compact_utf8_json_with_the_right_types() -> None:
    encoded = encode_event(build_confirmation_event(order_from_captured("webhook-order-a"), MappingOptions()))
    assert b" " not in encoded.replace(b"MOUNTAIN VIEW", b"").replace(b"United States of America", b"")
    assert b"NaN" not in encoded and b"null" not in encoded
    event = json.loads(encoded)
    assert type(generic(event)["total"]) is float
    assert type(generic(event)["total_shipping"]) is float
    assert type(generic(event)["orderId"]) is str
    assert b'"total":86.37' in encoded and b'"total_shipping":0.0' in encoded
    for item in items(event):
        assert type(item["id"]) is str
        assert type(item["quantity"]) is int


# --- item id options -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("sku", ["118223581", "328223580", "uhjvzhvjdfzhcmlhbnq6mzg0"]),
        ("variant-id", ["uhjvzhvjdfzhcmlhbnq6mzqw", "uhjvzhvjdfzhcmlhbnq6mzq4", "uhjvzhvjdfzhcmlhbnq6mzg0"]),
        ("product-id", ["uhjvzhvjddoxmza=", "uhjvzhvjddoxmzq=", "uhjvzhvjddoxnti="]),
        # only the first line has external references: the others fall back to SKU, then variant id
        ("variant-external-reference", ["erp-var-118223581", "328223580", "uhjvzhvjdfzhcmlhbnq6mzg0"]),
        ("product-external-reference", ["erp-prod-pb420", "328223580", "uhjvzhvjdfzhcmlhbnq6mzg0"]),
    ],
)
def test_item_id_options_on_captured_order(choice: str, expected: list[str]) -> None:
    event = roundtrip(order_from_captured("webhook-order-a"), MappingOptions(item_id=choice))
    assert [item["id"] for item in items(event)] == expected
    assert [item["quantity"] for item in items(event)] == [1, 2, 3]


def test_deleted_variant_falls_back_to_sku_then_variant_id_then_is_dropped() -> None:
    deleted = line(3, sku="OLD-SKU", variant_id=None, product_id=None)
    nothing = line(4, sku=None, variant_id=None, product_id=None)
    blank = line(5, sku="  ", variant_id="", product_id=None)
    for choice in ITEM_ID_CHOICES:
        event = roundtrip(order(lines=(deleted, nothing, blank)), MappingOptions(item_id=choice))
        assert items(event) == [{"id": "old-sku", "quantity": 3}], choice


def test_variant_id_used_when_sku_and_chosen_field_are_empty() -> None:
    data = order(lines=(line(2, sku="", variant_id="VAR-9", product_id=""),))
    assert items(roundtrip(data, MappingOptions(item_id="product-id"))) == [{"id": "var-9", "quantity": 2}]


def test_lines_without_any_usable_id_leave_no_items_key() -> None:
    event = roundtrip(order(lines=(line(1, sku=None, variant_id=None, product_id=None),)))
    assert "items" not in event["event"]["confirmation"]
    assert roundtrip(order(lines=()))["event"]["confirmation"] == {"generic": generic(roundtrip(order(lines=())))}


def test_many_lines_with_duplicates_are_summed_in_first_appearance_order() -> None:
    lines = tuple(line(i % 7 + 1, sku=f"SKU-{i % 25}") for i in range(150))
    event = roundtrip(order(lines=lines))
    assert [item["id"] for item in items(event)] == [f"sku-{i}" for i in range(25)]
    assert sum(item["quantity"] for item in items(event)) == sum(i % 7 + 1 for i in range(150))
    expected = {f"sku-{k}": sum(i % 7 + 1 for i in range(150) if i % 25 == k) for k in range(25)}
    assert {item["id"]: item["quantity"] for item in items(event)} == expected


def test_non_positive_quantities_are_dropped() -> None:
    data = order(lines=(line(0, sku="A"), line(-2, sku="A"), line(1, sku="B"), line(2, sku="A")))
    assert items(roundtrip(data)) == [{"id": "b", "quantity": 1}, {"id": "a", "quantity": 2}]


def test_item_ids_are_stripped_and_merged_after_stripping() -> None:
    data = order(lines=(line(1, sku=" A "), line(2, sku="A")))
    assert items(roundtrip(data)) == [{"id": "a", "quantity": 3}]


def test_item_ids_are_normalised_like_vtmarketing_and_merged_after_it() -> None:
    # The vendor's own example: "FLV-GV 12" becomes "flv-gv_12" (lower case, each space `_`).
    data = order(lines=(line(1, sku="FLV-GV 12"), line(2, sku="flv-gv_12"), line(4, sku="Zoë Tee\tXL")))
    assert items(roundtrip(data)) == [{"id": "flv-gv_12", "quantity": 3}, {"id": "zoë_tee_xl", "quantity": 4}]


def test_the_event_and_the_feed_share_one_item_id_function() -> None:
    from saleor_app.vtmarketing import item_ids, mapping

    assert mapping.item_id is item_ids.item_id
    assert item_ids.normalise_id("  ") is None and item_ids.normalise_id(None) is None


# --- order id option -------------------------------------------------------------------------------------------


def test_order_id_option() -> None:
    data = order_from_captured("webhook-order-a")
    assert generic(roundtrip(data, MappingOptions(order_id="number")))["orderId"] == "26"
    assert generic(roundtrip(data, MappingOptions(order_id="id")))["orderId"] == data.order_id


def test_order_id_falls_back_to_the_other_identifier() -> None:
    assert generic(roundtrip(order(number=" ")))["orderId"] == "T3JkZXI6MQ=="
    assert generic(roundtrip(order(order_id=""), MappingOptions(order_id="id")))["orderId"] == "42"
    assert "orderId" not in generic(roundtrip(order(number="", order_id="")))


def test_unknown_options_are_refused() -> None:
    with pytest.raises(ValueError):
        MappingOptions(item_id="ean")
    with pytest.raises(ValueError):
        MappingOptions(order_id="uuid")


# --- users, empties and text -----------------------------------------------------------------------------------


def test_guest_order_with_only_an_email() -> None:
    event = roundtrip(order(email="guest@example.com", status=None, currency=None, lines=()))
    assert event == {
        "user": {"email": "guest@example.com"},
        "event": {"confirmation": {"generic": {"orderId": "42", "total": 10.0}}},
    }


def test_empty_and_blank_strings_are_omitted_and_values_stripped() -> None:
    data = order(
        email="  buyer@example.com\n",
        phone="",
        first_name="  ",
        last_name=" Doe ",
        city="",
        country_name="\t",
        status="",
        currency=" ",
        coupons=("", "  ", " SPRING "),
    )
    event = roundtrip(data)
    assert event["user"] == {"email": "buyer@example.com", "lastname": "Doe"}
    assert generic(event) == {"orderId": "42", "total": 10.0, "coupons": ["SPRING"]}
    assert_no_empty_values(event)


def test_no_voucher_means_no_coupons_key_and_duplicates_are_sent_once() -> None:
    assert "coupons" not in generic(roundtrip(order(coupons=())))
    assert generic(roundtrip(order(coupons=("A", "B", "A"))))["coupons"] == ["A", "B"]


def test_phone_goes_to_user_tel_and_generic_phone() -> None:
    event = roundtrip(order(phone=" +40760000000 "))
    assert event["user"]["tel"] == "+40760000000"
    assert generic(event)["phone"] == "+40760000000"


def test_non_ascii_names_are_utf8_in_the_bytes() -> None:
    data = order(first_name="Zoë", last_name="Brontë 🎉", city="Zürich", country_name="Österreich")
    encoded = encode_event(build_confirmation_event(data, MappingOptions()))
    assert "Zoë".encode() in encoded and "🎉".encode() in encoded
    assert b"\\u" not in encoded
    event = json.loads(encoded.decode("utf-8"))
    assert event["user"]["firstname"] == "Zoë"
    assert event["user"]["lastname"] == "Brontë 🎉"


def test_status_is_lower_cased() -> None:
    assert generic(roundtrip(order(status="PARTIALLY_FULFILLED")))["status"] == "partially_fulfilled"


def test_currency_is_upper_cased_and_malformed_codes_omitted() -> None:
    assert generic(roundtrip(order(currency="eur")))["currency"] == "EUR"
    assert "currency" not in generic(roundtrip(order(currency="euro")))
    assert "currency" not in generic(roundtrip(order(currency=None)))


# --- money -----------------------------------------------------------------------------------------------------


def test_zero_shipping_is_sent_and_absent_shipping_omitted() -> None:
    assert generic(roundtrip(order(shipping_total=0.0)))["total_shipping"] == 0.0
    assert "total_shipping" not in generic(roundtrip(order(shipping_total=None)))


@pytest.mark.parametrize(
    ("currency", "total", "expected"),
    [
        ("USD", 0.1 + 0.2, 0.3),
        ("USD", 2.675, 2.68),  # 2.675 is 2.67499999… as a float: repr-based rounding keeps the intended half-up
        ("USD", 1.005, 1.01),
        ("EUR", 400.33, 400.33),
        ("JPY", 1234.5, 1235.0),
        ("JPY", 1234.4999, 1234.0),
        ("KRW", 15000.0, 15000.0),
        ("KWD", 12.3455, 12.346),
        ("KWD", 12.3454, 12.345),
        ("BHD", 0.0005, 0.001),
        ("HUF", 1999.995, 2000.0),  # ISO 4217 gives HUF two decimals
        (None, 9.999, 10.0),
        ("USD", -0.001, 0.0),
    ],
)
def test_totals_are_rounded_half_up_to_the_currency_minor_unit(
    currency: str | None, total: float, expected: float
) -> None:
    event = roundtrip(order(currency=currency, total=total, shipping_total=total))
    assert generic(event)["total"] == expected
    assert generic(event)["total_shipping"] == expected
    assert math.copysign(1.0, generic(event)["total"]) == 1.0  # never -0.0


def test_currency_exponents() -> None:
    codes = ("JPY", "jpy", "KWD", "USD", "HUF", "CLF", None, "")
    assert [currency_exponent(code) for code in codes] == [0, 0, 3, 2, 2, 4, 2, 2]


def test_jpy_total_is_a_whole_number_in_the_bytes() -> None:
    encoded = encode_event(build_confirmation_event(order(currency="JPY", total=5400.0), MappingOptions()))
    assert b'"total":5400.0' in encoded


def test_huge_total_is_kept() -> None:
    assert generic(roundtrip(order(total=1e20)))["total"] == 1e20


# --- refusals --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("email", [None, "", "   "])
def test_missing_email_is_a_mapping_error(email: str | None) -> None:
    with pytest.raises(MappingError) as caught:
        build_confirmation_event(order(email=email), MappingOptions())
    assert caught.value.reason == "the order has no customer email"
    assert isinstance(caught.value, VTMarketingError)


def test_missing_total_is_a_mapping_error() -> None:
    with pytest.raises(MappingError, match="no total"):
        build_confirmation_event(order(total=None), MappingOptions())


@pytest.mark.parametrize("total", [math.nan, math.inf, -math.inf])
def test_non_finite_total_is_a_mapping_error(total: float) -> None:
    with pytest.raises(MappingError, match="not a valid amount"):
        build_confirmation_event(order(total=total), MappingOptions())


def test_non_finite_shipping_is_omitted() -> None:
    assert "total_shipping" not in generic(roundtrip(order(shipping_total=math.nan)))


def test_encode_event_refuses_nan() -> None:
    with pytest.raises(MappingError):
        encode_event({"total": math.nan})


def test_mapping_is_pure() -> None:
    data = order_from_captured("webhook-order-a")
    copy = dataclasses.replace(data)
    first = encode_event(build_confirmation_event(data, MappingOptions()))
    assert encode_event(build_confirmation_event(data, MappingOptions())) == first
    assert data == copy


# --- property ---------------------------------------------------------------------------------------------------

maybe_text = st.one_of(st.none(), st.just(""), st.just("  "), st.text(max_size=12))
maybe_amount = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**6, 10**9))
lines_strategy = st.builds(
    OrderLine,
    quantity=st.integers(-3, 1000),
    sku=st.one_of(maybe_text, st.sampled_from(["A", "B", " A"])),
    variant_id=maybe_text,
    product_id=maybe_text,
    product_name=maybe_text,
    variant_external_reference=maybe_text,
    product_external_reference=maybe_text,
)
orders_strategy = st.builds(
    OrderData,
    order_id=st.text(max_size=20),
    number=st.one_of(st.text(max_size=6), st.integers(1, 10**6).map(str)),
    status=maybe_text,
    email=maybe_text,
    phone=maybe_text,
    first_name=maybe_text,
    last_name=maybe_text,
    city=maybe_text,
    country_name=maybe_text,
    total=maybe_amount,
    currency=st.one_of(st.none(), st.sampled_from(["USD", "jpy", "KWD", "", "X", "EURO"]), st.text(max_size=4)),
    shipping_total=maybe_amount,
    coupons=st.lists(maybe_text.filter(lambda v: v is not None), max_size=4).map(tuple),
    lines=st.lists(lines_strategy, max_size=30).map(tuple),
)


_FIELDS = {
    "sku": "sku",
    "variant-id": "variant_id",
    "product-id": "product_id",
    "variant-external-reference": "variant_external_reference",
    "product-external-reference": "product_external_reference",
}


def _usable(line: OrderLine, choice: str) -> bool:
    """A positive quantity and a non-blank chosen id, SKU or variant id (the documented fallbacks)."""
    candidates = (getattr(line, _FIELDS[choice]), line.sku, line.variant_id)
    return line.quantity > 0 and any(isinstance(v, str) and v.strip() for v in candidates)


@settings(max_examples=300, deadline=None)
@given(
    data=orders_strategy,
    item_choice=st.sampled_from(ITEM_ID_CHOICES),
    order_choice=st.sampled_from(["number", "id"]),
)
def test_property_any_order_gives_valid_json_or_a_mapping_error(
    data: OrderData, item_choice: str, order_choice: str
) -> None:
    try:
        event = build_confirmation_event(data, MappingOptions(item_id=item_choice, order_id=order_choice))
    except MappingError as error:
        assert error.reason
        return
    encoded = encode_event(event)
    parsed = json.loads(encoded.decode("utf-8"))  # strict UTF-8, valid JSON
    assert parsed == json.loads(json.dumps(event))
    assert_no_empty_values(parsed)
    assert type(parsed["user"]["email"]) is str
    assert isinstance(generic(parsed)["total"], float) and math.isfinite(generic(parsed)["total"])
    for item in items(parsed):
        assert type(item["id"]) is str and type(item["quantity"]) is int and item["quantity"] > 0
    assert len({item["id"] for item in items(parsed)}) == len(items(parsed))
    # every line with a positive quantity and some usable id is counted exactly once
    usable = sum(line.quantity for line in data.lines if _usable(line, item_choice))
    assert sum(item["quantity"] for item in items(parsed)) == usable
