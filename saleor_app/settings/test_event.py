"""Send a clearly marked test confirmation to VTmarketing, so a merchant knows a channel's API key works.

The event goes through the same mapping and client as a real order (so it proves the whole path), but it is
never stored as a delivery and everything in it says "test": the order id `saleor-vtmarketing-test-<timestamp>`,
the status `test`, the customer `test@saleor-vtmarketing.invalid` (an .invalid domain can never be a real inbox)
and one item `saleor-vtmarketing-test-item`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone

from saleor_app.context import AppContext
from saleor_app.secrets import API_KEY_UNREADABLE, SecretUnreadable
from saleor_app.settings.service import ChannelSettingsService, validate_channel_update
from saleor_app.storage.models import utcnow
from saleor_app.vtmarketing.mapping import build_confirmation_event, encode_event
from saleor_app.vtmarketing.models import MappingOptions, OrderData, OrderLine

log = logging.getLogger(__name__)

TEST_ORDER_PREFIX = "saleor-vtmarketing-test-"
TEST_EMAIL = "test@saleor-vtmarketing.invalid"
TEST_ITEM_ID = "saleor-vtmarketing-test-item"
TEST_STATUS = "test"


@dataclass(frozen=True)
class TestEventResult:
    ok: bool
    message: str
    http_status: int | None = None
    code: str | None = None  # why it did not go out, when known: NO_API_KEY, INVALID_API_KEY, KEY_REJECTED, ...
    field: str | None = None  # the form field the problem belongs to, if any
    order_id: str | None = None
    duration_ms: int | None = None
    used_stored_key: bool = False


def build_test_order(now: datetime | None = None, *, currency: str | None = None) -> OrderData:
    """The test order: obviously not a sale, but shaped like one so the full mapping runs."""
    moment = now or datetime.now(timezone.utc)
    order_id = f"{TEST_ORDER_PREFIX}{moment.strftime('%Y%m%dT%H%M%S')}{moment.microsecond // 1000:03d}Z"
    line = OrderLine(
        quantity=1,
        sku=TEST_ITEM_ID,
        variant_id=TEST_ITEM_ID,
        product_id=TEST_ITEM_ID,
        product_name="saleor-vtmarketing test item",
        variant_external_reference=TEST_ITEM_ID,
        product_external_reference=TEST_ITEM_ID,
    )
    return OrderData(
        order_id=order_id,
        number=order_id,
        status=TEST_STATUS,
        email=TEST_EMAIL,
        phone=None,
        first_name="Test",
        last_name="Event",
        city=None,
        country_name=None,
        total=1.0,
        currency=currency,
        shipping_total=0.0,
        coupons=(),
        lines=(line,),
    )


class TestEventService:
    __test__ = False  # not a pytest class, despite the name

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.settings = ChannelSettingsService(ctx)

    async def send(
        self, installation_id: int, channel: str, *, api_key: str | None = None, currency: str | None = None
    ) -> TestEventResult:
        """Send a test event for `channel` with `api_key` (to try a key before saving it) or the stored key."""
        if api_key is not None and api_key.strip() == "":
            api_key = None
        errors = validate_channel_update(channel=channel, api_key=api_key, item_id=None, order_id=None)
        if errors:
            field, message = next(iter(errors.items()))
            return TestEventResult(ok=False, message=message, code="INVALID_INPUT", field=field)

        key_read_at = utcnow()
        view = await self.settings.get(installation_id, channel)
        used_stored_key = api_key is None
        if api_key is None:
            try:
                api_key = await self.settings.api_key(installation_id, channel)
            except SecretUnreadable:
                return TestEventResult(
                    ok=False,
                    code="KEY_UNREADABLE",
                    field="apiKey",
                    message=API_KEY_UNREADABLE,
                )
            if not api_key:
                return TestEventResult(
                    ok=False,
                    code="NO_API_KEY",
                    field="apiKey",
                    message=f"No VTmarketing API key is saved for {channel}. Paste a key to test it or save it first.",
                )

        order = build_test_order(currency=currency)
        body = encode_event(build_confirmation_event(order, MappingOptions(item_id=view.item_id, order_id="number")))
        result = await self.ctx.vtmarketing.send(api_key.strip(), body)
        log.info(
            "test event for installation %s channel %s: %s",
            installation_id,
            channel,
            result.outcome,
            extra={"installation": installation_id, "channel": channel, "http_status": result.http_status},
        )
        status = f"HTTP {result.http_status}" if result.http_status is not None else "no answer"
        if used_stored_key and (result.outcome == "delivered" or result.rejected_key):
            # Only the stored key's status is kept: a pasted, unsaved key is not the channel's key (yet).
            await self.settings.record_test_verdict(
                installation_id, channel, accepted=result.outcome == "delivered",
                detail=result.message if status in result.message else f"{status}: {result.message}",
                key_read_at=key_read_at,
            )
        if result.outcome == "delivered":
            return TestEventResult(
                ok=True,
                http_status=result.http_status,
                message=f"VTmarketing accepted the test event ({status}): the API key works.",
                order_id=order.order_id,
                duration_ms=result.duration_ms,
                used_stored_key=used_stored_key,
            )
        if result.rejected_key:
            message = f"VTmarketing refused the API key ({status}): {result.message}"
            code = "KEY_REJECTED"
        elif result.outcome == "retry":
            message = f"VTmarketing could not be reached or is busy ({status}): {result.message}. Try again later."
            code = "UNAVAILABLE"
        else:
            message = f"VTmarketing refused the test event ({status}): {result.message}"
            code = "REJECTED"
        return TestEventResult(
            ok=False,
            http_status=result.http_status,
            message=message,
            code=code,
            field="apiKey" if result.rejected_key else None,
            order_id=order.order_id,
            duration_ms=result.duration_ms,
            used_stored_key=used_stored_key,
        )
