"""Supervision of the delivery worker: no exception ends its loop, and a worker that makes no progress is seen.

Every step of the worker (claim, schedule, settle, renew, the periodic jobs) runs through `WorkerSupervisor.step`.
A step that fails is logged with its cause, counted (`vtm_worker_errors_total{step}`) and retried with backoff; a
step that succeeds is progress (`vtm_worker_last_progress_timestamp`). `problem()` is what `/readyz` answers 503
with: a step failing right now (a database refusing writes shows within one loop turn), or no progress for longer
than the stall bound (a hung loop).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TypeVar

from sqlalchemy.exc import DBAPIError

from saleor_app.errors import AppError
from saleor_app.metrics import Metrics
from saleor_app.storage.db import describe_database_error

log = logging.getLogger(__name__)
T = TypeVar("T")

BACKOFF_BASE_SECONDS = 0.2
BACKOFF_MAX_SECONDS = 5.0


def describe_failure(exc: BaseException) -> str:
    """The cause in one line a person can act on, never the data involved (see describe_database_error)."""
    if isinstance(exc, (DBAPIError, OSError, AppError)):
        return describe_database_error(exc)
    return type(exc).__name__


@dataclass
class StepFailure:
    since: float  # wall-clock timestamp of the first failure of this streak (shown to people)
    count: int
    cause: str


class StepFailed(Exception):
    """A supervised step failed (already logged and counted); `retry_in` is its backoff."""

    def __init__(self, step: str, retry_in: float) -> None:
        super().__init__(f"worker step {step} failed")
        self.step = step
        self.retry_in = retry_in


class WorkerSupervisor:
    def __init__(self, metrics: Metrics, *, stall_after: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._metrics = metrics
        self._clock = clock
        self.stall_after = stall_after
        self._last_progress = clock()
        self._failing: dict[str, StepFailure] = {}
        metrics.worker_last_progress.set(time.time())

    # Running steps ------------------------------------------------------------------------------------------

    async def step(self, name: str, operation: Callable[[], Awaitable[T]]) -> T:
        """Run one step; on failure raise StepFailed (after logging and counting), never the step's exception."""
        try:
            result = await operation()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - supervision: whatever a step raises, the worker goes on
            raise StepFailed(name, self.failed(name, exc)) from exc
        self.progressed(name)
        return result

    async def until_done(self, name: str, operation: Callable[[], Awaitable[T]]) -> T:
        """Retry `operation` with backoff until it succeeds; only cancellation ends it earlier."""
        while True:
            try:
                return await self.step(name, operation)
            except StepFailed as failed:
                await asyncio.sleep(failed.retry_in)

    # What happened ------------------------------------------------------------------------------------------

    def progressed(self, step: str) -> None:
        self._last_progress = self._clock()
        self._metrics.worker_last_progress.set(time.time())
        ended = self._failing.pop(step, None)
        if ended is not None:
            log.warning("worker step %s works again after %d failure(s)", step, ended.count)

    def failed(self, step: str, exc: BaseException) -> float:
        """Record a failure of `step`; returns how long to wait before trying it again."""
        cause = describe_failure(exc)
        streak = self._failing.get(step)
        if streak is None:
            streak = self._failing[step] = StepFailure(since=time.time(), count=0, cause=cause)
        streak.count += 1
        streak.cause = cause
        self._metrics.worker_errors.labels(step).inc()
        wait = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (streak.count - 1)) * (0.5 + random.random() / 2)
        # A bug gets its traceback once per streak; a database that refuses writes gets one clear line each time.
        unexpected = not isinstance(exc, (DBAPIError, OSError, AppError))
        log.error(
            "worker step %s failed (%d in a row), retrying in %.1f s: %s", step, streak.count, wait, cause,
            exc_info=exc if unexpected and streak.count == 1 else None,
        )
        return wait

    def problem(self) -> str | None:
        """Why the worker is not doing its job right now (for /readyz), or None."""
        if self._failing:
            step, failure = max(self._failing.items(), key=lambda item: item[1].count)
            since = datetime.fromtimestamp(failure.since, timezone.utc).strftime("%H:%M:%S UTC")
            return f"step {step!r} failing since {since} ({failure.count} times): {failure.cause}"
        idle = self._clock() - self._last_progress
        if idle > self.stall_after:
            return f"no progress for {idle:.0f} s (bound {self.stall_after:g} s)"
        return None

    @property
    def failing_steps(self) -> dict[str, StepFailure]:
        return dict(self._failing)
