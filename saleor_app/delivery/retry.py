"""When to try again: exponential backoff with jitter, never sooner than VTmarketing's Retry-After, and never past
the delivery's maximum age."""

from __future__ import annotations

import random
from datetime import datetime, timedelta


def backoff_seconds(attempt: int, *, base: float, cap: float, retry_after: float | None = None, rng: random.Random | None = None) -> float:
    """Wait before attempt number `attempt + 1` (attempt counts from 1). Jitter spreads retries of many orders
    after an outage so they do not all hit VTmarketing in the same second."""
    exponential = min(cap, base * (2 ** max(0, attempt - 1)))
    wait = exponential * (0.5 + (rng or random).random() / 2)
    if retry_after is not None:
        wait = max(wait, min(retry_after, cap))
    return wait


def next_attempt_or_none(
    *, now: datetime, window_started_at: datetime, attempt: int, base: float, cap: float, max_age: float,
    retry_after: float | None = None,
) -> datetime | None:
    """The next attempt's time, or None when it would fall more than `max_age` after the retry window started (the
    order's arrival, or its latest resend): give up."""
    at = now + timedelta(seconds=backoff_seconds(attempt, base=base, cap=cap, retry_after=retry_after))
    return None if at > window_started_at + timedelta(seconds=max_age) else at
