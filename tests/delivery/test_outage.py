"""VTmarketing down: after OPEN_AFTER sends in a row it could not take, the worker holds the queue back and sends one
order at a time as a probe, until VTmarketing answers (delivery/outage.py). The gate is driven with a chosen clock;
the worker against the fake VTmarketing answering 503, for real."""

from __future__ import annotations

import asyncio

import pytest

from saleor_app.delivery.outage import OPEN_AFTER, OutageGate
from saleor_app.metrics import Metrics
from tests.conftest import configure, place_order
from tests.faults import all_deliveries


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_gate(probe_every: float = 2.0) -> tuple[OutageGate, Clock, list, Metrics]:
    clock, woken, metrics = Clock(), [], Metrics()
    return OutageGate(metrics, probe_every=probe_every, wake=lambda: woken.append(1), clock=clock), clock, woken, metrics


def held_back(metrics: Metrics) -> float:
    return metrics.registry.get_sample_value("vtm_vtmarketing_held_back")


def test_it_holds_back_only_after_enough_failures_in_a_row() -> None:
    gate, _, _, metrics = make_gate()
    for _ in range(OPEN_AFTER - 1):
        gate.sent("retry")
    gate.sent("failed")  # VTmarketing answered (refused that event): it works, the count starts again
    for _ in range(OPEN_AFTER - 1):
        gate.sent("retry")
    assert not gate.holding and gate.may_start(in_flight=3, concurrency=64) == 61 and held_back(metrics) == 0
    gate.sent("retry")
    assert gate.holding and held_back(metrics) == 1


def test_while_held_back_one_probe_at_a_time_each_after_the_interval() -> None:
    gate, clock, _, _ = make_gate(probe_every=2.0)
    for _ in range(OPEN_AFTER):
        gate.sent("retry")
    assert gate.may_start(in_flight=0, concurrency=64) == 0 and gate.seconds_to_probe() == 2.0  # first probe: later
    clock.now += 2.0
    assert gate.may_start(in_flight=5, concurrency=64) == 0  # the sends started before still run: wait for them
    assert gate.may_start(in_flight=0, concurrency=64) == 1 and gate.seconds_to_probe() == 0.0
    gate.probe_started()
    assert gate.may_start(in_flight=0, concurrency=64) == 0 and gate.seconds_to_probe() == 2.0
    gate.sent("retry")  # the probe failed too: still held back
    clock.now += 1.5
    assert gate.holding and gate.may_start(in_flight=0, concurrency=64) == 0 and gate.seconds_to_probe() == 0.5


@pytest.mark.parametrize("answer", ["delivered", "failed"])
def test_any_answer_from_vtmarketing_lets_everything_go_at_once(answer: str) -> None:
    gate, _, woken, metrics = make_gate()
    for _ in range(OPEN_AFTER + 5):
        gate.sent("retry")
    gate.sent(answer)  # accepted, or refused with a verdict (a bad key, a bad event): VTmarketing is up
    assert not gate.holding and gate.seconds_to_probe() is None and woken == [1] and held_back(metrics) == 0
    assert gate.may_start(in_flight=0, concurrency=64) == 64


# Retries (and so probes, at most the retry cap apart) come quickly here; the test waits on what it sees, not on time.
@pytest.mark.parametrize("settings_overrides", [{"delivery_retry_base_seconds": 0.05,
                                                 "delivery_retry_max_seconds": 0.2}])
async def test_the_worker_probes_one_order_at_a_time_while_vtmarketing_is_down(live_app, fake_saleor, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    assert (await live_app.register(fake_saleor)).status_code == 200
    await configure(live_app, fake_saleor)
    fake_vtm.down()  # 503 to every request
    orders = [await place_order(live_app, fake_saleor) for _ in range(OPEN_AFTER + 10)]
    gate = live_app.worker.outage

    async def until(predicate, what: str, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate():
            assert asyncio.get_running_loop().time() < deadline, f"{what} not reached within {timeout:g} s"
            await asyncio.sleep(0.01)

    await until(lambda: gate.holding, "holding back")
    await until(lambda: not live_app.worker._in_flight, "the sends started before holding back ended")
    worker = live_app.worker
    schedules = []  # each time the worker's loop works out how long to sleep: once per turn
    plan_sleep = worker._sleep_budget

    async def counted() -> float:
        schedules.append(1)
        return await plan_sleep()

    worker._sleep_budget = counted
    seen = len(fake_vtm.requests)
    fake_vtm.max_in_flight = 0
    await until(lambda: len(fake_vtm.requests) >= seen + 4, "four probes")
    assert gate.holding and fake_vtm.max_in_flight == 1  # one order at a time, not every due one
    # Between probes the loop sleeps until the next one is due (a few turns per probe: its claim, its end), rather
    # than waking every few milliseconds to find that nothing may start: that would be ~40 turns per probe here.
    assert len(schedules) <= 5 * 5, len(schedules)
    metrics = live_app.ctx.metrics.registry
    assert metrics.get_sample_value("vtm_vtmarketing_held_back") == 1
    statuses = {d.status for d in await all_deliveries(live_app)}
    assert statuses <= {"retrying", "delivering", "pending"}  # all waiting, none given up on

    fake_vtm.up()
    events = await fake_vtm.wait_for_events(len(orders), timeout=60)
    assert sorted(e.order_id for e in events) == sorted(o["number"] for o in orders)  # each once
    await until(lambda: not gate.holding, "sending again")
    assert metrics.get_sample_value("vtm_vtmarketing_held_back") == 0
    # VTmarketing has every event; each delivery's settle may still be on its way: wait for the states.
    deadline = asyncio.get_running_loop().time() + 60
    while (statuses := [d.status for d in await all_deliveries(live_app)]) != ["delivered"] * len(orders):
        assert asyncio.get_running_loop().time() < deadline, statuses
        await asyncio.sleep(0.05)
