"""A small HTTP/1.1 load generator on raw asyncio streams (keep-alive connections, pre-built requests).

httpx costs ~0.5-1 ms of CPU per request on the client side, enough to become the bottleneck against a bare
endpoint on a 2-core machine; writing pre-built bytes and parsing only the status line and Content-Length keeps
the generator's cost per request around a tenth of that, so the figures describe the server.

Two shapes:
- closed_loop: `concurrency` connections, each sends its next request as soon as the previous one is answered
  (throughput: requests per second the server sustains).
- open_loop: requests are sent on a fixed schedule (`rate` per second) whatever the answers, over as many
  connections as needed; latency is measured from the *scheduled* send time, so a stalled server or a late
  generator shows up in the figures instead of being hidden (no coordinated omission).

Every loop is bounded by its request count and by `time_limit` seconds.
"""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass, field


def build_request(host: str, port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}"]
    skip = {"host", "content-length", "connection", "transfer-encoding"}
    lines += [f"{k}: {v}" for k, v in headers.items() if k.lower() not in skip]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class Connection:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> "Connection":
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def roundtrip(self, request: bytes) -> int:
        """Send one request, read the whole answer; the status code. Raises on a broken connection."""
        if self.writer is not None and (self.reader is None or self.reader.at_eof() or self.writer.is_closing()):
            # The server closed this idle keep-alive connection (uvicorn does after 5 s): a new one, as any
            # pooling client would, rather than counting an error the server never saw.
            self.close()
        if self.writer is None:
            await self.open()
        assert self.reader is not None and self.writer is not None
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length, chunked, close = 0, False, False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection" and b"close" in value.lower():
                close = True
        if chunked:
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                await self.reader.readexactly(size + 2)
                if size == 0:
                    break
        elif length:
            await self.reader.readexactly(length)
        if close:
            self.close()
        return status


@dataclass
class LoadResult:
    sent: int = 0
    statuses: dict[int, int] = field(default_factory=dict)  # 0 = connection error or timeout
    latencies: list[float] = field(default_factory=list)  # seconds, answered requests with status 200
    answered_at: dict[int, float] = field(default_factory=dict)  # request index -> time.time() the 200 came back
    elapsed: float = 0.0  # first send to last answer
    max_lag: float = 0.0  # open loop: how late the generator sent its latest-sent request

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)

    @property
    def errors(self) -> int:
        return self.sent - self.ok

    @property
    def rate(self) -> float:
        return self.ok / self.elapsed if self.elapsed > 0 else 0.0

    def percentile(self, q: float) -> float:
        return percentile(self.latencies, q)

    def _count(self, status: int) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


async def _one(conn: Connection, request: bytes, timeout: float) -> int:
    try:
        return await asyncio.wait_for(conn.roundtrip(request), timeout)
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError, ValueError):
        conn.close()
        return 0


async def closed_loop(host: str, port: int, requests: list[bytes], *, concurrency: int, time_limit: float,
                      request_timeout: float = 30.0) -> LoadResult:
    result = LoadResult()
    conns = [await Connection(host, port).open() for _ in range(concurrency)]
    next_index = iter(range(len(requests)))
    started = time.perf_counter()
    deadline = started + time_limit
    last_answer = started

    async def run(conn: Connection) -> None:
        nonlocal last_answer
        for i in next_index:
            if time.perf_counter() > deadline:
                return
            t0 = time.perf_counter()
            result.sent += 1
            status = await _one(conn, requests[i], request_timeout)
            t1 = time.perf_counter()
            result._count(status)
            if status == 200:
                result.latencies.append(t1 - t0)
                result.answered_at[i] = time.time()
            last_answer = max(last_answer, t1)

    try:
        await asyncio.gather(*(run(c) for c in conns))
    finally:
        for c in conns:
            c.close()
    result.elapsed = last_answer - started
    return result


async def open_loop(host: str, port: int, requests: list[bytes], *, rate: float, time_limit: float,
                    request_timeout: float = 30.0, warm_connections: int = 32, max_connections: int = 512) -> LoadResult:
    """Send requests[i] at start + i/rate (stops scheduling after time_limit); wait for the answers
    (each bounded by request_timeout)."""
    result = LoadResult()
    idle = [await Connection(host, port).open() for _ in range(warm_connections)]
    opened = len(idle)
    tasks: list[asyncio.Task] = []
    started = time.perf_counter()
    last_answer = started
    slots = asyncio.Semaphore(max_connections)

    async def send(i: int, scheduled: float) -> None:
        nonlocal opened, last_answer
        async with slots:
            conn = idle.pop() if idle else Connection(host, port)
            if conn.writer is None:
                opened += 1
            status = await _one(conn, requests[i], request_timeout)
            t1 = time.perf_counter()
            result._count(status)
            if status == 200:
                result.latencies.append(t1 - scheduled)
                result.answered_at[i] = time.time()
            last_answer = max(last_answer, t1)
            idle.append(conn)

    for i in range(len(requests)):
        scheduled = started + i / rate
        if scheduled - started > time_limit:
            break
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        result.max_lag = max(result.max_lag, time.perf_counter() - scheduled)
        result.sent += 1
        tasks.append(asyncio.create_task(send(i, scheduled)))
    if tasks:
        await asyncio.wait(tasks, timeout=request_timeout + 5)
        for task in tasks:
            if not task.done():
                task.cancel()
    for c in idle:
        c.close()
    result.elapsed = last_answer - started
    return result


async def warm_up(host: str, port: int, requests: list[bytes], concurrency: int = 4) -> None:
    """Send a few requests untimed (first-request costs: imports, JIT-less caches, connection pools)."""
    await closed_loop(host, port, requests, concurrency=concurrency, time_limit=30)
