"""Reading the delivery log and resending on demand: one service for the CLI and the settings API."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from saleor_app.context import AppContext
from saleor_app.errors import BadRequest, NotFound
from saleor_app.storage.models import Delivery, DeliveryStatus
from saleor_app.storage.repositories import DeliveryRepository

STATUS_VALUES = [s.value for s in DeliveryStatus]
# Reasons stored by earlier versions end in a UTC time; readers now show `next_attempt_at` in their own zone.
_LEGACY_NEXT_TRY = re.compile(r"; next try at \d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC$")


@dataclass(frozen=True)
class AttemptView:
    started_at: datetime
    duration_ms: int
    target: str
    http_status: int | None
    outcome: str
    excerpt: str | None


@dataclass(frozen=True)
class DeliveryView:
    id: int
    installation_id: int
    order_id: str | None
    order_number: str | None
    channel: str | None
    status: str
    reason: str | None
    source: str
    received_at: datetime  # when the order arrived; a resend does not change it
    next_attempt_at: datetime | None
    finished_at: datetime | None
    attempts: list[AttemptView]
    payload_warning: str | None
    resent_at: datetime | None = None  # the latest resend, which restarted the retry window

    @classmethod
    def of(cls, d: Delivery) -> "DeliveryView":
        return cls(
            id=d.id, installation_id=d.installation_id, order_id=d.order_id, order_number=d.order_number,
            channel=d.channel_slug, status=d.status, reason=_LEGACY_NEXT_TRY.sub("", d.reason) if d.reason else d.reason,
            source=d.source, received_at=d.received_at, resent_at=d.retry_window_started_at,
            next_attempt_at=d.next_attempt_at if d.status in ("pending", "retrying") else None,
            finished_at=d.finished_at, payload_warning=d.payload_warning,
            attempts=[AttemptView(a.started_at, a.duration_ms, a.target, a.http_status, a.outcome, a.excerpt) for a in d.attempts],
        )


class DeliveryService:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    async def list(
        self,
        *,
        installation_id: int | None = None,
        status: str | None = None,
        channel: str | None = None,
        search: str | None = None,
        first: int = 50,
        after: int | None = None,
    ) -> tuple[list[DeliveryView], bool]:
        """Newest first. Returns a page and whether more follow (pass the last id as `after`)."""
        if status and status not in STATUS_VALUES:
            raise BadRequest(f"Unknown status {status!r}; use one of {', '.join(STATUS_VALUES)}.")
        first = max(1, min(first, 200))
        async with self.ctx.db.session() as session:
            rows = await DeliveryRepository(session).search(
                installation_id=installation_id, status=status, channel=channel, search=search, before_id=after, limit=first + 1
            )
        return [DeliveryView.of(d) for d in rows[:first]], len(rows) > first

    async def get(self, delivery_id: int, *, installation_id: int | None = None) -> DeliveryView:
        async with self.ctx.db.session() as session:
            delivery = await DeliveryRepository(session).get(delivery_id, with_attempts=True)
        if delivery is None or (installation_id is not None and delivery.installation_id != installation_id):
            raise NotFound(f"No delivery {delivery_id}.")
        return DeliveryView.of(delivery)

    async def retry(self, delivery_id: int, *, installation_id: int | None = None) -> DeliveryView:
        current = await self.get(delivery_id, installation_id=installation_id)
        if current.status in ("pending", "retrying", "delivering"):
            raise BadRequest(f"Delivery {delivery_id} is already on its way ({current.status}).")
        if current.order_id is None:
            raise BadRequest(f"Delivery {delivery_id} holds an unreadable payload and cannot be sent.")
        async with self.ctx.db.transaction() as session:
            await DeliveryRepository(session).requeue([delivery_id], reason="resend requested")
            await self.ctx.signal.notify_in(session)
        self.ctx.signal.wake()
        return await self.get(delivery_id)

    async def retry_failed(self, *, installation_id: int | None = None, channel: str | None = None) -> int:
        async with self.ctx.db.transaction() as session:
            repo = DeliveryRepository(session)
            ids = await repo.ids(installation_id=installation_id, status=DeliveryStatus.FAILED.value, channel=channel)
            count = await repo.requeue(ids, reason="resend requested") if ids else 0
            if count:
                await self.ctx.signal.notify_in(session)
        if count:
            self.ctx.signal.wake()
        return count

    async def counts(self, installation_id: int) -> dict[str, dict[str, int]]:
        """Per channel: {status: count}."""
        async with self.ctx.db.session() as session:
            raw = await DeliveryRepository(session).counts_by_status(installation_id)
        result: dict[str, dict[str, int]] = {}
        for (channel, status), count in raw.items():
            result.setdefault(channel or "", {})[status] = count
        return result
