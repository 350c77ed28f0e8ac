"""VTmarketing misbehaves: 5xx, 429 with Retry-After, 4xx, answers slower than the client's timeout, refused
connections, connections cut mid-answer, non-JSON answers. The worker is driven with `run_until_idle()`, retries are
made due by moving `next_attempt_at` (no sleeping for timing).

For each fault: the final state in the database, the attempts recorded (HTTP status or none, excerpt), the reason a
merchant reads, and how many events the fake VTmarketing accepted. Delivery is at least once: when VTmarketing
processed a request whose answer never reached us (a timeout, a connection cut after it created the event), the
retry sends the same bytes again and VTmarketing holds the event twice. Those cases are asserted exactly (two
identical events, same orderId) rather than loosely, so a change in that behaviour shows up here.
"""

from __future__ import annotations

import json
from datetime import timedelta
from email.utils import format_datetime

import pytest
from sqlalchemy import update

from saleor_app.delivery.service import DeliveryService
from saleor_app.storage.models import Delivery, utcnow
from tests.conftest import configure, place_order
from tests.faults import (
    assert_nothing_open,
    attempts_of,
    drive_until_settled,
    make_due_now,
    one_delivery,
)

CHANNEL = "default-channel"


# Retries are made due by `make_due_now` here. A real first backoff of 30 s (instead of the shared 0.05 s) keeps a
# retry from coming due by itself while `run_until_idle` still runs, which a loaded machine otherwise makes happen.
SLOW_RETRIES = {"delivery_retry_base_seconds": 30.0, "delivery_retry_max_seconds": 60.0}


@pytest.fixture
def settings_overrides() -> dict:
    return dict(SLOW_RETRIES)






def assert_reason(reason: str | None, *parts: str) -> None:
    """The merchant-facing reason says each of `parts` (its exact wording around them may change)."""
    assert reason, "no reason given"
    missing = [part for part in parts if part not in reason]
    assert not missing, f"{reason!r} does not say {missing}"


def assert_retry_scheduled(delivery) -> None:  # type: ignore[no-untyped-def]
    """A retry has its time in `next_attempt_at`, which readers show in their own time zone; the reason holds no
    time of its own (it used to carry a UTC one)."""
    assert delivery.status == "retrying" and delivery.next_attempt_at is not None
    assert "next try" not in delivery.reason and "UTC" not in delivery.reason


async def vtm_attempts(running_app) -> list:  # type: ignore[no-untyped-def]
    return await attempts_of(running_app, target="vtmarketing")


# --- 5xx ------------------------------------------------------------------------------------------------------


async def test_500s_are_retried_until_delivered_once(running_app, installed, worker, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    await configure(running_app, installed)
    fake_vtm.fail_next(2, status=500)
    order = await place_order(running_app, installed)

    await worker.run_until_idle()
    delivery = await one_delivery(running_app)
    assert delivery.status == "retrying"
    # The merchant reads the status and VTmarketing's own words, and when the next try is.
    assert_reason(delivery.reason, "500", "Service unavailable: Please try again later")
    assert_retry_scheduled(delivery)
    assert delivery.next_attempt_at is not None

    deliveries = await drive_until_settled(running_app, worker)
    assert [d.status for d in deliveries] == ["delivered"]
    assert_reason(deliveries[0].reason, "accepted", "Event created")
    attempts = await vtm_attempts(running_app)
    assert [(a.http_status, a.outcome) for a in attempts] == [(500, "retry"), (500, "retry"), (200, "delivered")]
    assert all("Service unavailable" in a.excerpt for a in attempts[:2]) and "Event created" in attempts[2].excerpt
    assert len(fake_vtm.events_for(order["number"])) == 1
    assert len(fake_vtm.requests) == 3


# Retries only when the test makes them due: how many attempts it sees does not depend on the machine's speed.
@pytest.mark.parametrize("settings_overrides", [{"delivery_retry_base_seconds": 3600, "delivery_retry_max_seconds": 7200}])
async def test_500_forever_gives_up_visibly_and_tells_the_dashboard(running_app, installed, worker, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    await configure(running_app, installed)
    fake_vtm.fail_next(50, status=500)
    order = await place_order(running_app, installed)
    await worker.run_until_idle()
    await make_due_now(running_app)
    await worker.run_until_idle()
    assert (await one_delivery(running_app)).status == "retrying"

    # A day later (the maximum age) the next failure is the last one.
    async with running_app.ctx.db.transaction() as session:
        await session.execute(update(Delivery).values(received_at=utcnow() - timedelta(hours=25)))
    await make_due_now(running_app)
    await worker.run_until_idle()

    delivery = await one_delivery(running_app)
    assert delivery.status == "failed" and delivery.next_attempt_at is None and delivery.finished_at is not None
    assert_reason(delivery.reason, "gave up after 24 h", "500", "Service unavailable: Please try again later")
    assert "next try" not in delivery.reason
    assert [a.http_status for a in await vtm_attempts(running_app)] == [500, 500, 500]
    assert fake_vtm.events == []
    # The merchant sees it in the Saleor dashboard without opening the app (Saleor 3.22+ app problems).
    problem = installed.problems[f"deliveries-failed:{CHANNEL}"]
    assert order["number"] in problem and "gave up" in problem
    # Nothing more happens by itself: a failed delivery is not pending forever.
    await make_due_now(running_app)
    await worker.run_until_idle()
    assert len(fake_vtm.requests) == 3


# --- 429 ------------------------------------------------------------------------------------------------------


def _http_date_in(seconds: float) -> str:
    return format_datetime(utcnow() + timedelta(seconds=seconds), usegmt=True)


@pytest.mark.parametrize("settings_overrides", [{"delivery_retry_max_seconds": 3600}])
@pytest.mark.parametrize("retry_after", ["120", "http-date"])
async def test_429_retry_after_is_waited_for_then_delivered_once(running_app, installed, worker, fake_vtm, retry_after) -> None:  # type: ignore[no-untyped-def]
    await configure(running_app, installed)
    fake_vtm.retry_after_next(_http_date_in(120) if retry_after == "http-date" else 120)
    order = await place_order(running_app, installed)
    before = utcnow()
    await worker.run_until_idle()

    delivery = await one_delivery(running_app)
    assert delivery.status == "retrying"
    assert_reason(delivery.reason, "429", "Too many requests: Please slow down")
    assert_retry_scheduled(delivery)
    # Not sooner than VTmarketing asked (the HTTP-date has one-second resolution), and not much later either.
    wait = (delivery.next_attempt_at - before).total_seconds()
    assert 118 <= wait <= 125, wait
    (attempt,) = await vtm_attempts(running_app)
    assert (attempt.http_status, attempt.outcome) == (429, "retry") and "Too many requests" in attempt.excerpt

    # Until then the worker leaves it alone.
    for _ in range(3):
        await worker.run_until_idle()
    assert len(fake_vtm.requests) == 1

    await make_due_now(running_app)
    await worker.run_until_idle()
    assert (await one_delivery(running_app)).status == "delivered"
    assert [a.http_status for a in await vtm_attempts(running_app)] == [429, 200]
    assert len(fake_vtm.events_for(order["number"])) == 1


# --- 4xx ------------------------------------------------------------------------------------------------------


async def test_400_fails_at_once_is_reported_and_a_resend_delivers_once(running_app, installed, worker, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    await configure(running_app, installed)
    fake_vtm.fail_next(1, status=400, body={"errors": [{"message": "Invalid event data", "description": "generic.total must be a number"}]})
    order = await place_order(running_app, installed)

    deliveries = await drive_until_settled(running_app, worker)
    (delivery,) = deliveries
    assert delivery.status == "failed"
    assert_reason(delivery.reason, "VTmarketing refused the event", "400", "Invalid event data: generic.total must be a number")
    (attempt,) = await vtm_attempts(running_app)
    assert (attempt.http_status, attempt.outcome) == (400, "failed")
    assert "generic.total must be a number" in attempt.excerpt
    assert fake_vtm.events == []
    # Failed is final: making everything due sends nothing more.
    for _ in range(3):
        await make_due_now(running_app)
        await worker.run_until_idle()
    assert len(fake_vtm.requests) == 1
    assert order["number"] in installed.problems[f"deliveries-failed:{CHANNEL}"]

    # The merchant resends it from the app; this time VTmarketing takes it, once, and the problem is dismissed.
    await DeliveryService(running_app.ctx).retry(delivery.id)
    await worker.run_until_idle()
    assert (await one_delivery(running_app)).status == "delivered"
    assert len(fake_vtm.events_for(order["number"])) == 1
    assert f"deliveries-failed:{CHANNEL}" not in installed.problems


async def test_refused_api_key_fails_names_the_fix_and_a_new_key_delivers(running_app, installed, worker, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    await configure(running_app, installed, api_key="old-key-0000")
    fake_vtm.accept_keys("new-key-1111")
    order = await place_order(running_app, installed)
    (delivery,) = await drive_until_settled(running_app, worker)
    assert delivery.status == "failed"
    assert_reason(delivery.reason, "VTmarketing refused the event", "401", "Invalid API key")
    assert "old-key-0000" not in delivery.reason
    assert [(a.http_status, a.outcome) for a in await vtm_attempts(running_app)] == [(401, "failed")]
    problem = installed.problems[f"vtmarketing-key-rejected:{CHANNEL}"]
    assert "Paste a valid key" in problem and "old-key-0000" not in problem

    await configure(running_app, installed, api_key="new-key-1111")
    await DeliveryService(running_app.ctx).retry(delivery.id)
    await worker.run_until_idle()
    assert (await one_delivery(running_app)).status == "delivered"
    assert [e.api_key for e in fake_vtm.events_for(order["number"])] == ["new-key-1111"]
    assert f"vtmarketing-key-rejected:{CHANNEL}" not in installed.problems


# --- slow answers past the client's timeout ----------------------------------------------------------------------


@pytest.mark.parametrize("settings_overrides", [{"vtmarketing_timeout_seconds": 0.3, **SLOW_RETRIES}])
async def test_answer_slower_than_the_timeout_is_retried_and_may_duplicate(running_app, installed, worker, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    await configure(running_app, installed)
    release = fake_vtm.hold_next()  # VTmarketing answers only after the app stopped waiting
    order = await place_order(running_app, installed)
    await worker.run_until_idle()
    release.set()

    delivery = await one_delivery(running_app)
    assert delivery.status == "retrying"
    assert_reason(delivery.reason, "timed out after 0.3 s")
    assert_retry_scheduled(delivery)
    (attempt,) = await vtm_attempts(running_app)
    assert (attempt.http_status, attempt.outcome, attempt.excerpt) == (None, "retry", None)
    assert attempt.duration_ms >= 250  # it waited its 0.3 s timeout

    # VTmarketing still processes the request we stopped waiting for: it holds the event before our retry.
    (late,) = await fake_vtm.wait_for_events(1, timeout=30)
    assert late.order_id == order["number"]

    await make_due_now(running_app)
    await worker.run_until_idle()
    delivery = await one_delivery(running_app)
    assert delivery.status == "delivered"
    # At least once: the retry is a legitimate duplicate, the same bytes with the same orderId (VTmarketing's API
    # has no idempotency key; the orderId is what lets its reports count the order once).
    events = fake_vtm.events_for(order["number"])
    assert len(events) == 2
    assert events[0].raw == events[1].raw == delivery.event_body.encode()
    assert [a.http_status for a in await vtm_attempts(running_app)] == [None, 200]


# --- connection refused -------------------------------------------------------------------------------------------


async def test_connection_refused_then_back_on_the_same_port_delivers_once(running_app, installed, worker, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    await configure(running_app, installed)
    order = await place_order(running_app, installed)
    fake_vtm.stop()
    try:
        await worker.run_until_idle()
        delivery = await one_delivery(running_app)
        assert delivery.status == "retrying"
        assert_reason(delivery.reason, "connection refused")
        assert_retry_scheduled(delivery)
        (attempt,) = await vtm_attempts(running_app)
        assert (attempt.http_status, attempt.outcome, attempt.excerpt) == (None, "retry", None)
        # Still down at the next try: still retrying, one more attempt recorded.
        await make_due_now(running_app)
        await worker.run_until_idle()
        assert (await one_delivery(running_app)).status == "retrying"
    finally:
        fake_vtm.start()

    await make_due_now(running_app)
    await worker.run_until_idle()
    assert (await one_delivery(running_app)).status == "delivered"
    assert [a.http_status for a in await vtm_attempts(running_app)] == [None, None, 200]
    assert len(fake_vtm.events_for(order["number"])) == 1


# --- a connection cut mid-answer -------------------------------------------------------------------------------


@pytest.mark.parametrize("created", [False, True], ids=["before-processing", "after-processing"])
async def test_connection_reset_mid_answer_is_retried(running_app, installed, worker, fake_vtm, created) -> None:  # type: ignore[no-untyped-def]
    await configure(running_app, installed)
    fake_vtm.reset_next(created=created)
    order = await place_order(running_app, installed)
    await worker.run_until_idle()

    delivery = await one_delivery(running_app)
    assert delivery.status == "retrying"
    # The status line (200) arrived, the body did not: recorded as such, and retried since the answer is unknown.
    assert_reason(delivery.reason, "200", "connection reset", "closed the connection before the answer was complete")
    assert_retry_scheduled(delivery)
    (attempt,) = await vtm_attempts(running_app)
    assert (attempt.http_status, attempt.outcome, attempt.excerpt) == (200, "retry", None)

    await make_due_now(running_app)
    await worker.run_until_idle()
    delivery = await one_delivery(running_app)
    assert delivery.status == "delivered"
    events = fake_vtm.events_for(order["number"])
    if created:
        # VTmarketing had created the event before the cut: the retry is a legitimate duplicate of the same bytes.
        assert len(events) == 2 and events[0].raw == events[1].raw
    else:
        assert len(events) == 1


# --- answers that are not JSON ------------------------------------------------------------------------------------


async def test_html_answer_with_200_counts_as_delivered(running_app, installed, worker, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    await configure(running_app, installed)
    fake_vtm.invalid_json_next(status=200)
    order = await place_order(running_app, installed)
    await worker.run_until_idle()
    delivery = await one_delivery(running_app)
    assert delivery.status == "delivered"
    assert_reason(delivery.reason, "accepted", "200", "VTmarketing's answer was unusual (not JSON)")
    (attempt,) = await vtm_attempts(running_app)
    assert (attempt.http_status, attempt.outcome) == (200, "delivered") and attempt.excerpt.startswith("<html>")
    assert len(fake_vtm.events_for(order["number"])) == 1


async def test_html_answer_with_500_is_retried_then_delivered_once(running_app, installed, worker, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    await configure(running_app, installed)
    fake_vtm.invalid_json_next(status=500)
    order = await place_order(running_app, installed)
    await worker.run_until_idle()
    delivery = await one_delivery(running_app)
    assert delivery.status == "retrying"
    assert_reason(delivery.reason, "500")
    assert_retry_scheduled(delivery)
    (attempt,) = await vtm_attempts(running_app)
    assert (attempt.http_status, attempt.outcome) == (500, "retry") and "Bad Gateway" in attempt.excerpt
    assert fake_vtm.events == []  # a 5xx page: VTmarketing did not process it

    await make_due_now(running_app)
    await worker.run_until_idle()
    assert (await one_delivery(running_app)).status == "delivered"
    assert len(fake_vtm.events_for(order["number"])) == 1


# --- everything at once ---------------------------------------------------------------------------------------


async def test_a_burst_through_mixed_faults_ends_with_each_order_once_or_failed(running_app, installed, worker, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    """Twelve orders sent concurrently while VTmarketing answers a mix of faults (which order meets which fault
    depends on arrival order): in the end exactly one fails (the 400), the others are delivered once each."""
    await configure(running_app, installed)
    fake_vtm.fail_next(1, status=500)
    fake_vtm.retry_after_next(0)
    fake_vtm.reset_next(created=False)
    fake_vtm.invalid_json_next(status=502)
    fake_vtm.fail_next(1, status=400)
    fake_vtm.fail_next(1, status=503)
    orders = [await place_order(running_app, installed) for _ in range(12)]

    deliveries = await drive_until_settled(running_app, worker)
    assert_nothing_open(deliveries)
    by_status: dict[str, list[Delivery]] = {}
    for d in deliveries:
        by_status.setdefault(d.status, []).append(d)
    assert {status: len(ds) for status, ds in by_status.items()} == {"delivered": 11, "failed": 1}
    (failed,) = by_status["failed"]
    assert_reason(failed.reason, "VTmarketing refused the event", "Error 400")  # the fake's default 400 body
    for order in orders:
        expected = 0 if order["number"] == failed.order_number else 1
        assert len(fake_vtm.events_for(order["number"])) == expected, order["number"]
    attempts = await vtm_attempts(running_app)
    assert len(attempts) == 12 + 5  # one per order, plus one retry for each of the five retryable faults
    assert sorted(a.http_status or 0 for a in attempts if a.outcome == "retry") == [200, 429, 500, 502, 503]
    assert json.loads(deliveries[0].event_body)["event"]["confirmation"]["generic"]["orderId"] == deliveries[0].order_number


# --- the answer is read, not assumed (issue 12, finding 8) -------------------------------------------------------


async def test_200_with_errors_is_not_delivered_and_a_resend_delivers(running_app, installed, worker, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    await configure(running_app, installed)
    fake_vtm.fail_next(1, status=200, body={"errors": [{"message": "Invalid event data", "description": "orderId is taken"}]})
    order = await place_order(running_app, installed)
    (delivery,) = await drive_until_settled(running_app, worker)
    assert delivery.status == "failed"
    assert_reason(delivery.reason, "VTmarketing refused the event", "200", "Invalid event data: orderId is taken")
    (attempt,) = await vtm_attempts(running_app)
    assert (attempt.http_status, attempt.outcome) == (200, "failed")
    # Failed stays failed (nothing retried behind the merchant's back) and can be sent again from the page.
    await DeliveryService(running_app.ctx).retry(delivery.id)
    await worker.run_until_idle()
    assert (await one_delivery(running_app)).status == "delivered"
    assert len(fake_vtm.events_for(order["number"])) == 1


@pytest.mark.parametrize("answer", [b"", b"{}", b'{"status": "ok"}'], ids=["empty", "empty-object", "no-results"])
async def test_an_unusual_200_is_delivered_and_says_so(answer, running_app, installed, worker, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    await configure(running_app, installed)
    fake_vtm.fail_next(1, status=200, body=answer)
    await place_order(running_app, installed)
    (delivery,) = await drive_until_settled(running_app, worker)
    assert delivery.status == "delivered"
    assert_reason(delivery.reason, "VTmarketing accepted the event", "200", "VTmarketing's answer was unusual")
    (attempt,) = await vtm_attempts(running_app)
    assert (attempt.http_status, attempt.outcome) == (200, "delivered")


async def test_an_echoed_key_is_redacted_in_every_form_before_it_is_stored_logged_or_shown(running_app, installed, worker, fake_vtm, caplog) -> None:  # type: ignore[no-untyped-def]
    import logging
    from urllib.parse import quote

    from saleor_app.vtmarketing.client import key_forms
    from tests.settings.test_api import DELIVERIES, gql

    caplog.set_level(logging.DEBUG)
    key = 'vtm"key\\with/odd+chars-0123456789'
    await configure(running_app, installed, api_key=key)
    forms = key_forms(key)
    assert len(forms) >= 5  # raw, JSON-escaped (two ways), percent-encoded (two cases), HTML-escaped
    # JSON-escaped as Python does it, percent-encoded in both cases, and JSON-escaped as PHP does it (`\/`).
    echo = (f'{{"errors": [{{"message": "Invalid API key {json.dumps(key)[1:-1]}", "description": "sent as '
            f'{quote(key, safe="")} or {quote(key, safe="").lower()} or {json.dumps(key)[1:-1].replace("/", chr(92) + "/")}"}}]}}')
    fake_vtm.fail_next(1, status=401, body=echo.encode())
    await place_order(running_app, installed)
    (delivery,) = await drive_until_settled(running_app, worker)
    assert delivery.status == "failed"
    (attempt,) = await vtm_attempts(running_app)
    shown = json.dumps(await gql(running_app, installed, DELIVERIES, {}))
    stored = [delivery.reason or "", attempt.excerpt or "", shown, json.dumps(installed.problems),
              "\n".join(record.getMessage() for record in caplog.records)]
    for text in stored:
        for form in forms + [quote(key, safe="").lower(), key[:12], "0123456789"]:
            assert form not in text, (form, text[:300])
    assert "***" in attempt.excerpt and "Invalid API key" in delivery.reason
