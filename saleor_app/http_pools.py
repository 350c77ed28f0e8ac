"""Several small httpx clients in place of one large one, for the two outbound clients (Saleor, VTmarketing).

httpcore looks at every connection of a pool on each request (whether it expired, whether its socket became
readable: encode/httpcore#1035, encode/httpx#3215), so one client with 64 connections spends more CPU per request
the more connections it holds, and under 64 sends in flight it is slower, not faster. A request here goes to the
client with the fewest requests in flight; alone, requests all go to the first, whose connections stay warm.
"""

from __future__ import annotations

import math
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache

import httpx

# Requests in flight per client: few enough that httpcore's scan of its connections stays cheap.
PER_POOL = 8


@cache
def shared_ssl_context() -> ssl.SSLContext:
    """One TLS context (with its loaded CA bundle, ~0.8 MB) for every pool of the process, not one per client."""
    return httpx.create_ssl_context()


def pool_limits(*, keepalive_expiry: float | None = 5.0) -> httpx.Limits:
    # More connections than the pool's share: a pool may briefly get more than its share of requests.
    return httpx.Limits(max_connections=2 * PER_POOL, max_keepalive_connections=PER_POOL,
                        keepalive_expiry=keepalive_expiry)


class ShardedPools:
    def __init__(self, make_client: Callable[[], httpx.AsyncClient], *, max_in_flight: int) -> None:
        count = max(1, math.ceil(max_in_flight / PER_POOL))
        self.clients = [make_client() for _ in range(count)]
        self._in_flight = [0] * count

    @contextmanager
    def least_busy(self) -> Iterator[int]:
        """The index of the client to use for one request, counted in flight until the block ends."""
        in_flight = self._in_flight
        index = in_flight.index(min(in_flight))
        in_flight[index] += 1
        try:
            yield index
        finally:
            in_flight[index] -= 1

    async def aclose(self) -> None:
        for client in self.clients:
            await client.aclose()
