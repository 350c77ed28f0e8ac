"""What VTmarketing last said of a channel's stored API key: accepted, refused, or not known yet.

The channel card shows it ("Key refused" instead of a green "Key saved"), so a merchant sees a bad key without
reading the delivery log. Two things tell: a delivery's verdict (the worker, in the same transaction that settles
the delivery) and a test event sent with the stored key. Saving another key resets it (settings/service.py).

A verdict reached with a key that has been replaced since is ignored (the key's `key_changed_at` is later than when
the key was read), so a slow delivery with the old key never marks a new key refused.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from saleor_app.saleor import problems
from saleor_app.storage.models import Delivery, DeliveryStatus, KeyStatus, utcnow
from saleor_app.storage.repositories import ChannelSettingsRepository


def _order_label(delivery: Delivery) -> str:
    return f"order #{delivery.order_number}" if delivery.order_number else "an order"


async def record_delivery_verdict(session: AsyncSession, delivery: Delivery, verdict: Any, *,
                                  key_read_at: datetime | None = None) -> None:
    """After the worker's verdict on `delivery` (its `status`, and its dashboard `problem` (key, message) if any):
    a delivered order proves the key works; the key-refused problem says VTmarketing refused it (401/403).
    Anything else (an outage, a malformed order, a skipped channel) says nothing about the key. `key_read_at`: when
    the worker read the key it sent (its cache's read time; by default the claim's)."""
    channel = delivery.channel_slug
    if not channel:
        return
    problem = getattr(verdict, "problem", None)
    if verdict.status == DeliveryStatus.DELIVERED.value:
        status, message = KeyStatus.ACCEPTED.value, f"VTmarketing accepted {_order_label(delivery)} with this key."
    elif problem and problem[0] == problems.key_rejected(channel):
        status = KeyStatus.REFUSED.value
        message = f"VTmarketing refused this key for {_order_label(delivery)}: {_detail(verdict.reason)}."
    else:
        return
    await ChannelSettingsRepository(session).record_key_verdict(
        delivery.installation_id, channel, status=status, message=message, at=utcnow(),
        key_read_at=key_read_at or delivery.updated_at,
    )


async def record_test_verdict(
    session: AsyncSession, installation_id: int, channel: str, *, accepted: bool, detail: str, key_read_at: datetime
) -> None:
    """After a test event sent with the channel's stored key."""
    if accepted:
        status, message = KeyStatus.ACCEPTED.value, "VTmarketing accepted a test event with this key."
    else:
        status, message = KeyStatus.REFUSED.value, f"VTmarketing refused this key for a test event: {detail}."
    await ChannelSettingsRepository(session).record_key_verdict(
        installation_id, channel, status=status, message=message, at=utcnow(), key_read_at=key_read_at
    )


_REFUSED_MARKER = "refused the event ("  # the worker's reason: "VTmarketing refused the event (HTTP 401: …)"


def _detail(reason: str | None) -> str:
    """VTmarketing's answer inside a delivery reason: `… refused the event (HTTP 401: Invalid API key)` gives
    `HTTP 401: Invalid API key` (whatever note precedes it, e.g. a reconciliation's)."""
    text = (reason or "").strip()
    start = text.find(_REFUSED_MARKER)
    if start >= 0 and text.endswith(")"):
        return text[start + len(_REFUSED_MARKER) : -1]
    return text or "no reason given"
