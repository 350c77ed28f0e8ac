"""A fake VTmarketing events API: a real HTTP server on 127.0.0.1 that answers like the vendor's.

It validates requests the way the vendor documents (API key in `Authorization`, mandatory `user`, `user.email` and
`event`) and answers with the vendor's JSON shapes, so the client and the delivery engine are tested against real
HTTP, real connection reuse and real failures (timeouts, refused and reset connections), not mocks.

Usage::

    with FakeVTMarketing() as vt:
        client = VTMarketingClient(vt.api_url, timeout=0.5)
        vt.fail_next(2)                      # the next two requests get 503
        ...
        assert vt.events_for("26")[0].body["user"]["email"] == "ada@example.com"

The server runs in its own thread; the recording lists and behaviour queue are guarded by a lock, and the
`events` / `requests` properties return snapshots, so asyncio tests can read them at any time.

Beyond the documented checks, the fake is `strict` by default: it also answers 400 when a field has the wrong
JSON type (e.g. `total` as a string, an item quantity as a float). The real API's reaction to wrong types is not
documented; being strict here makes a type regression fail loudly in tests instead of in production.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

from starlette.applications import Starlette
from starlette.routing import Route

from tests.fakes.server import ThreadedServer

__all__ = ["Behaviour", "FakeVTMarketing", "ReceivedEvent", "ReceivedRequest"]

API_PATH = "/v1/event/"

INVALID_KEY = {
    "errors": [
        {
            "message": "Invalid API key",
            "description": "Please send a valid API key in the Authorization header",
        }
    ]
}
MISSING_EVENT = {
    "errors": [
        {
            "message": "Missing event information",
            "description": "Please send event information along with user",
        }
    ]
}
EVENT_CREATED = {"results": {"message": "Event created", "email": "Event was created for the specified user"}}
SERVICE_UNAVAILABLE = {
    "errors": [{"message": "Service unavailable", "description": "Please try again later"}]
}
TOO_MANY_REQUESTS = {"errors": [{"message": "Too many requests", "description": "Please slow down"}]}


@dataclass
class ReceivedRequest:
    """One HTTP request as the fake saw it (whatever its fate), for asserting headers and exact bytes."""

    method: str
    path: str
    headers: dict[str, str]  # lower-cased names; repeated headers joined with ", "
    raw_headers: list[tuple[str, str]]
    body: bytes
    received_at: float  # time.monotonic()
    status: int | None = None  # what the fake answered; None for a reset connection
    peer: tuple[str, int] | None = None  # the client's (host, port): the same port means a reused connection
    held: bool = False  # waiting behind hold() right now
    answered_at: float | None = None  # time.monotonic() when the fake finished with it

    @property
    def api_key(self) -> str | None:
        return self.headers.get("authorization")


@dataclass
class ReceivedEvent:
    """An event the fake accepted (answered 2xx), with the key it came with."""

    body: dict[str, Any]
    api_key: str
    received_at: float  # time.monotonic()
    raw: bytes = b""

    @property
    def order_id(self) -> str | None:
        generic = self.body.get("event", {}).get("confirmation", {}).get("generic", {})
        value = generic.get("orderId") if isinstance(generic, dict) else None
        return value if isinstance(value, str) else None

    @property
    def email(self) -> str | None:
        return self.body.get("user", {}).get("email")


@dataclass
class Behaviour:
    """A one-shot behaviour applied to the next request instead of (or before) normal processing.

    kind: "fail" (answer `status`, `body`, `headers` without creating the event), "slow" (wait `delay`, then answer
    normally: the event is created, as a slow but working server would), "hold" (like slow, but wait until the test
    sets `release`, bounded by `delay`: an answer later than any client timeout, whatever the machine's speed), "reset" (start a 200 answer, then drop
    the connection mid-body; `created` says whether the event is recorded), "invalid_json" (create the event if
    `status` is 2xx and answer a non-JSON page).
    """

    kind: str
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    created: bool = False
    release: threading.Event | None = None


class _ResetConnection(Exception):
    """Raised inside the ASGI app after a partial answer so uvicorn closes the socket mid-body."""


class _QuietReset(logging.Filter):
    """Keep uvicorn from printing a traceback for every reset we cause on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, _ResetConnection)


logging.getLogger("uvicorn.error").addFilter(_QuietReset())


class FakeVTMarketing:
    """A programmable VTmarketing events API served over real HTTP on 127.0.0.1 (see the module docstring)."""

    def __init__(self, *, strict: bool = True, port: int | None = None) -> None:
        self.strict = strict
        self.latency = 0.0  # seconds added to every answer (benchmarks)
        self._lock = threading.Lock()
        self._accepted_keys: set[str] | None = None  # None: any non-empty key
        self._queue: deque[Behaviour] = deque()
        self._down = False
        self._open = threading.Event()  # cleared by hold(): requests wait (received, unanswered) until release()
        self._open.set()
        self._slow_every: tuple[int, float] | None = None
        self._events: list[ReceivedEvent] = []
        self._requests: list[ReceivedRequest] = []
        self._hold_until = 0  # answers wait until this many requests are being answered at once (hold_answers)
        self._hold_timeout = 0.0
        self._in_flight = 0
        self.max_in_flight = 0  # the most requests that were being answered at the same moment
        self.app = Starlette(routes=[Route(API_PATH, _Endpoint(self), methods=["POST"])])
        self._port = port
        self._server: ThreadedServer | None = None

    # --- lifecycle --------------------------------------------------------------------------------------------

    def start(self) -> "FakeVTMarketing":
        """Start serving (again, on the same port after `stop()`, so clients keep a valid URL)."""
        if self._server is not None:
            raise RuntimeError("already running")
        self._server = ThreadedServer(self.app, port=self._port).start()
        self._port = self._server.port
        return self

    def stop(self) -> None:
        """Stop serving: new connections are refused until `start()` is called again."""
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> "FakeVTMarketing":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the fake has not been started")
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}{API_PATH}"

    # --- configuration ----------------------------------------------------------------------------------------

    def accept_keys(self, *keys: str) -> None:
        """Only these keys are valid from now on; with no argument, any non-empty key is accepted again."""
        with self._lock:
            self._accepted_keys = set(keys) if keys else None

    def down(self) -> None:
        """Answer 503 to every request until `up()` (an outage that still accepts connections)."""
        with self._lock:
            self._down = True

    def up(self) -> None:
        with self._lock:
            self._down = False

    def fail_next(
        self,
        n: int = 1,
        status: int = 503,
        body: bytes | str | dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """The next `n` requests get `status` (default 503 with the vendor's error shape); no event is created."""
        if body is None:
            body = SERVICE_UNAVAILABLE if status >= 500 else {"errors": [{"message": f"Error {status}"}]}
        encoded = _to_bytes(body)
        all_headers = {"content-type": "application/json"} if isinstance(body, dict) else {}
        all_headers.update({k.lower(): v for k, v in (headers or {}).items()})
        self._enqueue(*(Behaviour("fail", status=status, body=encoded, headers=all_headers) for _ in range(n)))

    def retry_after_next(self, seconds: float | str) -> None:
        """The next request gets 429 with `Retry-After` (seconds, or a preformatted HTTP-date string)."""
        value = seconds if isinstance(seconds, str) else f"{seconds:g}"
        self.fail_next(1, status=429, body=TOO_MANY_REQUESTS, headers={"retry-after": value})

    def slow_next(self, seconds: float) -> None:
        """The next request is answered normally but only after `seconds` (the event is still created)."""
        self._enqueue(Behaviour("slow", delay=seconds))

    def hold_next(self, *, timeout: float = 60.0) -> threading.Event:
        """The next request is answered normally (the event is created) only once the returned event is set (or
        after `timeout` seconds): a client with a shorter timeout surely gives up first."""
        release = threading.Event()
        self._enqueue(Behaviour("hold", delay=timeout, release=release))
        return release

    def reset_next(self, *, created: bool = False) -> None:
        """The next request gets the start of a 200 answer, then the connection is closed mid-body."""
        self._enqueue(Behaviour("reset", created=created))

    def hold_answers(self, until_in_flight: int, *, timeout: float = 30.0) -> None:
        """Hold every answer until `until_in_flight` requests are waiting at once (or `timeout` seconds passed):
        a client that sends one request at a time never gets there, one that sends them side by side does,
        however slow the machine. `max_in_flight` tells how many were waiting together."""
        with self._lock:
            self._hold_until, self._hold_timeout = until_in_flight, timeout

    def invalid_json_next(self, status: int = 200) -> None:
        """The next request is processed but answered with an HTML page instead of JSON."""
        self._enqueue(Behaviour("invalid_json", status=status))

    def hold(self) -> None:
        """From now on every request is received (recorded) but left unanswered until `release()`."""
        self._open.clear()

    def release(self) -> None:
        """Answer the held requests (and those that follow) as usual."""
        self._open.set()

    @property
    def held(self) -> int:
        """Requests waiting behind `hold()` right now."""
        with self._lock:
            return sum(1 for request in self._requests if request.held)

    def slow_every(self, n: int, seconds: float) -> None:
        """Every `n`-th request (by arrival) is answered only after `seconds`, yet processed normally: with a
        client timeout below `seconds`, a request "timed out" that VTmarketing still received and recorded.
        `n=0` stops it."""
        with self._lock:
            self._slow_every = (n, seconds) if n > 0 else None

    def clear(self) -> None:
        """Forget recorded events and requests and pending behaviours (keeps keys, latency and up/down)."""
        with self._lock:
            self._events.clear()
            self._requests.clear()
            self._queue.clear()

    def _enqueue(self, *behaviours: Behaviour) -> None:
        with self._lock:
            self._queue.extend(behaviours)

    # --- inspection -------------------------------------------------------------------------------------------

    @property
    def events(self) -> list[ReceivedEvent]:
        """Snapshot of every accepted event, in arrival order."""
        with self._lock:
            return list(self._events)

    @property
    def requests(self) -> list[ReceivedRequest]:
        """Snapshot of every request received, accepted or not."""
        with self._lock:
            return list(self._requests)

    def events_for(self, order_id: str) -> list[ReceivedEvent]:
        """Accepted events whose `generic.orderId` is `order_id` (more than one means a duplicate delivery)."""
        return [event for event in self.events if event.order_id == order_id]

    async def wait_for_events(self, count: int, timeout: float = 30.0) -> list[ReceivedEvent]:
        """Wait (without blocking the event loop) until at least `count` events were accepted."""
        deadline = time.monotonic() + timeout
        while True:
            events = self.events
            if len(events) >= count or time.monotonic() >= deadline:
                return events
            await asyncio.sleep(0.01)

    # --- request handling (runs in the server thread) -----------------------------------------------------------

    def _record_request(self, request: ReceivedRequest) -> float:
        """Record it; returns the extra delay slow_every() gives it."""
        with self._lock:
            self._requests.append(request)
            if self._slow_every is not None and len(self._requests) % self._slow_every[0] == 0:
                return self._slow_every[1]
            return 0.0

    def _next_behaviour(self) -> tuple[Behaviour | None, bool, set[str] | None]:
        # While down, queued behaviours wait for the requests that follow the outage.
        with self._lock:
            behaviour = self._queue.popleft() if self._queue and not self._down else None
            return behaviour, self._down, self._accepted_keys

    async def _enter_answer(self) -> None:
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            hold_until, timeout = self._hold_until, self._hold_timeout
        if hold_until:
            deadline = time.monotonic() + timeout
            while self.max_in_flight < hold_until and time.monotonic() < deadline:
                await asyncio.sleep(0.005)

    def _leave_answer(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _accept(self, body: dict[str, Any], key: str, raw: bytes) -> None:
        with self._lock:
            self._events.append(ReceivedEvent(body=body, api_key=key, received_at=time.monotonic(), raw=raw))

    def validate(self, key: str | None, raw: bytes, accepted_keys: set[str] | None) -> tuple[int, dict[str, Any], Any]:
        """Check a request like the vendor does; returns (status, answer, parsed body)."""
        if not key or (accepted_keys is not None and key not in accepted_keys):
            return 401, INVALID_KEY, None
        try:
            body = json.loads(raw)
        except ValueError:
            return 400, MISSING_EVENT, None
        if not isinstance(body, dict):
            return 400, MISSING_EVENT, None
        user, event = body.get("user"), body.get("event")
        if not isinstance(user, dict) or not isinstance(event, dict) or not event:
            return 400, MISSING_EVENT, None
        email = user.get("email")
        if not isinstance(email, str) or not email:
            return 400, _error("Missing user email", "Please send the user's email"), None
        if self.strict:
            problem = _type_problem(body)
            if problem:
                return 400, _error("Invalid event data", problem), None
        return 200, EVENT_CREATED, body


class _Endpoint:
    """Raw ASGI endpoint (Starlette mounts non-function endpoints as ASGI apps) so it can cut a connection."""

    def __init__(self, fake: FakeVTMarketing) -> None:
        self.fake = fake

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        fake = self.fake
        raw = await _read_body(receive)
        raw_headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        headers: dict[str, str] = {}
        for name, value in raw_headers:
            headers[name.lower()] = f"{headers[name.lower()]}, {value}" if name.lower() in headers else value
        request = ReceivedRequest(
            method=scope["method"],
            path=scope["path"],
            headers=headers,
            raw_headers=raw_headers,
            body=raw,
            received_at=time.monotonic(),
            peer=tuple(scope["client"]) if scope.get("client") else None,  # type: ignore[arg-type]
        )
        extra_delay = fake._record_request(request) or 0.0  # subclasses that keep less (the bench's) return None
        if not fake._open.is_set():
            request.held = True
            while not fake._open.is_set():
                await asyncio.sleep(0.01)
            request.held = False
        behaviour, down, accepted_keys = fake._next_behaviour()
        try:
            await fake._enter_answer()
            await self._answer(request, raw, headers, behaviour, down, accepted_keys, send, extra_delay)
        finally:
            fake._leave_answer()

    async def _answer(self, request: ReceivedRequest, raw: bytes, headers: dict[str, str], behaviour: Behaviour | None,
                      down: bool, accepted_keys: set[str] | None, send: Callable[..., Any], extra_delay: float) -> None:
        fake = self.fake

        if fake.latency or extra_delay:
            await asyncio.sleep(fake.latency + extra_delay)
        try:
            await self._respond(request, behaviour, down, accepted_keys, raw, headers, send)
        finally:
            request.answered_at = time.monotonic()

    async def _respond(self, request: ReceivedRequest, behaviour: Behaviour | None, down: bool,
                       accepted_keys: set[str] | None, raw: bytes, headers: dict[str, str],
                       send: Callable[..., Any]) -> None:
        fake = self.fake

        if down:
            request.status = 503
            await _answer(send, 503, _to_bytes(SERVICE_UNAVAILABLE), {"content-type": "application/json"})
            return
        if behaviour is not None and behaviour.kind == "fail":
            request.status = behaviour.status
            await _answer(send, behaviour.status, behaviour.body, behaviour.headers)
            return
        if behaviour is not None and behaviour.kind == "slow":
            await asyncio.sleep(behaviour.delay)
        if behaviour is not None and behaviour.kind == "hold" and behaviour.release is not None:
            deadline = time.monotonic() + behaviour.delay
            while not behaviour.release.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.005)

        status, answer, body = fake.validate(headers.get("authorization"), raw, accepted_keys)

        if behaviour is not None and behaviour.kind == "reset":
            if behaviour.created and body is not None:
                fake._accept(body, headers["authorization"], raw)
            request.status = None
            # Promise more bytes than we send, then fail: uvicorn closes the socket and the client sees an
            # incomplete body (httpx.RemoteProtocolError), exactly like a connection cut mid-answer.
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"1000")],
                }
            )
            await send({"type": "http.response.body", "body": b'{"results":', "more_body": True})
            raise _ResetConnection()

        processed = behaviour is None or behaviour.kind != "invalid_json" or 200 <= behaviour.status < 300
        if body is not None and processed:
            fake._accept(body, headers["authorization"], raw)

        if behaviour is not None and behaviour.kind == "invalid_json":
            request.status = behaviour.status
            page = b"<html><body><h1>Bad Gateway</h1>nginx</body></html>"
            await _answer(send, behaviour.status, page, {"content-type": "text/html"})
            return

        request.status = status
        await _answer(send, status, _to_bytes(answer), {"content-type": "application/json"})


async def _read_body(receive: Callable[..., Any]) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


async def _answer(send: Callable[..., Any], status: int, body: bytes, headers: dict[str, str]) -> None:
    raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    raw_headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


def _to_bytes(body: bytes | str | dict[str, Any]) -> bytes:
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    return json.dumps(body).encode("utf-8")


def _error(message: str, description: str) -> dict[str, Any]:
    return {"errors": [{"message": message, "description": description}]}


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _type_problem(body: dict[str, Any]) -> str | None:
    """The first field whose JSON type differs from the vendor's field table, or None."""
    user = body["user"]
    for key in ("email", "tel", "firstname", "lastname", "country", "city"):
        if key in user and not isinstance(user[key], str):
            return f"user.{key} must be a string"
    confirmation = body["event"].get("confirmation")
    if not isinstance(confirmation, dict):
        return "event.confirmation must be an object"
    generic = confirmation.get("generic")
    if not isinstance(generic, dict):
        return "event.confirmation.generic must be an object"
    for key in ("orderId", "status", "phone", "currency"):
        if key in generic and not isinstance(generic[key], str):
            return f"generic.{key} must be a string"
    if "total" not in generic or not _is_number(generic["total"]):
        return "generic.total must be a number"
    if "total_shipping" in generic and not _is_number(generic["total_shipping"]):
        return "generic.total_shipping must be a number"
    if "currency" in generic and (len(generic["currency"]) != 3 or not generic["currency"].isupper()):
        return "generic.currency must be a 3-letter ISO code"
    coupons = generic.get("coupons", [])
    if not isinstance(coupons, list) or not all(isinstance(c, str) for c in coupons):
        return "generic.coupons must be a list of strings"
    items = confirmation.get("items", [])
    if not isinstance(items, list):
        return "items must be a list"
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            return "items[].id must be a string"
        quantity = item.get("quantity")
        if not isinstance(quantity, int) or isinstance(quantity, bool):
            return "items[].quantity must be an integer"
    return None
