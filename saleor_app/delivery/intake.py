"""Intake: store a verified ORDER_CONFIRMED in one transaction before Saleor gets its 200. Nothing else happens here:
enrichment and sending are the worker's, so Saleor never waits on VTmarketing."""

from __future__ import annotations

import asyncio
import enum
import functools
import logging
import time
from collections.abc import Awaitable, Callable

from sqlalchemy.exc import SQLAlchemyError

from saleor_app.delivery.signal import DeliverySignal
from saleor_app.errors import BadRequest, ServiceUnavailable
from saleor_app.metrics import Metrics
from saleor_app.saleor.payloads import PayloadError, describe_errors, parse_order_confirmed
from saleor_app.storage.db import Database, describe_database_error
from saleor_app.storage.models import DeliverySource, DeliveryStatus, Installation
from saleor_app.storage.repositories import DeliveryRepository, NewDelivery

log = logging.getLogger(__name__)

MAX_GROUP = 200


class IntakeOutcome(str, enum.Enum):
    STORED = "stored"
    DUPLICATE = "duplicate"
    UNREADABLE = "unreadable"


class OrderIntake:
    """Stores orders in the deliveries table and wakes the worker: for webhooks (grouped commits, see GroupCommit)
    and for orders found in Saleor by reconciliation and backfill (stored as one batch)."""

    def __init__(self, db: Database, signal: DeliverySignal, metrics: Metrics) -> None:
        self.db = db
        self.signal = signal
        self.metrics = metrics
        self._group = GroupCommit(functools.partial(self.store, urgent=True))
        # For the embedded worker's manners (intake_first.py): the latest webhook's time.monotonic(), and how many
        # are between arrival and answer right now.
        self.last_received = float("-inf")
        self.in_progress = 0

    async def store(self, deliveries: list[NewDelivery], *, urgent: bool = False) -> list[int | None]:
        """Store new deliveries in one transaction and wake the worker. Returns new ids (None where already known).
        `urgent`: someone waits for the answer (a webhook): before the worker's waiting writes."""
        try:
            async with self.db.transaction(urgent=urgent) as session:
                ids = await DeliveryRepository(session).add_all_if_new(deliveries)
                if any(ids):
                    await self.signal.notify_in(session)
        except (SQLAlchemyError, OSError) as exc:
            # Full disk, read-only or unreachable database: make Saleor retry rather than lose the order. (asyncpg's
            # read-only and disk-full errors arrive as plain DBAPIError, a refused connection as a bare OSError.)
            log.error("could not store %d order(s): %s", len(deliveries), describe_database_error(exc))
            raise ServiceUnavailable("The app cannot store the order right now; Saleor will retry.") from None
        if any(ids):
            self.signal.wake()
        return ids

    async def receive_order_confirmed(self, installation: Installation, body: bytes) -> IntakeOutcome:
        self.last_received = time.monotonic()
        self.in_progress += 1
        try:
            return await self._receive(installation, body)
        finally:
            self.in_progress -= 1

    async def _receive(self, installation: Installation, body: bytes) -> IntakeOutcome:
        try:
            payload = parse_order_confirmed(body)
        except PayloadError as exc:
            # Signed by Saleor yet unreadable: keep it where the merchant sees it, and tell Saleor plainly.
            reason = f"Saleor sent an order we could not read: {exc}"
            await self.store(
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
            self.metrics.webhooks_received.labels("order_confirmed", IntakeOutcome.UNREADABLE.value).inc()
            raise BadRequest(reason, code="INVALID_PAYLOAD")

        order = payload.order
        assert order is not None  # parse_order_confirmed guarantees it
        new_id = await self._group.store(
            NewDelivery(
                installation_id=installation.id,
                order_id=order.id,
                order_number=order.number,
                channel_slug=order.channel.slug if order.channel else None,
                payload=body.decode("utf-8"),
                source=DeliverySource.WEBHOOK.value,
                payload_warning=describe_errors(payload.errors),
            )
        )
        outcome = IntakeOutcome.STORED if new_id else IntakeOutcome.DUPLICATE
        self.metrics.webhooks_received.labels("order_confirmed", outcome.value).inc()
        log.info(
            "order %s stored (%s)", order.number, outcome.value,
            extra={"installation": installation.id, "order_number": order.number, "delivery_id": new_id},
        )
        return outcome


class GroupCommit:
    """Concurrent webhooks share one transaction (one commit, one fsync): each request waits for the commit that
    holds its own row before it answers 200. Alone, a webhook is committed at once, as without grouping; under load,
    the ones that arrived while a commit was running go together in the next one."""

    def __init__(self, store_all: Callable[[list[NewDelivery]], Awaitable[list[int | None]]]) -> None:
        self._store_all = store_all
        self._waiting: list[tuple[NewDelivery, asyncio.Future[int | None]]] = []
        self._committing = False

    async def store(self, new: NewDelivery) -> int | None:
        future: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._waiting.append((new, future))
        if not self._committing:
            self._committing = True
            asyncio.create_task(self._commit_all())
        return await asyncio.shield(future)  # a client gone mid-commit does not cancel the others' transaction

    async def _commit_all(self) -> None:
        try:
            while self._waiting:
                group, self._waiting = self._waiting[:MAX_GROUP], self._waiting[MAX_GROUP:]
                try:
                    ids = await self._store_all([new for new, _ in group])
                except Exception as exc:  # noqa: BLE001 - every waiter gets the same answer (503 or the bug)
                    for _, future in group:
                        if not future.done():
                            future.set_exception(exc)
                else:
                    for (_, future), new_id in zip(group, ids):
                        if not future.done():
                            future.set_result(new_id)
        finally:
            self._committing = False
