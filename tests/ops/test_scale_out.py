"""Scale-out, proven: two web processes and two workers on one PostgreSQL; 500 signed orders spread over both web
processes; one worker SIGKILLed half-way. Every order reaches VTmarketing; an order is sent twice only if the killed
worker had it in flight; nothing is left waiting."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

from tests.ops.procs import Deployment, assert_logs_clean, event_counts, postgres_url, wait_until  # noqa: F401 (fixture)

ORDERS = 500
CONCURRENCY = 8  # per worker: the most deliveries the killed one can have in flight
LATENCY = 0.02
LEASE_SECONDS = 3


def stored_lines(process) -> int:  # type: ignore[no-untyped-def]
    return sum(1 for e in process.json_lines() if e.get("message", "").endswith("stored (stored)"))


def delivered_lines(process) -> int:  # type: ignore[no-untyped-def]
    return sum(1 for e in process.json_lines() if " delivered: " in e.get("message", "")
               and e.get("logger") == "saleor_app.delivery.worker")


def test_500_orders_two_webs_two_workers_one_killed_half_way(tmp_path, postgres_url, fake_saleor, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    url = postgres_url
    d = Deployment(tmp_path, url, fake_saleor, fake_vtm, DELIVERY_CONCURRENCY=CONCURRENCY,
                   DELIVERY_LEASE_SECONDS=LEASE_SECONDS, DELIVERY_POLL_SECONDS=0.5)
    try:
        test_started = time.monotonic()
        d.cli("migrate")  # as the compose file's one-shot `migrate` service
        webs = [d.serve(worker=False, wait=False), d.serve(worker=False, wait=False)]
        victim, survivor = d.worker(wait=False), d.worker(wait=False)
        d.wait_started(*webs, victim, survivor)
        d.install(webs[0])
        d.set_channel_key()
        fake_vtm.latency = LATENCY
        hooks = [d.new_order() for _ in range(ORDERS)]  # signed up front: Saleor's side is not under test
        numbers = {order["number"] for order, _, _ in hooks}

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=1) as sender:
            sending = sender.submit(d.send_webhooks, webs, hooks, threads=8)
            wait_until(lambda: len(fake_vtm.events) >= ORDERS // 2, timeout=60, interval=0.01,
                       what="half the orders delivered")
            victim.kill()
            # From here the victim is dead: what VTmarketing had accepted by now is all it can have sent.
            kill_time = time.monotonic()
            events_at_kill = len(fake_vtm.events)
            statuses = sending.result(timeout=300)
        sent_at = time.monotonic()
        assert set(statuses) == {200}, f"webhooks refused: {[s for s in statuses if s != 200][:5]}"

        counts = d.wait_all_finished(ORDERS, timeout=300)
        assert counts == {"delivered": ORDERS}, counts
        wait_until(lambda: numbers <= set(event_counts(fake_vtm)), timeout=60, what="every order at VTmarketing")
        elapsed = time.monotonic() - started

        per_order = event_counts(fake_vtm)
        assert set(per_order) == numbers  # all of them, nothing else
        duplicates = {number: n for number, n in per_order.items() if n > 1}
        # Only what the killed worker had in flight may go twice, and only once more.
        assert len(duplicates) <= CONCURRENCY, duplicates
        assert all(n == 2 for n in duplicates.values()), duplicates
        first_sent: dict[str, float] = {}
        for request in fake_vtm.requests:
            try:
                number = json.loads(request.body)["event"]["confirmation"]["generic"]["orderId"]
            except ValueError:  # a send the SIGKILL cut short: its body never fully arrived (nor was accepted)
                continue
            first_sent.setdefault(number, request.received_at)
        # A duplicated order was first sent while the killed worker was still alive (before it was dead).
        late = {n: first_sent[n] - kill_time for n in duplicates if first_sent[n] > kill_time}
        assert not late, f"sent twice although first sent after the kill: {late}"

        # Both web processes took orders; the survivor finished the work.
        assert all(w.alive for w in webs) and survivor.alive
        stored = [stored_lines(w) for w in webs]
        assert sum(stored) == ORDERS and min(stored) > 0, stored
        # Whatever VTmarketing had not accepted when the victim died, the survivor delivered.
        assert delivered_lines(survivor) >= ORDERS - events_at_kill
        assert_logs_clean([*webs, victim, survivor], d.api_key, fake_saleor.app_token)
        ev = sorted(e.received_at for e in fake_vtm.events)
        print(f"\nscale-out timeline (s): first event {ev[0]-started:.1f} kill {kill_time-started:.1f} sent {sent_at-started:.1f} "
              f"last event {ev[-1]-started:.1f}; per-10%: {[round(ev[i]-started,1) for i in range(0, len(ev), len(ev)//10)]}")
        print(f"\nscale-out: {ORDERS} orders in {elapsed:.1f} s (test {time.monotonic() - test_started:.1f} s); "
              f"killed a worker at {events_at_kill} events; duplicates {len(duplicates)}; "
              f"stored per web {stored}; delivered by victim {delivered_lines(victim)}, "
              f"survivor {delivered_lines(survivor)}")
    finally:
        d.close()
