"""VTMarketingClient against FakeVTMarketing over real loopback HTTP: every outcome the delivery engine relies on."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import httpx
import pytest

from saleor_app import __version__
from saleor_app.vtmarketing.client import SendResult, VTMarketingClient, parse_retry_after
from saleor_app.vtmarketing.mapping import build_confirmation_event, encode_event
from saleor_app.vtmarketing.models import MappingOptions, OrderData, OrderLine
from tests.fakes.vtmarketing import FakeVTMarketing

KEY = "vt-key-0123456789abcdef"
# The client's timeout in these tests: longer than any answer of a loaded machine. The timeout test holds its
# answer back until the client gave up (FakeVTMarketing.hold_next), so it needs no race against a short timeout.
TIMEOUT = 30.0
SHORT_TIMEOUT = 0.5


def make_body(number: str = "26", email: str = "ada.buyer@example.com") -> bytes:
    order = OrderData(
        order_id="T3JkZXI6MQ==",
        number=number,
        status="UNFULFILLED",
        email=email,
        phone="+16502530000",
        first_name="Zoë",
        last_name="Buyer",
        city="MOUNTAIN VIEW",
        country_name="United States of America",
        total=86.37,
        currency="USD",
        shipping_total=0.0,
        coupons=("SAVE10",),
        lines=(OrderLine(2, "118223581", "VAR-1", "PROD-1", "Tee", None, None),),
    )
    return encode_event(build_confirmation_event(order, MappingOptions()))


BODY = make_body()


@pytest.fixture(scope="module")
def fake_server() -> Iterator[FakeVTMarketing]:
    with FakeVTMarketing() as fake:
        yield fake


@pytest.fixture
def fake(fake_server: FakeVTMarketing) -> Iterator[FakeVTMarketing]:
    fake_server.clear()
    fake_server.accept_keys()
    fake_server.up()
    fake_server.latency = 0.0
    yield fake_server
    fake_server.clear()


@pytest.fixture
async def client(fake: FakeVTMarketing) -> AsyncIterator[VTMarketingClient]:
    vt_client = VTMarketingClient(fake.api_url, timeout=TIMEOUT, connect_timeout=TIMEOUT)
    yield vt_client
    await vt_client.aclose()


# --- answers -----------------------------------------------------------------------------------------------------


async def test_200_is_delivered_and_the_fake_records_the_event(
    client: VTMarketingClient, fake: FakeVTMarketing
) -> None:
    result = await client.send(KEY, BODY)
    assert result.outcome == "delivered"
    assert result.http_status == 200
    assert result.message == "Event created"
    assert result.excerpt is not None and "Event created" in result.excerpt
    assert result.retry_after is None
    assert result.rejected_key is False
    assert result.duration_ms >= 0
    [event] = fake.events_for("26")
    assert event.api_key == KEY
    assert event.body == json.loads(BODY)


async def test_exact_headers_and_bytes_received(client: VTMarketingClient, fake: FakeVTMarketing) -> None:
    await client.send(KEY, BODY)
    [request] = fake.requests
    assert request.method == "POST"
    assert request.path == "/v1/event/"
    assert request.body == BODY  # byte for byte: compact UTF-8, "Zoë" not escaped
    assert "Zoë".encode() in request.body
    assert request.headers["authorization"] == KEY  # the key itself, no "Bearer"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == f"saleor-vtmarketing/{__version__}"
    assert request.headers["content-length"] == str(len(BODY))
    assert "cookie" not in request.headers
    assert [name for name, _ in request.raw_headers].count("authorization") == 1


async def test_sequential_sends_reuse_one_connection(client: VTMarketingClient, fake: FakeVTMarketing) -> None:
    for number in range(5):
        assert (await client.send(KEY, make_body(str(number)))).outcome == "delivered"
    assert len({request.peer for request in fake.requests}) == 1


async def test_concurrent_sends_share_the_client(client: VTMarketingClient, fake: FakeVTMarketing) -> None:
    results = await asyncio.gather(*(client.send(KEY, make_body(str(n))) for n in range(20)))
    assert {r.outcome for r in results} == {"delivered"}
    assert len(fake.events) == 20
    assert sorted(e.order_id for e in fake.events) == sorted(str(n) for n in range(20))


async def test_400_is_failed_with_the_vendors_message(client: VTMarketingClient, fake: FakeVTMarketing) -> None:
    result = await client.send(KEY, b'{"user":{"email":"a@example.com"}}')
    assert result.outcome == "failed"
    assert result.http_status == 400
    assert result.message == "Missing event information: Please send event information along with user"
    assert result.rejected_key is False
    assert fake.events == []


async def test_body_that_is_not_json_is_refused(client: VTMarketingClient, fake: FakeVTMarketing) -> None:
    result = await client.send(KEY, b"not json")
    assert (result.outcome, result.http_status) == ("failed", 400)


async def test_401_means_the_key_was_rejected(client: VTMarketingClient, fake: FakeVTMarketing) -> None:
    fake.accept_keys("the-right-key")
    result = await client.send(KEY, BODY)
    assert result.outcome == "failed"
    assert result.http_status == 401
    assert result.rejected_key is True
    assert result.message.startswith("Invalid API key")
    assert fake.events == []
    assert (await client.send("the-right-key", BODY)).outcome == "delivered"


async def test_403_also_means_the_key_was_rejected(client: VTMarketingClient, fake: FakeVTMarketing) -> None:
    fake.fail_next(1, status=403, body={"errors": [{"message": "Forbidden"}]})
    result = await client.send(KEY, BODY)
    assert (result.outcome, result.rejected_key, result.message) == ("failed", True, "Forbidden")


async def test_empty_key_is_failed_without_a_request(client: VTMarketingClient, fake: FakeVTMarketing) -> None:
    result = await client.send("  ", BODY)
    assert result.outcome == "failed" and result.http_status is None
    assert fake.requests == []


async def test_key_with_a_newline_is_refused_locally(client: VTMarketingClient, fake: FakeVTMarketing) -> None:
    result = await client.send("abc\r\nX-Injected: 1", BODY)
    assert result.outcome == "failed"
    assert "abc" not in result.message
    assert fake.requests == []


async def test_503_is_retry(client: VTMarketingClient, fake: FakeVTMarketing) -> None:
    fake.fail_next(2)
    first, second, third = [await client.send(KEY, BODY) for _ in range(3)]
    assert (first.outcome, first.http_status) == ("retry", 503)
    assert first.message == "Service unavailable: Please try again later"
    assert second.outcome == "retry"
    assert third.outcome == "delivered"
    assert len(fake.events_for("26")) == 1


@pytest.mark.parametrize("status", [500, 502, 504, 408])
async def test_temporary_statuses_are_retry(client: VTMarketingClient, fake: FakeVTMarketing, status: int) -> None:
    fake.fail_next(1, status=status, body=b"")
    result = await client.send(KEY, BODY)
    assert (result.outcome, result.http_status) == ("retry", status)
    assert result.message == f"VTmarketing answered {status}"
    assert result.excerpt is None


@pytest.mark.parametrize("status", [404, 405, 422])
async def test_other_4xx_are_failed(client: VTMarketingClient, fake: FakeVTMarketing, status: int) -> None:
    fake.fail_next(1, status=status, body=b"nope")
    result = await client.send(KEY, BODY)
    assert (result.outcome, result.http_status, result.excerpt) == ("failed", status, "nope")
    assert result.message == f"VTmarketing answered {status}"


async def test_redirect_is_failed_and_not_followed(client: VTMarketingClient, fake: FakeVTMarketing) -> None:
    fake.fail_next(1, status=301, body=b"", headers={"Location": "https://elsewhere.example/v1/event/"})
    result = await client.send(KEY, BODY)
    assert (result.outcome, result.http_status) == ("failed", 301)
    assert "https://elsewhere.example/v1/event/" in result.message
    assert len(fake.requests) == 1


async def test_down_answers_503_until_up(client: VTMarketingClient, fake: FakeVTMarketing) -> None:
    fake.down()
    assert (await client.send(KEY, BODY)).outcome == "retry"
    fake.up()
    assert (await client.send(KEY, BODY)).outcome == "delivered"


async def test_429_with_retry_after_seconds(client: VTMarketingClient, fake: FakeVTMarketing) -> None:
    fake.retry_after_next(30)
    result = await client.send(KEY, BODY)
    assert (result.outcome, result.http_status, result.retry_after) == ("retry", 429, 30.0)
    assert result.rejected_key is False


async def test_429_with_retry_after_http_date(client: VTMarketingClient, fake: FakeVTMarketing) -> None:
    when = datetime.now(timezone.utc) + timedelta(seconds=120)
    fake.retry_after_next(format_datetime(when, usegmt=True))
    result = await client.send(KEY, BODY)
    assert result.outcome == "retry"
    assert result.retry_after is not None and 110 <= result.retry_after <= 121


def test_parse_retry_after() -> None:
    now = datetime(2026, 11, 26, 17, 0, 0, tzinfo=timezone.utc)
    assert parse_retry_after("120", now=now) == 120.0
    assert parse_retry_after(" 1.5 ", now=now) == 1.5
    assert parse_retry_after("Thu, 26 Nov 2026 17:01:00 GMT", now=now) == 60.0
    assert parse_retry_after("Thu, 26 Nov 2026 16:00:00 GMT", now=now) == 0.0  # in the past: no wait
    assert parse_retry_after("-5", now=now) == 0.0
    for junk in (None, "", "soon", "nan", "inf"):
        assert parse_retry_after(junk, now=now) is None


# --- network failures --------------------------------------------------------------------------------------------


async def test_slow_answer_past_the_timeout_is_retry(fake: FakeVTMarketing) -> None:
    release = fake.hold_next()  # answered only after the client gave up
    async with VTMarketingClient(fake.api_url, timeout=SHORT_TIMEOUT, connect_timeout=TIMEOUT) as client:
        result = await client.send(KEY, BODY)
    assert result.outcome == "retry"
    assert result.http_status is None
    assert result.message == f"timed out after {SHORT_TIMEOUT:g} s"
    assert result.duration_ms >= SHORT_TIMEOUT * 1000 * 0.9  # it waited its timeout, not less
    # A slow server still processed the order: retrying can duplicate it, which is why orderId matters.
    release.set()
    await fake.wait_for_events(1, timeout=30)
    assert len(fake.events_for("26")) == 1


async def test_slow_answer_within_the_timeout_is_delivered(client: VTMarketingClient, fake: FakeVTMarketing) -> None:
    fake.slow_next(0.1)
    result = await client.send(KEY, BODY)
    assert result.outcome == "delivered"
    assert result.duration_ms >= 90


async def test_connection_refused_is_retry() -> None:
    fake = FakeVTMarketing().start()
    client = VTMarketingClient(fake.api_url, timeout=TIMEOUT, connect_timeout=TIMEOUT)
    try:
        assert (await client.send(KEY, BODY)).outcome == "delivered"
        fake.stop()
        result = await client.send(KEY, BODY)
        assert result.outcome == "retry"
        assert result.http_status is None
        assert result.message == "connection refused"
        fake.start()  # same port: the same client recovers
        assert (await client.send(KEY, BODY)).outcome == "delivered"
        assert len(fake.events) == 2
    finally:
        await client.aclose()
        fake.stop()


async def test_reset_mid_answer_is_retry(client: VTMarketingClient, fake: FakeVTMarketing) -> None:
    fake.reset_next()
    result = await client.send(KEY, BODY)
    assert result.outcome == "retry"
    assert result.message.startswith("connection reset")
    assert fake.events == []
    assert (await client.send(KEY, BODY)).outcome == "delivered"


async def test_reset_after_processing_can_duplicate(client: VTMarketingClient, fake: FakeVTMarketing) -> None:
    fake.reset_next(created=True)
    assert (await client.send(KEY, BODY)).outcome == "retry"
    assert (await client.send(KEY, BODY)).outcome == "delivered"
    assert len(fake.events_for("26")) == 2


async def test_invalid_json_with_200_is_delivered(client: VTMarketingClient, fake: FakeVTMarketing) -> None:
    fake.invalid_json_next()
    result = await client.send(KEY, BODY)
    assert (result.outcome, result.http_status) == ("delivered", 200)
    assert result.excerpt is not None and result.excerpt.startswith("<html>")
    assert "200" in result.message
    assert len(fake.events) == 1


async def test_invalid_json_with_502_is_retry(client: VTMarketingClient, fake: FakeVTMarketing) -> None:
    fake.invalid_json_next(status=502)
    result = await client.send(KEY, BODY)
    assert (result.outcome, result.http_status, result.message) == ("retry", 502, "VTmarketing answered 502")
    assert fake.events == []


async def test_excerpt_is_capped_and_never_contains_the_key(client: VTMarketingClient, fake: FakeVTMarketing) -> None:
    echo = {"errors": [{"message": f"Unknown key {KEY}", "description": "x" * 1000}]}
    fake.fail_next(1, status=400, body=echo)
    result = await client.send(KEY, BODY)
    assert result.outcome == "failed"
    assert result.excerpt is not None and len(result.excerpt) <= 300
    assert KEY not in result.excerpt and KEY not in result.message
    assert len(result.message) <= 500


async def test_the_key_is_never_logged(
    client: VTMarketingClient, fake: FakeVTMarketing, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.fail_next(1)
    await client.send(KEY, BODY)
    await client.send(KEY, BODY)
    assert KEY not in caplog.text
    assert all(KEY not in repr(record.__dict__) for record in caplog.records)


async def test_mock_transport_can_be_injected() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202, json={"results": {"message": "Queued"}})

    async with VTMarketingClient("https://api.vtcdn.net/v1/event/", transport=httpx.MockTransport(handler)) as client:
        result = await client.send(KEY, BODY)
    assert result == SendResult("delivered", 202, "Queued", result.excerpt, None, result.duration_ms)
    assert seen[0].headers["authorization"] == KEY


def test_bad_api_url_is_refused() -> None:
    with pytest.raises(ValueError):
        VTMarketingClient("api.vtcdn.net/v1/event/")


# --- the fake itself -----------------------------------------------------------------------------------------------


async def test_fake_latency_delays_every_answer(client: VTMarketingClient, fake: FakeVTMarketing) -> None:
    fake.latency = 0.1
    result = await client.send(KEY, BODY)
    assert result.outcome == "delivered" and result.duration_ms >= 90


async def test_fake_refuses_wrong_types_like_a_strict_vendor(client: VTMarketingClient, fake: FakeVTMarketing) -> None:
    wrong = json.loads(BODY)
    wrong["event"]["confirmation"]["generic"]["total"] = "86.37"
    result = await client.send(KEY, json.dumps(wrong).encode())
    assert (result.outcome, result.http_status) == ("failed", 400)
    assert "generic.total must be a number" in result.message


async def test_fake_keeps_queued_behaviours_during_an_outage(client: VTMarketingClient, fake: FakeVTMarketing) -> None:
    fake.fail_next(1, status=500)
    fake.down()
    assert (await client.send(KEY, BODY)).http_status == 503
    fake.up()
    assert (await client.send(KEY, BODY)).http_status == 500
    assert (await client.send(KEY, BODY)).http_status == 200
    assert [request.status for request in fake.requests] == [503, 500, 200]
