"""Leases: how a claimed delivery stays one worker's while it is sent, so that no order is sent twice by two holders.

PostgreSQL (several workers): a claim sets `lease_until` by the database's clock (`clock_timestamp()`), never the
app's, so a worker whose clock steps or drifts judges nothing. While a worker holds deliveries, `LeaseKeeper`
renews all of them with ONE statement every third of the lease, so a send longer than the lease keeps its lease.
A lease runs out only when its worker stopped renewing (it died, or lost the database for a whole lease); then
another worker takes the delivery over, and that take-over is written in the delivery's log as an interrupted
attempt (the dead worker may have sent it).

SQLite (one process, guaranteed by storage/lock.py): the lease is the process itself. A `delivering` row belongs to
the running process until it settles it; it is never taken over while that process lives, whatever the clocks do,
and the next process to start hands everything left `delivering` back to the queue, marked as interrupted. No
renewal statement is needed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from saleor_app.delivery.supervisor import StepFailed, WorkerSupervisor
from saleor_app.storage.db import Database
from saleor_app.storage.models import INTERRUPTED_NOTE  # noqa: F401 - what an interrupted attempt says
from saleor_app.storage.repositories import DeliveryRepository

log = logging.getLogger(__name__)

MIN_RENEW_INTERVAL = 0.2


class LeaseKeeper:
    """Renews this worker's leases (PostgreSQL) while it holds anything; runs until cancelled, so that the leases
    of deliveries still finishing during a graceful stop stay renewed too."""

    def __init__(self, db: Database, worker_id: str, lease_seconds: float, supervisor: WorkerSupervisor,
                 holding: Callable[[], bool]) -> None:
        self._db = db
        self._worker_id = worker_id
        self._lease_seconds = lease_seconds
        self._supervisor = supervisor
        self._holding = holding
        self.interval = max(MIN_RENEW_INTERVAL, lease_seconds / 3)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            if not self._holding():
                continue
            try:
                await self._supervisor.step("renew", self._renew)
            except StepFailed:
                pass  # logged and counted; the next turn tries again, the lease still has two thirds to run

    async def _renew(self) -> int:
        async with self._db.transaction() as session:
            return await DeliveryRepository(session).renew_leases(self._worker_id, lease_seconds=self._lease_seconds)
