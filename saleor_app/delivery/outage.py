"""VTmarketing down: once OPEN_AFTER sends in a row could not be taken (refused connections, timeouts, 5xx, 429),
with no answer between that says VTmarketing works, the worker stops sending every due order: each would fail the
same way, and at 64 in flight that retry storm took the CPU the webhooks share (about 14,000 refused sends in the
bench's minute-long outage, the webhooks' p99 from 7 to 42 ms; docs/performance.md). It sends one order at a time instead, one every `probe_every` seconds (the
oldest due: a probe is an ordinary delivery, its attempt recorded like any other), and the moment VTmarketing takes
one, or answers one with a verdict (a refusal of the event or the key is an answer), everything due goes again at
full concurrency. Orders wait in the queue meanwhile, due and visible; none is dropped or given up on for the wait.

Per process: each worker finds out for itself, from its own sends."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from saleor_app.metrics import Metrics

log = logging.getLogger(__name__)

OPEN_AFTER = 10  # sends in a row VTmarketing could not take before sending is held back
PROBE_SECONDS = 2.0  # between probes while held back (at most the retry cap: never slower than the backoff)


class OutageGate:
    def __init__(self, metrics: Metrics, *, probe_every: float, wake: Callable[[], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.probe_every = probe_every
        self._metrics = metrics
        self._wake = wake
        self._clock = clock
        self.failures_in_a_row = 0
        self.held_since: float | None = None  # clock() when sending was held back, None while VTmarketing works
        self._next_probe = 0.0
        metrics.vtmarketing_held_back.set(0)  # exported from the start by a process that runs a worker

    @property
    def holding(self) -> bool:
        return self.held_since is not None

    def may_start(self, in_flight: int, concurrency: int) -> int:
        """How many more deliveries may start now: the free slots, or while held back one probe when it is due and
        nothing else is in flight."""
        if self.held_since is None:
            return max(0, concurrency - in_flight)
        return 1 if in_flight == 0 and self._clock() >= self._next_probe else 0

    def probe_started(self) -> None:
        if self.held_since is not None:
            self._next_probe = self._clock() + self.probe_every

    def seconds_to_probe(self) -> float | None:
        """While held back, how long until the next probe may start; None otherwise."""
        return None if self.held_since is None else max(0.0, self._next_probe - self._clock())

    def sent(self, outcome: str) -> None:
        """Every send's outcome ("delivered", "failed": VTmarketing answered; "retry": it could not take it)."""
        if outcome == "retry":
            self.failures_in_a_row += 1
            if self.held_since is None and self.failures_in_a_row >= OPEN_AFTER:
                self.held_since = self._clock()
                self._next_probe = self.held_since + self.probe_every
                self._metrics.vtmarketing_held_back.set(1)
                log.warning("VTmarketing could not take the last %d events: holding the queue back, one order every "
                            "%g s tells when it is back", self.failures_in_a_row, self.probe_every)
            return
        self.failures_in_a_row = 0
        if self.held_since is not None:
            held = self._clock() - self.held_since
            self.held_since = None
            self._metrics.vtmarketing_held_back.set(0)
            log.warning("VTmarketing answers again after %.0f s: sending the waiting orders", held)
            self._wake()  # the worker may be asleep until the next probe: everything due goes now
