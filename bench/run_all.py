"""`make bench`: the app's performance figures in one table.

    .venv/bin/python bench/run_all.py                 # everything (~10 min; PostgreSQL too if TEST_DATABASE_URL)
    .venv/bin/python bench/run_all.py --quick         # small counts: a smoke run (~1 min)
    .venv/bin/python bench/run_all.py --only ingest,sync

Sections: ingest, delivery (with the VTmarketing outage), sync, memory, startup, postgres, feed (the product feed of
a 100,000-variant catalogue: build time, memory, downloads). See bench/README.md for
what each figure means. The app runs as real `saleor-vtmarketing serve` processes, the fakes in a helper process,
the load generator here (raw asyncio HTTP/1.1). Every loop is bounded in count and in time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import httpx

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from bench import claim_cost, harness  # noqa: E402
from bench.harness import Fakes, Server, Workspace  # noqa: E402
from bench import wrk_load  # noqa: E402
from bench.loadgen import LoadResult, build_request, closed_loop, open_loop, percentile, warm_up  # noqa: E402
from bench.wrk_load import WrkResult  # noqa: E402
from saleor_app.saleor.manifest import ORDER_CONFIRMED  # noqa: E402

SECTIONS = ("ingest", "delivery", "sync", "memory", "startup", "postgres", "feed")
WEBHOOK_PATH = ORDER_CONFIRMED.path  # where the manifest tells Saleor to send ORDER_CONFIRMED
VTM_LATENCY = 0.100  # seconds: VTmarketing's answer time in every scenario


@dataclass
class Counts:
    ingest: int = 20_000  # distinct orders for the closed loop (wrk), each sent once ...
    ingest_seconds: float = 20.0  # ... within this time (the run stops there if they are not all answered)
    bare_orders: int = 3000  # the bare endpoint's closed loop cycles these ...
    bare_seconds: float = 10.0  # ... for this long
    concurrency: int = 32
    rate: float = 200.0  # open-loop offered rate
    rate_seconds: float = 15.0
    backlog: int = 3000  # deliveries drained by one process
    normal_rate: float = 2000 / 60  # the rate orders arrive at before and during the outage
    normal_seconds: float = 15.0
    outage_orders: int = 2000
    outage_seconds: float = 60.0
    retry_max: float = 5.0  # DELIVERY_RETRY_MAX_SECONDS for the delivery scenario
    memory_orders: int = 30_000  # the figure: RSS < 150 MB after 30,000 orders
    startup_spawns: int = 3
    warmup: int = 50
    feed_variants: int = 100_000
    feed_downloads: int = 5
    claim_due: tuple[int, int] = (10, 10_000)  # orders due in the claim micro-benchmark
    claims: int = 300  # claims timed per case
    scale_backlog: int = 3000  # PostgreSQL scale-out: orders drained by one, then by two workers

    @classmethod
    def quick(cls) -> "Counts":
        return cls(ingest=1000, ingest_seconds=5.0, bare_orders=200, bare_seconds=2.0, rate=100.0, rate_seconds=2.0, backlog=100, normal_rate=20.0, normal_seconds=2.0,
                   outage_orders=40, outage_seconds=2.0, retry_max=1.0, memory_orders=200, startup_spawns=0, warmup=10,
                   feed_variants=2_000, feed_downloads=2, claim_due=(10, 1000), claims=20, scale_backlog=200)


@dataclass
class Row:
    section: str
    figure: str
    value: str
    target: str = ""
    verdict: str = ""  # "ok", "MISSED" or ""
    load: str = ""


@dataclass
class Bench:
    counts: Counts
    quick: bool
    fakes: Fakes
    ws: Workspace
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)
    fresh_startups: list[float] = field(default_factory=list)

    def row(self, section: str, figure: str, value: str, target: str = "", ok: bool | None = None) -> None:
        verdict = "" if ok is None else ("ok" if ok else "MISSED")
        self.rows.append(Row(section, figure, value, target, verdict, f"{os.getloadavg()[0]:.1f}"))
        print(f"  [{section}] {figure}: {value}" + (f"  (target {target}: {verdict})" if target else ""), flush=True)


# --- helpers ----------------------------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def requests_for(server: Server, orders: list[dict[str, Any]]) -> list[bytes]:
    return [build_request("127.0.0.1", server.port, WEBHOOK_PATH, o["body"].encode("ascii"), o["headers"]) for o in orders]


def run_closed(server: Server, orders: list[dict[str, Any]], concurrency: int, time_limit: float = 300.0) -> LoadResult:
    return asyncio.run(closed_loop("127.0.0.1", server.port, requests_for(server, orders), concurrency=concurrency,
                                   time_limit=time_limit))


def run_open(server: Server, orders: list[dict[str, Any]], rate: float, seconds: float) -> LoadResult:
    return asyncio.run(open_loop("127.0.0.1", server.port, requests_for(server, orders), rate=rate,
                                 time_limit=seconds))


def run_warmup(server: Server, orders: list[dict[str, Any]]) -> None:
    asyncio.run(warm_up("127.0.0.1", server.port, requests_for(server, orders)))


def status_note(result: LoadResult) -> str:
    bad = {k: v for k, v in result.statuses.items() if k != 200}
    return "" if not bad else " (non-200: " + ", ".join(f"{'conn error' if k == 0 else k}×{v}" for k, v in bad.items()) + ")"


def cpu_seconds(server: Server) -> float:
    import psutil

    times = psutil.Process(server.pid).cpu_times()
    return times.user + times.system


def wait_numbers(fakes: Fakes, numbers: set[str], timeout: float) -> dict[str, list]:
    """Until VTmarketing accepted an event for every order number in `numbers`; {number: [number, arrived,
    accepted]} of the first event of each (bounded by timeout: whatever arrived by then)."""
    found: dict[str, list] = {}
    index = 0
    deadline = time.monotonic() + timeout
    while True:
        events = fakes.events(index)
        index += len(events)
        for event in events:
            if event[0] in numbers and event[0] not in found:
                found[event[0]] = event
        if len(found) >= len(numbers) or time.monotonic() >= deadline:
            return found
        time.sleep(0.2)


def accepted_numbers(orders: list[dict[str, Any]], result: LoadResult) -> set[str]:
    """The order numbers of the webhooks the app answered 200 (stored): the ones it must deliver."""
    return {orders[i]["number"] for i in result.answered_at}


def latency_rows(b: Bench, section: str, label: str, result: LoadResult, *, target_p99: float | None = None) -> None:
    p50, p99 = result.percentile(50), result.percentile(99)
    value = f"p50 {ms(p50)} ms / p99 {ms(p99)} ms ({result.ok}/{result.sent} answered 200{status_note(result)})"
    if target_p99 is None:
        b.row(section, label, value)
    else:
        b.row(section, label, value, f"p99 < {ms(target_p99)} ms", p99 < target_p99 and result.errors == 0)


def start_app(b: Bench, name: str, env: dict[str, str], *, fresh: bool, worker: bool = True) -> Server:
    server = b.ws.serve(name, env, worker=worker)
    if fresh and worker and env["DATABASE_URL"].startswith("sqlite"):
        b.fresh_startups.append(server.startup_seconds)
    return server


def install(b: Bench, server: Server, env: dict[str, str]) -> None:
    harness.register_over_http(server, b.fakes)
    harness.configure_channel(env, b.fakes)


# --- 1. ingest -------------------------------------------------------------------------------------------------


def wrk_closed(server: Server, orders: list[dict[str, Any]], concurrency: int, time_limit: float, *,
               cycle: bool = False) -> WrkResult:
    return wrk_load.closed_loop("127.0.0.1", server.port, requests_for(server, orders), connections=concurrency,
                                time_limit=time_limit, cycle=cycle)


def ingest_figures(b: Bench, section: str, env: dict[str, str], *, fresh: bool, worker: bool = True) -> dict[str, Any]:
    """Into a fresh `serve` process (VTmarketing 100 ms): closed-loop webhooks/s from wrk, each order sent once; then
    at once, while the worker (worker=True) still drains what that left, the open loop's answer times. With
    worker=False, `serve --no-worker`: the web side alone, nothing is delivered."""
    c = b.counts
    b.fakes.clear()
    b.fakes.vtm(latency=VTM_LATENCY, down=False)
    orders = b.fakes.orders(c.warmup + c.ingest + int(c.rate * c.rate_seconds))
    warm, closed, opened = orders[: c.warmup], orders[c.warmup : c.warmup + c.ingest], orders[c.warmup + c.ingest :]
    server = start_app(b, f"{section}-serve", env, fresh=fresh, worker=worker)
    try:
        install(b, server, env)
        run_warmup(server, warm)
        cpu0 = cpu_seconds(server)
        result = wrk_closed(server, closed, c.concurrency, c.ingest_seconds)
        cpu = cpu_seconds(server) - cpu0
        backlog = c.warmup + result.ok - b.fakes.stats()["vtm_events"] if worker else 0
        timed = run_open(server, opened, c.rate, c.rate_seconds)
        left = c.warmup + result.ok + timed.ok - b.fakes.stats()["vtm_events"] if worker else 0
        return {"closed": result, "open": timed, "cpu_per_request": cpu / max(1, result.sent),
                "backlog": backlog, "backlog_after": left}
    finally:
        server.stop()


def bare_figures(b: Bench) -> dict[str, Any]:
    c = b.counts
    orders = b.fakes.orders(c.warmup + c.bare_orders + int(c.rate * c.rate_seconds))
    warm, closed = orders[: c.warmup], orders[c.warmup : c.warmup + c.bare_orders]
    opened = orders[c.warmup + c.bare_orders :]
    server = b.ws.script("bare", "bare_app.py")
    try:
        run_warmup(server, warm)
        cpu0 = cpu_seconds(server)
        result = wrk_closed(server, closed, c.concurrency, c.bare_seconds, cycle=True)
        cpu = cpu_seconds(server) - cpu0
        timed = run_open(server, opened, c.rate, c.rate_seconds)
        return {"closed": result, "open": timed, "cpu_per_request": cpu / max(1, result.sent)}
    finally:
        server.stop()


def closed_value(result: WrkResult, cpu_per_request: float, what: str = "webhook") -> str:
    return (f"{result.rate:.0f}/s ({result.ok} in {result.elapsed:.1f} s{status_note(result)}; wrk p50 "
            f"{ms(result.percentile(50))} / p99 {ms(result.percentile(99))} ms); CPU {cpu_per_request * 1000:.3f} ms/{what}")


def ingest_rows(b: Bench, s: str, bare: dict[str, Any], web: dict[str, Any], app: dict[str, Any], *,
                database: str) -> None:
    """The issue's table: `serve --no-worker` and `serve` with its worker delivering meanwhile, beside the bare
    endpoint of the same run."""
    c = b.counts
    bare_rate = bare["closed"].rate

    def ratio(result: WrkResult) -> float:
        return result.rate / bare_rate if bare_rate else float("nan")

    b.row(s, f"app, serve --no-worker ({database}): signed ORDER_CONFIRMED/s, wrk closed loop c={c.concurrency}, "
             "each order once", closed_value(web["closed"], web["cpu_per_request"]),
          "CPU ≤ 0.3 ms/webhook", web["cpu_per_request"] <= 0.0003 and web["closed"].errors == 0)
    b.row(s, "ratio serve --no-worker / bare", f"{ratio(web['closed']):.3f}", "≥ 0.25", ratio(web["closed"]) >= 0.25)
    b.row(s, f"app, serve with its worker delivering meanwhile ({database}): webhooks/s, same load",
          closed_value(app["closed"], app["cpu_per_request"]) + " (CPU includes the worker's)")
    b.row(s, "ratio serve (worker delivering) / bare", f"{ratio(app['closed']):.3f}", "≥ 0.10",
          ratio(app["closed"]) >= 0.10)
    latency_rows(b, s, f"serve --no-worker: time to answer, open loop {c.rate:g}/s for {c.rate_seconds:g} s",
                 web["open"], target_p99=0.050)
    latency_rows(b, s, f"serve, time to answer, open loop {c.rate:g}/s while its worker drains a backlog "
                       f"({app['backlog']} orders at start, {app['backlog_after']} at end)",
                 app["open"], target_p99=0.050)


def section_ingest(b: Bench) -> None:
    c = b.counts
    s = "1 ingest (SQLite)"
    bare = bare_figures(b)
    b.results["bare"] = bare
    b.row(s, f"bare Starlette endpoint (reads the body, answers 200): requests/s, wrk closed loop c={c.concurrency}",
          closed_value(bare["closed"], bare["cpu_per_request"], "request"))
    latency_rows(b, s, f"bare: time to answer, open loop {c.rate:g}/s (reference)", bare["open"])
    env = b.ws.app_settings("ingest-web", None, b.fakes.info["vtm_api_url"])
    web = ingest_figures(b, "ingest-web", env, fresh=True, worker=False)
    env = b.ws.app_settings("ingest", None, b.fakes.info["vtm_api_url"])
    app = ingest_figures(b, "ingest", env, fresh=True)
    b.results["ingest"], b.results["ingest_web"] = app, web
    ingest_rows(b, s, bare, web, app, database="SQLite")
    if app["open"].max_lag > 0.010 or bare["open"].max_lag > 0.010:
        b.notes.append(f"open-loop generator lag (max): app run {ms(app['open'].max_lag)} ms, bare run "
                       f"{ms(bare['open'].max_lag)} ms; latencies are measured from the scheduled send time, so this "
                       "lag is included in them.")


def postgres_ingest_rows(b: Bench, url: str) -> None:
    """Section 1's rows on PostgreSQL, beside the bare endpoint measured in section 1 of this run (or now)."""
    bare = b.results.get("bare") or bare_figures(b)
    asyncio.run(harness.reset_postgres(url))
    env = b.ws.app_settings("pg-ingest-web", url, b.fakes.info["vtm_api_url"])
    web = ingest_figures(b, "pg-ingest-web", env, fresh=False, worker=False)
    asyncio.run(harness.reset_postgres(url))
    env = b.ws.app_settings("pg-ingest", url, b.fakes.info["vtm_api_url"])
    app = ingest_figures(b, "pg-ingest", env, fresh=False)
    ingest_rows(b, "5 PostgreSQL", bare, web, app, database=url.split("@")[-1])


# --- 2. delivery ----------------------------------------------------------------------------------------------


def delivery_figures(b: Bench, section: str, env: dict[str, str], *, with_outage: bool) -> dict[str, Any]:
    """Drain a pre-stored backlog with one `serve` process; then webhook→VTmarketing delay at a moderate rate;
    then (with_outage) VTmarketing down while orders keep arriving, and the drain once it is back."""
    c = b.counts
    out: dict[str, Any] = {}
    b.fakes.clear()
    b.fakes.vtm(latency=VTM_LATENCY, down=False)
    backlog = b.fakes.orders(c.backlog)
    out["prefill_seconds"] = harness.prefill_queue(env, b.fakes, backlog)
    server = start_app(b, f"{section}-serve", env, fresh=False)
    try:
        cpu0 = cpu_seconds(server)  # start-up done; the worker began on the backlog moments ago
        numbers = {o["number"] for o in backlog}
        found = wait_numbers(b.fakes, numbers, timeout=120 + c.backlog / 20)
        out["backlog_delivered"] = len(found)
        out["cpu_per_delivery"] = (cpu_seconds(server) - cpu0) / max(1, len(found))
        if found:
            first = min(e[1] for e in found.values())
            last = max(e[2] for e in found.values())
            out["drain_rate"] = len(found) / (last - first) if last > first else float("nan")
            out["drain_seconds"] = last - first

        # Normal traffic: answer times and webhook → VTmarketing delay.
        normal = b.fakes.orders(int(c.normal_rate * c.normal_seconds))
        result = run_open(server, normal, c.normal_rate, c.normal_seconds)
        arrived = wait_numbers(b.fakes, accepted_numbers(normal, result), timeout=60 + len(normal) / 20)
        delays, delays_arrival = [], []
        for i, answered in result.answered_at.items():
            event = arrived.get(normal[i]["number"])
            if event:
                delays.append(event[2] - answered)
                delays_arrival.append(event[1] - answered)
        out.update(normal=result, delays=delays, delays_arrival=delays_arrival, normal_delivered=len(arrived))

        if with_outage:
            outage = b.fakes.orders(c.outage_orders)
            requests_before = b.fakes.stats()["vtm_requests"]  # the counter runs from clear(): backlog and normal too
            b.fakes.vtm(down=True)
            down_at = time.time()
            result = run_open(server, outage, c.outage_orders / c.outage_seconds, c.outage_seconds + 1)
            requests_during = b.fakes.stats()["vtm_requests"] - requests_before
            up_at = b.fakes.vtm(down=False)["at"]
            accepted = accepted_numbers(outage, result)
            found = wait_numbers(b.fakes, accepted, timeout=120 + c.outage_orders / 20)
            out.update(outage=result, outage_seconds=up_at - down_at, outage_delivered=len(found),
                       outage_accepted=len(accepted), outage_requests=requests_during)
            if found:
                out["outage_drain"] = max(e[2] for e in found.values()) - up_at
        out["rss"] = server.rss()
    finally:
        server.stop()
    return out


def section_delivery(b: Bench) -> None:
    c = b.counts
    env = b.ws.app_settings("delivery", None, b.fakes.info["vtm_api_url"],
                            DELIVERY_RETRY_MAX_SECONDS=f"{c.retry_max:g}")
    d = delivery_figures(b, "delivery", env, with_outage=True)
    b.results["delivery"] = d
    s = "2 delivery (SQLite)"
    drain_rows(b, s, d)
    delay = statistics.median(d["delays"]) if d["delays"] else float("nan")
    b.row(s, f"webhook 200 → VTmarketing accepted, median (p95), {c.normal_rate:.0f}/s for {c.normal_seconds:g} s",
          f"{ms(delay)} ms ({ms(percentile(d['delays'], 95))} ms); to arrival at VTmarketing "
          f"{ms(statistics.median(d['delays_arrival']) if d['delays_arrival'] else float('nan'))} ms",
          "< 150 ms (50 + 100)", delay < 0.150)
    latency_rows(b, s, f"time to answer, VTmarketing up, {c.normal_rate:.0f}/s", d["normal"])
    outage = d["outage"]
    normal_p99 = d["normal"].percentile(99)
    same = outage.percentile(99) <= max(2 * normal_p99, normal_p99 + 0.010) and outage.errors == 0
    b.row(s, f"time to answer during a {d['outage_seconds']:.0f} s VTmarketing outage, {c.outage_orders} orders",
          f"p50 {ms(outage.percentile(50))} ms / p99 {ms(outage.percentile(99))} ms "
          f"({outage.ok}/{outage.sent} answered 200{status_note(outage)}); {d['outage_requests']} sends refused meanwhile",
          "≈ unchanged vs up", same)
    drain = d.get("outage_drain", float("nan"))
    complete = d["outage_delivered"] == d["outage_accepted"]
    b.row(s, f"backlog drained after VTmarketing is back (DELIVERY_RETRY_MAX_SECONDS={c.retry_max:g})",
          f"{drain:.1f} s ({d['outage_delivered']}/{d['outage_accepted']} accepted orders delivered"
          + (", none lost)" if complete else " — the others were NOT delivered in time)"), "",
          None if complete else False)
    claim_rows(b, s, claim_cost.sqlite_costs(b.ws.root, list(c.claim_due), c.claims))


def drain_rows(b: Bench, section: str, d: dict[str, Any]) -> None:
    """Deliveries/s and CPU per delivery of one process at the app's default concurrency (targets of issue 13)."""
    from saleor_app.config import Settings

    c = b.counts
    rate, cpu = d.get("drain_rate", float("nan")), d["cpu_per_delivery"]
    concurrency = Settings.model_fields["delivery_concurrency"].default
    b.row(section, f"deliveries/s, one serve process draining {c.backlog} stored orders, VTmarketing 100 ms, "
          f"DELIVERY_CONCURRENCY={concurrency} (default)",
          f"{rate:.0f}/s ({d['backlog_delivered']}/{c.backlog} in {d.get('drain_seconds', float('nan')):.1f} s); "
          f"app CPU {ms(cpu)} ms/delivery; RSS after {d['rss'] / 2**20:.0f} MB",
          "≥ 200/s, ≤ 3 ms CPU", rate >= 200 and cpu <= 0.003 and d["backlog_delivered"] == c.backlog)


def claim_rows(b: Bench, section: str, costs: list[claim_cost.ClaimCost]) -> None:
    """The claim statement with few and many due (in-process, each claim rolled back), and the plan it got."""
    for cost in costs:
        b.row(section, f"claim of {claim_cost.CLAIM_LIMIT} with {cost.due} orders due (in-process, rolled back; "
              f"mean of {b.counts.claims})",
              f"{cost.wall_ms:.2f} ms wall, {cost.cpu_ms:.2f} ms CPU per claim ({cost.claimed} claimed)")
    few, many = costs[0], costs[-1]
    # With 10 rows in the table PostgreSQL may well sort them; with many due, a sort would be the cost that grows.
    sorted_many = "TEMP B-TREE" in many.plan or "Sort Key" in many.plan
    b.row(section, f"claim cost, {many.due} due ÷ {few.due} due (wall)",
          f"{many.wall_ms / few.wall_ms:.2f}; with {many.due} due the plan " + ("SORTS them" if sorted_many else
                                                                                "reads the queue index, no sort"),
          "≈ 1 (no sort of the due rows)", not sorted_many and many.wall_ms / few.wall_ms < 1.5)
    b.notes.append(f"{section}: plan of the claim with {many.due} due: {many.plan[:400]}")


# --- 3. synchronous forwarder ----------------------------------------------------------------------------------


def section_sync(b: Bench) -> None:
    c = b.counts
    b.fakes.clear()
    b.fakes.vtm(latency=VTM_LATENCY, down=False)
    n = c.bare_orders  # the Python closed loop: the forwarder waits 100 ms per webhook, far below its cap
    orders = b.fakes.orders(c.warmup + n + int(c.rate * c.rate_seconds))
    warm, closed, opened = orders[: c.warmup], orders[c.warmup : c.warmup + n], orders[c.warmup + n :]
    server = b.ws.script("sync", "sync_forwarder.py", {"VTMARKETING_API_URL": b.fakes.info["vtm_api_url"]})
    try:
        run_warmup(server, warm)
        result = run_closed(server, closed, c.concurrency)
        timed = run_open(server, opened, c.rate, c.rate_seconds)
    finally:
        server.stop()
    s = "3 sync forwarder"
    ours = b.results.get("ingest")
    b.row(s, f"sync forwarder (calls VTmarketing 100 ms inside the webhook): webhooks/s, c={c.concurrency}",
          f"{result.rate:.0f}/s{status_note(result)}" + (f" — ours: {ours['closed'].rate:.0f}/s" if ours else ""))
    value = f"p50 {ms(timed.percentile(50))} ms / p99 {ms(timed.percentile(99))} ms{status_note(timed)}"
    if ours:
        value += f" — ours: p50 {ms(ours['open'].percentile(50))} ms / p99 {ms(ours['open'].percentile(99))} ms"
    b.row(s, f"sync forwarder: time to answer, open loop {c.rate:g}/s", value)


# --- 4. memory and start-up ------------------------------------------------------------------------------------


def section_memory(b: Bench) -> None:
    c = b.counts
    b.fakes.clear()
    b.fakes.vtm(latency=VTM_LATENCY, down=False)
    orders = b.fakes.orders(c.memory_orders)
    env = b.ws.app_settings("memory", None, b.fakes.info["vtm_api_url"])
    server = start_app(b, "memory-serve", env, fresh=True)
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.5):
            try:
                server.rss()
            except Exception:  # noqa: BLE001 - the process may be stopping
                return

    sampler = threading.Thread(target=sample, daemon=True)
    try:
        install(b, server, env)
        start_rss = server.rss()
        sampler.start()
        started = time.time()
        result = run_closed(server, orders, c.concurrency, time_limit=600)
        found = wait_numbers(b.fakes, accepted_numbers(orders, result), timeout=120 + c.memory_orders / 20)
        end_to_end = max((e[2] for e in found.values()), default=float("nan")) - started
        time.sleep(1.0)
        final = server.rss()
    finally:
        stop.set()
        server.stop()
    s = "4 memory, start-up"
    peak = max(server.rss_samples)
    b.row(s, f"serve RSS after {len(found)} orders delivered (SQLite, worker in-process)",
          f"{final / 2**20:.0f} MB (at start {start_rss / 2**20:.0f} MB, peak {peak / 2**20:.0f} MB; "
          f"{result.ok}/{result.sent} webhooks answered 200, end to end {len(found) / end_to_end:.0f} orders/s)",
          "< 150 MB", final < 150 * 2**20 and len(found) == result.ok)


def section_startup(b: Bench) -> None:
    for i in range(b.counts.startup_spawns if b.fresh_startups or b.counts.startup_spawns else 1):
        env = b.ws.app_settings(f"startup-{i}", None, b.fakes.info["vtm_api_url"])
        server = start_app(b, f"startup-{i}", env, fresh=True)
        server.stop()
    samples = b.fresh_startups
    b.row("4 memory, start-up", f"start-up: spawn → first served GET /api/manifest (fresh SQLite), median of {len(samples)}",
          f"{statistics.median(samples):.2f} s (min {min(samples):.2f}, max {max(samples):.2f})")


# --- 5. PostgreSQL -----------------------------------------------------------------------------------------------


def bench_database_url() -> str | None:
    """BENCH_DATABASE_URL, or TEST_DATABASE_URL's server with a database of its own (`<name>_bench`): the tests
    reset TEST_DATABASE_URL's schema at will, the bench must neither break them nor be broken by them."""
    url = os.environ.get("BENCH_DATABASE_URL", "")
    if not url:
        test_url = os.environ.get("TEST_DATABASE_URL", "")
        if not test_url:
            return None
        base, _, name = test_url.rpartition("/")
        name, _, query = name.partition("?")
        url = f"{base}/{name}_bench" + (f"?{query}" if query else "")
    if url.startswith("postgresql://"):
        url = "postgresql+asyncpg://" + url[len("postgresql://"):]
    return url


def section_postgres(b: Bench) -> None:
    url = bench_database_url()
    if url is None:
        b.notes.append("PostgreSQL skipped: set TEST_DATABASE_URL (or BENCH_DATABASE_URL) to include it.")
        return
    c = b.counts
    asyncio.run(harness.ensure_database(url))
    s = "5 PostgreSQL"
    postgres_ingest_rows(b, url)
    asyncio.run(harness.reset_postgres(url))
    env = b.ws.app_settings("pg-delivery", url, b.fakes.info["vtm_api_url"])
    d = delivery_figures(b, "pg-delivery", env, with_outage=False)
    drain_rows(b, s, d)
    delay = statistics.median(d["delays"]) if d["delays"] else float("nan")
    b.row(s, f"webhook 200 → VTmarketing accepted, median (p95), {c.normal_rate:.0f}/s",
          f"{ms(delay)} ms ({ms(percentile(d['delays'], 95))} ms)", "< 150 ms", delay < 0.150)
    claim_rows(b, s, claim_cost.postgres_costs(url, list(c.claim_due), c.claims, harness.reset_postgres))
    scale_out_rows(b, s, url, concurrency=None)
    scale_out_rows(b, s, url, concurrency=16)


def scale_out_figures(b: Bench, url: str, workers: int, concurrency: int | None) -> dict[str, Any]:
    """`workers` × `saleor-vtmarketing worker` beside one `serve --no-worker` draining a stored backlog. The rate
    counts from the moment the last worker is up (they start one after another) to the last acceptance."""
    import psutil

    c = b.counts
    asyncio.run(harness.reset_postgres(url))
    b.fakes.clear()
    b.fakes.vtm(latency=VTM_LATENCY, down=False)
    backlog = b.fakes.orders(c.scale_backlog)
    extra = {} if concurrency is None else {"DELIVERY_CONCURRENCY": str(concurrency)}
    env = b.ws.app_settings(f"pg-scale-{workers}", url, b.fakes.info["vtm_api_url"], **extra)
    harness.prefill_queue(env, b.fakes, backlog)
    web = b.ws.serve(f"pg-scale-{workers}-web", env, worker=False)
    procs = []
    try:
        for i in range(workers):
            procs.append(b.ws.worker(f"pg-scale-{workers}-worker{i + 1}", env))
        all_up, cpu0, machine0 = time.time(), sum(cpu_seconds(p) for p in procs), psutil.cpu_times()
        found = wait_numbers(b.fakes, {o["number"] for o in backlog}, timeout=120 + c.scale_backlog / 20)
        cpu, machine1 = sum(cpu_seconds(p) for p in procs) - cpu0, psutil.cpu_times()
        events = b.fakes.events(0)
    finally:
        for proc in procs:
            proc.stop()
        web.stop()
    after_up = [e for e in found.values() if e[2] >= all_up]
    last = max((e[2] for e in after_up), default=float("nan"))
    # How busy the whole machine was meanwhile (workers, PostgreSQL, the fakes, serve), in cores: at 2 of 2 the
    # workers cannot go faster together, whatever the claims do.
    total = sum(machine1) - sum(machine0)
    idle = (machine1.idle + machine1.iowait) - (machine0.idle + machine0.iowait)
    return dict(delivered=len(found), rate=len(after_up) / (last - all_up) if after_up else float("nan"),
                cpu_per_delivery=cpu / max(1, len(after_up)), twice=len(events) - len({e[0] for e in events}),
                busy_cores=(1 - idle / total) * (os.cpu_count() or 1) if total > 0 else float("nan"))


def scale_out_rows(b: Bench, section: str, url: str, *, concurrency: int | None) -> None:
    c = b.counts
    one = scale_out_figures(b, url, 1, concurrency)
    two = scale_out_figures(b, url, 2, concurrency)
    label = "default DELIVERY_CONCURRENCY" if concurrency is None else f"DELIVERY_CONCURRENCY={concurrency}"
    for n, figures in ((1, one), (2, two)):
        b.row(section, f"{n} worker process{'es' if n > 1 else ''} beside serve --no-worker, {label}, "
              f"{c.scale_backlog} stored orders",
              f"{figures['rate']:.0f}/s ({figures['delivered']}/{c.scale_backlog} delivered, "
              f"{figures['twice']} sent twice); workers' CPU {ms(figures['cpu_per_delivery'])} ms/delivery; machine "
              f"busy {figures['busy_cores']:.1f} of {os.cpu_count()} cores")
    ratio = two["rate"] / one["rate"]
    b.row(section, f"2 workers ÷ 1 worker, {label}", f"{ratio:.2f}", "≥ 1.8", ratio >= 1.8)


# --- 6. the product feed ------------------------------------------------------------------------------------------


def feed_build_figures(b: Bench, name: str, env: dict[str, str]) -> dict[str, Any]:
    """`serve` with its worker builds the feed of the fakes' catalogue (turned on as the CLI does); its RSS is
    sampled every 0.1 s. Returns the build's figures and the server (still running) for the downloads."""
    server = start_app(b, name, env, fresh=False)
    install(b, server, env)
    time.sleep(1.0)  # let the process settle (first requests served, caches warm)
    before = max(server.rss() for _ in range(3))
    samples_from = len(server.rss_samples)
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.1):
            try:
                server.rss()
            except Exception:  # noqa: BLE001 - the process may be stopping
                return

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        cpu0 = cpu_seconds(server)
        url = harness.configure_feed(env, b.fakes)
        turned_on = time.perf_counter()
        deadline = time.monotonic() + 900
        state: dict[str, Any] = {}
        while time.monotonic() < deadline:
            state = harness.feed_state(env)
            if state.get("built_at") or (state.get("error") and not state.get("building")):
                break
            time.sleep(0.5)
        wall = time.perf_counter() - turned_on
        cpu = cpu_seconds(server) - cpu0
    finally:
        stop.set()
        sampler.join(timeout=5)
    peak = max(server.rss_samples[samples_from:], default=before)
    return {"server": server, "url": url.replace("http://127.0.0.1:8000", server.url, 1), "state": state,
            "wall": wall, "before": before, "peak": peak, "cpu": cpu, "saleor": b.fakes.stats()}


def section_feed(b: Bench) -> None:
    c = b.counts
    s = "6 product feed"
    b.fakes.clear()
    made = b.fakes.catalogue(c.feed_variants)
    env = b.ws.app_settings("feed", None, b.fakes.info["vtm_api_url"], FEED_SCHEDULE_SECONDS="0.5")
    f = feed_build_figures(b, "feed-serve", env)
    server, state = f["server"], f["state"]
    try:
        if not state.get("built_at"):
            raise RuntimeError(f"the feed was not built: {state.get('error') or 'timed out'}")
        seconds, growth = state["seconds"], f["peak"] - f["before"]
        b.row(s, f"build of {c.feed_variants:,} variants ({made['products']:,} products, 4 per product) by the "
                 "worker, SQLite, fake Saleor in its own process",
              f"{seconds:.1f} s ({state['rows']:,} rows; {f['wall']:.1f} s from turning it on; app CPU {f['cpu']:.1f} s, "
              f"the rest waiting for the fake Saleor's {f['saleor']['saleor_graphql']} answers)", "< 60 s", seconds < 60)
        b.row(s, "serve RSS growth during the build (peak − before)",
              f"{growth / 2**20:.1f} MB (before {f['before'] / 2**20:.0f} MB, peak {f['peak'] / 2**20:.0f} MB)",
              "< 50 MB", growth < 50 * 2**20)
        with httpx.Client(timeout=120) as client:
            for encoding, label in (("gzip", "gzip, as stored"), ("identity", "uncompressed (decompressed on the fly)")):
                sizes, started = [], time.perf_counter()
                for _ in range(c.feed_downloads):
                    with client.stream("GET", f["url"], headers={"Accept-Encoding": encoding}) as response:
                        if response.status_code != 200:
                            raise RuntimeError(f"feed download answered {response.status_code}")
                        sizes.append(sum(len(chunk) for chunk in response.iter_raw()))
                elapsed = time.perf_counter() - started
                b.row(s, f"feed download, {label}, {c.feed_downloads} in a row",
                      f"{sum(sizes) / elapsed / 2**20:.1f} MB/s ({sizes[0] / 2**10:,.0f} KB per download, "
                      f"{elapsed / len(sizes):.2f} s each)")
            etag = client.get(f["url"]).headers["etag"]
            started, n = time.perf_counter(), 200
            statuses = {client.get(f["url"], headers={"If-None-Match": etag}).status_code for _ in range(n)}
            elapsed = time.perf_counter() - started
            b.row(s, f"conditional GET (If-None-Match, unchanged feed), {n} in a row",
                  f"{n / elapsed:.0f}/s, answered {sorted(statuses)}")
    finally:
        server.stop()
    url = bench_database_url()
    if url is None:
        b.notes.append("Feed on PostgreSQL skipped: set TEST_DATABASE_URL (or BENCH_DATABASE_URL) to include it.")
        return
    asyncio.run(harness.ensure_database(url))
    asyncio.run(harness.reset_postgres(url))
    env = b.ws.app_settings("feed-pg", url, b.fakes.info["vtm_api_url"], FEED_SCHEDULE_SECONDS="0.5")
    f = feed_build_figures(b, "feed-pg-serve", env)
    f["server"].stop()
    state = f["state"]
    if not state.get("built_at"):
        raise RuntimeError(f"the feed was not built on PostgreSQL: {state.get('error') or 'timed out'}")
    b.row(s, f"build of {c.feed_variants:,} variants, PostgreSQL",
          f"{state['seconds']:.1f} s (app CPU {f['cpu']:.1f} s); RSS growth {(f['peak'] - f['before']) / 2**20:.1f} MB",
          "< 60 s",
          state["seconds"] < 60)


# --- the run -------------------------------------------------------------------------------------------------------


def machine_lines() -> list[str]:
    cores = os.cpu_count() or 0
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        usable = cores
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                timeout=10).stdout.strip()
        changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                                 capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit, changed = "?", ""
    load = os.getloadavg()
    return [
        f"date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}; commit {commit}{' (+ uncommitted changes)' if changed else ''}",
        f"machine: {cores} cores (nproc {usable}); load average at start {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}; "
        f"Python {platform.python_version()} on {platform.system()} {platform.machine()}",
    ]


def print_table(b: Bench, header: list[str], started: float) -> None:
    load = os.getloadavg()
    lines = ["", "## saleor-vtmarketing benchmark" + (" (--quick: small counts, a smoke run)" if b.quick else ""), ""]
    lines += [f"- {h}" for h in header]
    lines.append(f"- load average at end {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}; run took "
                 f"{(time.monotonic() - started) / 60:.1f} min")
    lines += ["", "| section | measurement | result | target | verdict | load (1 min) |", "|---|---|---|---|---|---|"]
    for r in b.rows:
        lines.append(f"| {r.section} | {r.figure} | {r.value} | {r.target} | {r.verdict} | {r.load} |")
    if b.notes:
        lines += ["", "Notes:"] + [f"- {n}" for n in b.notes]
    print("\n".join(lines), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small counts (a smoke run)")
    parser.add_argument("--only", default="", help=f"comma-separated sections: {', '.join(SECTIONS)}")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (databases, logs)")
    parser.add_argument("--max-minutes", type=float, default=60.0, help="stop everything after this long")
    parser.add_argument("--retry-max", type=float, default=None,
                        help="DELIVERY_RETRY_MAX_SECONDS in the delivery scenario (default 5; the app's own is 3600)")
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.only.split(",") if s.strip()] or list(SECTIONS)
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {unknown}; choose from {', '.join(SECTIONS)}")
    try:
        import psutil  # noqa: F401
    except ImportError:
        parser.error("psutil is needed: .venv/bin/pip install -e '.[test]'")

    started = time.monotonic()
    header = machine_lines()
    print("\n".join(header), flush=True)
    root = Path(tempfile.mkdtemp(prefix="saleor-vtm-bench-"))
    ws = Workspace(root)
    fakes = Fakes(root / "fakes.log")
    counts = Counts.quick() if args.quick else Counts()
    if args.retry_max is not None:
        counts.retry_max = args.retry_max
    b = Bench(counts, args.quick, fakes, ws)
    if any(v for k, v in os.environ.items() if k.upper() in harness.app_env_names()):
        b.notes.append("app settings in the environment were ignored: each scenario sets its own.")
    deadline = threading.Timer(args.max_minutes * 60, lambda: os.kill(os.getpid(), 2))  # SIGINT: clean up, stop
    deadline.daemon = True
    deadline.start()
    failed = interrupted = False
    try:
        fakes.start()
        steps: dict[str, Callable[[Bench], None]] = {
            "ingest": section_ingest, "delivery": section_delivery, "sync": section_sync,
            "memory": section_memory, "startup": section_startup, "postgres": section_postgres,
            "feed": section_feed,
        }
        for name in SECTIONS:
            if name not in chosen:
                continue
            print(f"== {name} (load {os.getloadavg()[0]:.1f})", flush=True)
            try:
                steps[name](b)
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # noqa: BLE001 - one broken section must not hide the others
                failed = True
                traceback.print_exc()
                b.row(name, "ERROR", f"{type(exc).__name__}: {exc}"[:200])
    except KeyboardInterrupt:
        interrupted = True
        b.notes.append(f"interrupted (or --max-minutes {args.max_minutes:g} reached): figures are partial.")
    finally:
        deadline.cancel()
        ws.close()
        fakes.stop()
    print_table(b, header, started)
    if args.keep or failed:
        print(f"\nwork folder kept: {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    # 1: a section failed (its row says ERROR); 2: stopped early (--max-minutes or Ctrl-C), figures partial.
    return 1 if failed else (2 if interrupted else 0)


if __name__ == "__main__":
    sys.exit(main())
