"""The benchmark's fakes in a process of their own: FakeSaleor, FakeVTMarketing and a small control API.

Run by bench/run_all.py (`python bench/fakes_server.py`); prints one JSON line with the URLs, then serves until
stdin closes or SIGTERM (so it never outlives the bench). Keeping the fakes out of the load generator's process
keeps them from competing with it for the GIL.

Control API (JSON, on its own port):
  GET  /info                 URLs, the register request (body + headers) a Saleor would send
  POST /orders {"n": N}      N new confirmed orders known to the fake Saleor, with signed ORDER_CONFIRMED webhooks
  POST /vtm {...}            {"latency": s, "down": bool} set VTmarketing's answer latency / outage
  GET  /vtm/events?since=k   accepted events from index k: [order id, arrived (time.time()), accepted (time.time())]
  GET  /stats                counts: VTmarketing requests / events, Saleor GraphQL requests, orders
  POST /catalogue {"variants": N}  a catalogue of N variants (4 per product) for the product feed, replacing any
  POST /clear                forget orders, requests, events and the catalogue (between scenarios)

Orders: one template order is built with FakeSaleor.make_order() and projected through the app's own subscription
(FakeSaleor.webhook_body(query=ORDER_CONFIRMED.query)) once; every bench order is that order with a new id and
number (the JSON is re-serialized exactly like Saleor's, json.dumps defaults, ASCII) and is signed one by one with
the fake's RSA key. Orders share the template's lines, which keeps the fake small with 10,000+ orders.
"""

from __future__ import annotations

import contextvars
import gc
import itertools
import json
import signal
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402

from saleor_app.saleor.manifest import ORDER_CONFIRMED  # noqa: E402
from tests.fakes.catalogue import Catalogue  # noqa: E402
from tests.fakes.saleor import FakeSaleor, global_id  # noqa: E402
from tests.fakes.server import ThreadedServer  # noqa: E402
from tests.fakes.vtmarketing import FakeVTMarketing  # noqa: E402

_arrived: contextvars.ContextVar[float] = contextvars.ContextVar("arrived", default=0.0)


class TimedVTMarketing(FakeVTMarketing):
    """FakeVTMarketing that keeps, per accepted event, only (order id, arrival wall time, acceptance wall time).

    Acceptance happens after the fake's `latency` (the vendor's processing time), so `accepted - arrived` ≈ latency.
    It does not keep every request and body like the test fake does: 10,000+ events stay cheap."""

    def __init__(self) -> None:
        super().__init__(strict=True)
        self.timed: list[tuple[str | None, float, float]] = []
        self.request_count = 0
        self.status_counts: dict[int, int] = {}

    def _record_request(self, request: Any) -> None:
        _arrived.set(time.time())  # same task as _accept below: the context variable carries it across
        with self._lock:
            self.request_count += 1

    def _accept(self, body: dict[str, Any], key: str, raw: bytes) -> None:
        accepted = time.time()
        generic = body.get("event", {}).get("confirmation", {}).get("generic", {})
        order_id = generic.get("orderId") if isinstance(generic, dict) else None
        with self._lock:
            self.timed.append((order_id, _arrived.get() or accepted, accepted))

    def clear(self) -> None:
        super().clear()
        with self._lock:
            self.timed.clear()
            self.request_count = 0


class Fakes:
    def __init__(self) -> None:
        self.saleor = FakeSaleor().start()
        self.vtm = TimedVTMarketing().start()
        self._numbers = itertools.count(100_000)
        template = self.saleor.make_order()
        self._template_order = template
        self._template_event = json.loads(self.saleor.webhook_body(template, query=ORDER_CONFIRMED.query))
        self._lock = threading.Lock()

    def make_orders(self, n: int) -> list[dict[str, Any]]:
        out = []
        for _ in range(n):
            number = str(next(self._numbers))
            order_id = global_id("Order", uuid.uuid4())
            order = dict(self._template_order, id=order_id, number=number)
            self.saleor.add_order(order)
            if "order" in self._template_event:
                event = dict(self._template_event, issuedAt=time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()))
                event["order"] = dict(self._template_event["order"], id=order_id, number=number)
                body = json.dumps(event).encode("ascii")
            else:  # the subscription's shape changed: project each order for real (slower, always right)
                body = self.saleor.webhook_body(order, query=ORDER_CONFIRMED.query)
            out.append({"number": number, "id": order_id, "body": body.decode("ascii"),
                        "headers": self.saleor.webhook_headers(body)})
        return out

    def clear(self) -> None:
        with self.saleor._lock:
            self.saleor.orders.clear()
            self.saleor.graphql_requests.clear()
            self.saleor.problem_records.clear()
            self.saleor.problem_calls.clear()
            self.saleor.problems = {}
            self.saleor.catalogue = Catalogue()
        self.vtm.clear()
        self.vtm.up()
        self.vtm.latency = 0.0

    # --- control API -----------------------------------------------------------------------------------------

    def control_app(self) -> Starlette:
        async def info(request: Request) -> JSONResponse:
            return JSONResponse({
                "saleor_url": self.saleor.url,
                "saleor_api_url": self.saleor.api_url,
                "vtm_api_url": self.vtm.api_url,
                "app_token": self.saleor.app_token,
                "register_body": self.saleor.register_body().decode("ascii"),
                "register_headers": self.saleor.register_headers(),
            })

        async def orders(request: Request) -> JSONResponse:
            n = int((await request.json()).get("n", 1))
            if not 0 < n <= 50_000:
                return JSONResponse({"error": "n must be 1..50000"}, status_code=400)
            return JSONResponse({"orders": self.make_orders(n)})

        async def vtm(request: Request) -> JSONResponse:
            data = await request.json()
            if "latency" in data:
                self.vtm.latency = float(data["latency"])
            if "down" in data:
                self.vtm.down() if data["down"] else self.vtm.up()
            return JSONResponse({"latency": self.vtm.latency, "down": self.vtm._down, "at": time.time()})

        async def vtm_events(request: Request) -> JSONResponse:
            since = int(request.query_params.get("since", "0"))
            with self.vtm._lock:
                events = self.vtm.timed[since:]
                total = len(self.vtm.timed)
            return JSONResponse({"total": total, "events": events})

        async def stats(request: Request) -> JSONResponse:
            with self.vtm._lock:
                vtm_requests, vtm_events = self.vtm.request_count, len(self.vtm.timed)
            with self.saleor._lock:
                graphql, orders_known = len(self.saleor.graphql_requests), len(self.saleor.orders)
            return JSONResponse({"vtm_requests": vtm_requests, "vtm_events": vtm_events,
                                 "saleor_graphql": graphql, "orders": orders_known})

        async def catalogue(request: Request) -> JSONResponse:
            variants = int((await request.json()).get("variants", 0))
            if not 0 < variants <= 1_000_000:
                return JSONResponse({"error": "variants must be 1..1000000"}, status_code=400)
            started = time.perf_counter()
            fresh = Catalogue()
            products = fresh.generate(variants)
            with self.saleor._lock:
                self.saleor.catalogue = fresh
            # Hundreds of thousands of long-lived records: keep the cyclic GC from walking them on every full
            # collection while pages are answered (it halves the fake's time per page).
            gc.collect()
            gc.freeze()
            return JSONResponse({"products": products, "variants": variants, "seconds": time.perf_counter() - started})

        async def clear(request: Request) -> JSONResponse:
            self.clear()
            return JSONResponse({"cleared": True})

        return Starlette(routes=[
            Route("/info", info, methods=["GET"]),
            Route("/orders", orders, methods=["POST"]),
            Route("/vtm", vtm, methods=["POST"]),
            Route("/vtm/events", vtm_events, methods=["GET"]),
            Route("/stats", stats, methods=["GET"]),
            Route("/catalogue", catalogue, methods=["POST"]),
            Route("/clear", clear, methods=["POST"]),
        ])

    def stop(self) -> None:
        self.vtm.stop()
        self.saleor.stop()


def main() -> None:
    gc.set_threshold(50_000, 10, 10)  # answers are big, short-lived dicts: let them die before they are traversed
    fakes = Fakes()
    control = ThreadedServer(fakes.control_app()).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    def watch_stdin() -> None:  # the bench holds our stdin: when it goes away (even killed), so do we
        try:
            sys.stdin.read()
        finally:
            stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    print(json.dumps({"control_url": control.url, "saleor_api_url": fakes.saleor.api_url,
                      "vtm_api_url": fakes.vtm.api_url}), flush=True)
    # Bounded even if nobody stops us: a benchmark never takes two hours.
    stop.wait(timeout=2 * 3600)
    control.stop()
    fakes.stop()


if __name__ == "__main__":
    main()
