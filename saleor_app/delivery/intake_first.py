"""Intake first: on the embedded default (`serve` with its worker) the worker shares the web side's event loop, and
a webhook is answered only after a few turns of that loop (read, verify, the commit's driver hops, answer). A worker
with many deliveries in flight makes every turn long, and the webhook waits each one.

IntakeFirst keeps the loop's lag (how late a callback scheduled now runs: what a webhook waits per turn) under
LAG_TARGET_SECONDS while webhooks queue behind each other (two or more in the intake at once), by setting how many
deliveries the worker may have in flight: halved when the lag is over the target, one more after a while without
that pressure, the configured number once no webhook came for QUIET_SECONDS. A burst (BURST webhooks in the intake at
once) halves it too, whatever the lag: the loop may keep up, yet every turn it gives a delivery is a webhook less
answered (measured: 1,567 → 3,398–3,560 webhooks/s closed loop with the worker delivering). A lag alone (a busy
machine, the worker's own work) never throttles it, so the worker keeps up with a moderate webhook rate, and once
the burst is over it grows back. Deliveries in flight finish; only new claims wait. Measured against a separate thread for the worker (its own loop and engine): that was
slower on both counts, because the worker's Python still holds the same GIL and two SQLite connections then wait for
each other's writes (docs/performance.md)."""

from __future__ import annotations

import asyncio
import time

from saleor_app.delivery.intake import OrderIntake
from saleor_app.delivery.worker import DeliveryWorker

LAG_TARGET_SECONDS = 0.004
SAMPLE_SECONDS = 0.010
QUIET_SECONDS = 1.0
GROW_EVERY = 5  # samples without pressure before one more delivery may start: down fast, up slowly
# This many webhooks in the intake at once is a burst (a sale, Saleor's own retries after an outage): each one the
# loop spends on deliveries meanwhile is a webhook less answered, so the worker gives way whatever the lag.
BURST = 8


class IntakeFirst:
    def __init__(self, worker: DeliveryWorker, intake: OrderIntake) -> None:
        self.worker = worker
        self.intake = intake
        self.full = worker.concurrency
        self.lag = 0.0  # the latest sample
        self._calm = 0  # samples without pressure so far

    async def run(self) -> None:
        """Until cancelled (the app's lifespan does at stop); gives the worker back its concurrency on the way out."""
        try:
            while True:
                asked = time.perf_counter()  # not loop.time(): uvloop's clock moves in whole milliseconds
                await asyncio.sleep(SAMPLE_SECONDS)
                self.lag = time.perf_counter() - asked - SAMPLE_SECONDS
                self.adjust(self.lag, queueing=self.intake.in_progress >= 2, burst=self.intake.in_progress >= BURST,
                            quiet=time.monotonic() - self.intake.last_received >= QUIET_SECONDS)
        finally:
            self.worker.concurrency = self.full

    def adjust(self, lag: float, *, queueing: bool, quiet: bool, burst: bool = False) -> None:
        before = self.worker.concurrency
        if quiet:
            after = self.full
        elif burst or (queueing and lag > LAG_TARGET_SECONDS):
            after = max(1, before // 2)
        elif not queueing or lag < LAG_TARGET_SECONDS / 2:
            self._calm += 1
            after = min(self.full, before + 1) if self._calm % GROW_EVERY == 0 else before
        else:
            after = before
        self.worker.concurrency = after
        if after > before:
            self.worker.ctx.signal.wake()  # free slots: let the worker claim now rather than at its next wake-up
