"""Intake: store a verified ORDER_CONFIRMED in one transaction before Saleor gets its 200. Nothing else happens here:
enrichment and sending are the worker's, so Saleor never waits on VTmarketing."""

from __future__ import annotations

import enum
import logging

from sqlalchemy.exc import SQLAlchemyError

from saleor_app.context import AppContext
from saleor_app.errors import BadRequest, ServiceUnavailable
from saleor_app.saleor.payloads import PayloadError, describe_errors, parse_order_confirmed
from saleor_app.storage.models import DeliverySource, DeliveryStatus, Installation
from saleor_app.storage.repositories import DeliveryRepository, NewDelivery

log = logging.getLogger(__name__)


class IntakeOutcome(str, enum.Enum):
    STORED = "stored"
    DUPLICATE = "duplicate"
    UNREADABLE = "unreadable"


async def store_deliveries(ctx: AppContext, deliveries: list[NewDelivery]) -> list[int | None]:
    """Store new deliveries in one transaction and wake the worker. Returns new ids (None where already known)."""
    try:
        async with ctx.db.transaction() as session:
            repo = DeliveryRepository(session)
            ids = [await repo.add_if_new(new) for new in deliveries]
            if any(ids):
                await ctx.signal.notify_in(session)
    except (SQLAlchemyError, OSError) as exc:
        # Full disk, read-only or unreachable database: make Saleor retry rather than lose the order. (asyncpg's
        # read-only and disk-full errors arrive as plain DBAPIError, a refused connection as a bare OSError.)
        log.error("could not store %d order(s): %s", len(deliveries), type(exc).__name__)
        raise ServiceUnavailable("The app cannot store the order right now; Saleor will retry.") from None
    if any(ids):
        ctx.signal.wake()
    return ids


async def receive_order_confirmed(ctx: AppContext, installation: Installation, body: bytes) -> IntakeOutcome:
    try:
        payload = parse_order_confirmed(body)
    except PayloadError as exc:
        # Signed by Saleor yet unreadable: keep it where the merchant sees it, and tell Saleor plainly.
        reason = f"Saleor sent an order we could not read: {exc}"
        await store_deliveries(
            ctx,
            [
                NewDelivery(
                    installation_id=installation.id,
                    order_id=None,
                    order_number=None,
                    channel_slug=None,
                    # Kept to be looked at, not parsed again: PostgreSQL text cannot hold NUL, so it is replaced.
                    payload=body.decode("utf-8", errors="replace").replace("\x00", "\ufffd"),
                    source=DeliverySource.WEBHOOK.value,
                    status=DeliveryStatus.FAILED.value,
                    reason=reason,
                )
            ],
        )
        log.warning("installation %s: unreadable signed ORDER_CONFIRMED kept: %s", installation.id, exc)
        ctx.metrics.webhooks_received.labels("order_confirmed", IntakeOutcome.UNREADABLE.value).inc()
        raise BadRequest(reason, code="INVALID_PAYLOAD")

    order = payload.order
    assert order is not None  # parse_order_confirmed guarantees it
    (new_id,) = await store_deliveries(
        ctx,
        [
            NewDelivery(
                installation_id=installation.id,
                order_id=order.id,
                order_number=order.number,
                channel_slug=order.channel.slug if order.channel else None,
                payload=body.decode("utf-8"),
                source=DeliverySource.WEBHOOK.value,
                payload_warning=describe_errors(payload.errors),
            )
        ],
    )
    outcome = IntakeOutcome.STORED if new_id else IntakeOutcome.DUPLICATE
    ctx.metrics.webhooks_received.labels("order_confirmed", outcome.value).inc()
    log.info(
        "order %s stored (%s)", order.number, outcome.value,
        extra={"installation": installation.id, "order_number": order.number, "delivery_id": new_id},
    )
    return outcome
