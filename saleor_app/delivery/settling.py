"""Settling finished deliveries: those that finish while a settle transaction is being committed go together in
the next one (one transaction, one fsync on SQLite, one SELECT/UPDATE/INSERT each for all of them).

Each delivery's task still waits for the commit that holds its own row, so a delivery is marked done, and its
attempt recorded, before its task counts it settled; a failed transaction fails every delivery of its batch, and
each is settled again (worker.py retries a settle until the database takes it)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from saleor_app.storage.models import Delivery

MAX_BATCH = 200

SettleAll = Callable[[list[tuple[Delivery, Any]]], Awaitable[set[int]]]


class SettleBatch:
    def __init__(self, settle_all: SettleAll) -> None:
        self._settle_all = settle_all
        self._waiting: list[tuple[Delivery, Any, asyncio.Future[bool]]] = []
        self._committing = False

    async def settle(self, delivery: Delivery, verdict: Any) -> bool:
        """True once `delivery` is settled with `verdict`; False if this worker no longer held it."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append((delivery, verdict, future))
        if not self._committing:
            self._committing = True
            asyncio.create_task(self._commit_all())
        return await asyncio.shield(future)  # a delivery cancelled meanwhile does not cancel the others' commit

    async def _commit_all(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
                try:
                    settled = await self._settle_all([(delivery, verdict) for delivery, verdict, _ in batch])
                except Exception as exc:  # noqa: BLE001 - each waiter gets the failure and settles again
                    for _, _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                else:
                    for delivery, _, future in batch:
                        if not future.done():
                            future.set_result(delivery.id in settled)
        finally:
            self._committing = False
