"""The in-process worker gives way to webhooks: fewer deliveries start while the loop lags with webhooks queueing,
all of them again once the webhooks stop (delivery/intake_first.py). Driven with chosen lag values, not measured
ones."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from saleor_app.delivery.intake_first import GROW_EVERY, LAG_TARGET_SECONDS, IntakeFirst


class Worker(SimpleNamespace):
    pass


def make(concurrency: int = 16) -> tuple[IntakeFirst, Worker, list]:
    woken: list = []
    worker = Worker(concurrency=concurrency, ctx=SimpleNamespace(signal=SimpleNamespace(wake=lambda: woken.append(1))))
    return IntakeFirst(worker, SimpleNamespace(last_received=float("-inf"))), worker, woken  # type: ignore[arg-type]


def test_a_lagging_loop_with_webhooks_queueing_halves_the_deliveries_that_may_start() -> None:
    gate, worker, _ = make(16)
    over = LAG_TARGET_SECONDS * 2
    for expected in (8, 4, 2, 1, 1):
        gate.adjust(over, queueing=True, quiet=False)
        assert worker.concurrency == expected


def test_a_lag_without_webhooks_queueing_does_not_throttle_the_worker() -> None:
    gate, worker, _ = make(16)
    for _ in range(20):  # a busy machine, or the worker's own work, at a moderate webhook rate
        gate.adjust(LAG_TARGET_SECONDS * 10, queueing=False, quiet=False)
    assert worker.concurrency == 16


def test_a_burst_of_webhooks_throttles_the_worker_whatever_the_lag() -> None:
    gate, worker, _ = make(16)
    for expected in (8, 4, 2, 1):  # a loop that keeps up (no lag), but every turn given to a delivery is a webhook less
        gate.adjust(0.0, queueing=True, burst=True, quiet=False)
        assert worker.concurrency == expected
    for _ in range(GROW_EVERY):  # the burst over, webhooks still coming one by one: it grows back, slowly
        gate.adjust(0.0, queueing=False, burst=False, quiet=False)
    assert worker.concurrency == 2


def test_it_grows_back_slowly_while_the_loop_keeps_up_and_at_once_without_webhooks() -> None:
    gate, worker, woken = make(16)
    worker.concurrency = 1
    for _ in range(GROW_EVERY * 3):
        gate.adjust(0.0, queueing=True, quiet=False)
    assert worker.concurrency == 4 and len(woken) == 3  # one more per GROW_EVERY calm samples, each a wake-up
    gate.adjust(LAG_TARGET_SECONDS * 0.75, queueing=True, quiet=False)  # between half the target and it: hold
    assert worker.concurrency == 4
    gate.adjust(LAG_TARGET_SECONDS * 10, queueing=True, quiet=True)  # no webhook lately: all of it, whatever the lag
    assert worker.concurrency == 16 and len(woken) == 4


async def test_stopping_it_gives_the_worker_its_concurrency_back() -> None:
    gate, worker, _ = make(16)
    gate.intake.last_received, gate.intake.in_progress = float("inf"), 5  # webhooks queueing "now"
    worker.concurrency = 2
    task = asyncio.create_task(gate.run())
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert worker.concurrency == 16
