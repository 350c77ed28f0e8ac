"""HTTP client for VTmarketing's server-side events API.

`send` never raises for anything the network or VTmarketing can do: it always answers with a `SendResult` whose
`outcome` tells the delivery layer what to do next (stop, retry later, or give up and tell the merchant). That keeps
the retry policy in one place (the delivery engine) and the knowledge of HTTP and of VTmarketing's answers here.

Connections to VTmarketing are pooled and kept alive (opening a TLS connection per order would multiply latency and
load under a burst of orders), in several small pools rather than one large one (see http_pools.py).
"""

from __future__ import annotations

import asyncio
import errno
import html
import json
import logging
import math
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any, Literal
from urllib.parse import quote, quote_plus

import httpx

from saleor_app import __version__
from saleor_app.http_pools import ShardedPools, pool_limits, shared_ssl_context

__all__ = ["Outcome", "SendResult", "USER_AGENT", "VTMarketingClient", "parse_retry_after"]

log = logging.getLogger(__name__)

Outcome = Literal["delivered", "retry", "failed"]

USER_AGENT = f"saleor-vtmarketing/{__version__}"

_EXCERPT_CHARS = 300
_MESSAGE_CHARS = 500
# VTmarketing's answers are a few hundred bytes; reading more than this only wastes memory on a broken proxy page.
_MAX_ANSWER_BYTES = 64 * 1024
# Statuses that mean "try again later" rather than "this request is wrong".
_RETRY_STATUSES = frozenset({408, 425, 429})


@dataclass(frozen=True)
class SendResult:
    """What happened to one send, in terms the delivery engine and the merchant's dashboard can use.

    outcome: "delivered" (VTmarketing accepted it), "retry" (a temporary problem: send again later) or "failed"
        (VTmarketing refused this request; sending the same bytes again will not help).
    http_status: the status VTmarketing answered, or None when no answer arrived.
    message: a plain-words reason, VTmarketing's own words when it gave some.
    excerpt: the start of the answer body, for support; None when there was no body.
    retry_after: seconds VTmarketing asked us to wait (Retry-After), or None.
    duration_ms: wall time of the exchange.
    unusual: for "delivered", True when the 2xx answer lacked VTmarketing's usual `results` (an empty body, a proxy
        page): accepted by the status, worth a look.
    """

    outcome: Outcome
    http_status: int | None
    message: str
    excerpt: str | None
    retry_after: float | None
    duration_ms: int
    unusual: bool = False  # delivered, but the answer was not VTmarketing's usual `{"results": …}`

    @property
    def rejected_key(self) -> bool:
        """True when VTmarketing refused the channel's API key (401/403): the merchant must fix the key."""
        return self.http_status in (401, 403)


class VTMarketingClient:
    """Sends encoded events to VTmarketing over a shared, pooled connection.

    `timeout` bounds waiting for VTmarketing once connected (and the whole exchange, together with
    `connect_timeout`), `connect_timeout` bounds opening a connection. `max_in_flight`: how many sends may run at
    once (the delivery concurrency, plus a few test events); it sets the number of pools. `transport` lets tests
    inject an `httpx.MockTransport` (then one pool); the pool limits only apply to the default transport.
    """

    def __init__(
        self,
        api_url: str,
        *,
        timeout: float = 10.0,
        connect_timeout: float = 3.0,
        max_in_flight: int = 64,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not api_url.startswith(("http://", "https://")):
            raise ValueError(f"the VTmarketing API URL must be an absolute http(s) URL, not {api_url!r}")
        if timeout <= 0 or connect_timeout <= 0:
            raise ValueError("timeouts must be positive")
        self.api_url = api_url
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        # A test's MockTransport: one pool (the limits only apply to the default transport).
        self._pools = ShardedPools(lambda: self._new_client(transport), max_in_flight=1 if transport else max_in_flight)

    def _new_client(self, transport: httpx.AsyncBaseTransport | None) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            timeout=httpx.Timeout(self.timeout, connect=self.connect_timeout),
            limits=pool_limits(keepalive_expiry=30.0),
            verify=shared_ssl_context(),
            transport=transport,
            headers={
                "User-Agent": USER_AGENT,
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
            # A redirect means the configured URL is wrong; following it could resend the key to another host.
            follow_redirects=False,
            # The client is shared by every merchant: never carry a cookie from one API key's answer to another's.
            cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
        )

    async def __aenter__(self) -> "VTMarketingClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the pooled connections; call once at shutdown."""
        await self._pools.aclose()

    async def send(self, api_key: str, body: bytes) -> SendResult:
        """POST one encoded event with the channel's API key and classify what happened.

        Never raises for network or server trouble (only cancellation propagates). The key is sent as-is in
        `Authorization` (VTmarketing uses no "Bearer" prefix) and is never logged nor echoed in the result.
        """
        started = time.monotonic()
        key = (api_key or "").strip()
        if not key:
            return _result("failed", None, "no VTmarketing API key is configured for this channel", started=started)
        if not all(" " <= char <= "~" for char in key):
            return _result(
                "failed", None, "the VTmarketing API key contains characters that cannot be sent", started=started
            )

        status: int | None = None
        try:
            with self._pools.least_busy() as pool:
                async with asyncio.timeout(self.connect_timeout + self.timeout), self._pools.clients[pool].stream(
                    "POST", self.api_url, content=body, headers={"Authorization": key}
                ) as response:
                    status = response.status_code
                    raw = await _read_capped(response)
                    result = _classify_answer(response, raw, key, started)
        except (httpx.TimeoutException, TimeoutError) as exc:
            result = _result("retry", status, self._timeout_message(exc), started=started)
        except httpx.TransportError as exc:
            result = _result("retry", status, _transport_message(exc), started=started)
        except httpx.HTTPError as exc:  # e.g. DecodingError: a broken answer, worth another try
            message = f"unreadable answer from VTmarketing ({type(exc).__name__})"
            result = _result("retry", status, message, started=started)
        log.debug(
            "vtmarketing send finished",
            extra={"outcome": result.outcome, "http_status": result.http_status, "duration_ms": result.duration_ms},
        )
        return result

    def _timeout_message(self, exc: BaseException) -> str:
        if isinstance(exc, httpx.ConnectTimeout):
            return f"timed out connecting to VTmarketing after {self.connect_timeout:g} s"
        if isinstance(exc, httpx.PoolTimeout):
            return f"timed out waiting for a free connection after {self.timeout:g} s"
        return f"timed out after {self.timeout:g} s"


async def _read_capped(response: httpx.Response) -> bytes:
    """Read at most _MAX_ANSWER_BYTES of the answer; a truncated read is still classified by its status."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= _MAX_ANSWER_BYTES:
            break
    return b"".join(chunks)[:_MAX_ANSWER_BYTES]


def _classify_answer(response: httpx.Response, raw: bytes, key: str, started: float) -> SendResult:
    """Read the answer, not just its status: a 2xx carrying `errors` is a refusal; a 2xx without `results` is
    accepted but marked unusual. The key is redacted (in every form an answer may echo it) before anything is kept."""
    status = response.status_code
    text = _redact(raw.decode("utf-8", errors="replace"), key) or ""
    excerpt = text.strip()[:_EXCERPT_CHARS] or None
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    answer = _json_object(text)
    vendor_message = _vendor_message(answer)
    unusual = False

    if 200 <= status < 300 and answer is not None and answer.get("errors"):
        outcome: Outcome = "failed"  # "200 OK" with errors: VTmarketing did not take it; resendable once fixed
        default = f"VTmarketing answered {status} with errors"
    elif 200 <= status < 300:
        outcome = "delivered"
        default = f"VTmarketing answered {status}"
        unusual = answer is None or not isinstance(answer.get("results"), dict)
        if unusual:
            what = "an empty body" if excerpt is None else ("not JSON" if answer is None else "JSON without `results`")
            default = f"VTmarketing answered {status}; VTmarketing's answer was unusual ({what})"
    elif status in _RETRY_STATUSES or status >= 500:
        outcome, default = "retry", f"VTmarketing answered {status}"
    elif 300 <= status < 400:
        location = response.headers.get("Location")
        outcome = "failed"
        target = f" to {location}" if location else ""
        default = f"VTmarketing answered {status} (a redirect{target}): check the API URL"
    else:
        outcome, default = "failed", f"VTmarketing answered {status}"

    message = vendor_message if vendor_message and not unusual else default
    return _result(outcome, status, message, excerpt=excerpt, retry_after=retry_after, started=started, unusual=unusual)


def _json_object(text: str) -> dict | None:
    try:
        data: Any = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _vendor_message(data: dict | None) -> str | None:
    """VTmarketing's own words: `errors[].message: description`, else `results.message`, else None."""
    if data is None:
        return None
    errors = data.get("errors")
    if isinstance(errors, dict):
        errors = [errors]
    if isinstance(errors, list):
        parts = []
        for error in errors:
            if isinstance(error, str) and error.strip():
                parts.append(error.strip())
            elif isinstance(error, dict):
                message, description = _str(error.get("message")), _str(error.get("description"))
                if message and description and description != message:
                    parts.append(f"{message}: {description}")
                elif message or description:
                    parts.append(message or description or "")
        if parts:
            return "; ".join(parts)
    results = data.get("results")
    if isinstance(results, dict) and _str(results.get("message")):
        return _str(results.get("message"))
    for key in ("message", "detail", "error"):
        if _str(data.get(key)):
            return _str(data.get(key))
    return None


def _str(value: object) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _transport_message(exc: httpx.TransportError) -> str:
    """Name a network failure the way an operator would ("connection refused"), not as a Python exception."""
    codes = set()
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError) and cause.errno is not None:
            codes.add(cause.errno)
        cause = cause.__cause__ or cause.__context__
    detail = str(exc).lower()
    if errno.ECONNREFUSED in codes or "refused" in detail:
        return "connection refused"
    if errno.ECONNRESET in codes or "reset" in detail:
        return "connection reset"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "connection reset (VTmarketing closed the connection before the answer was complete)"
    if isinstance(exc, httpx.ConnectError):
        return f"could not connect to VTmarketing ({exc or type(exc).__name__})"
    if isinstance(exc, (httpx.ReadError, httpx.WriteError)):
        return f"connection reset ({exc or type(exc).__name__})"
    return f"network error talking to VTmarketing ({exc or type(exc).__name__})"


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None when absent or unreadable."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - (now or datetime.now(timezone.utc))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def key_forms(key: str) -> list[str]:
    """Every form in which an answer may echo the key: as is, JSON-escaped (`\\"`, `\\/` too), percent-encoded in
    upper- and lower-case hex, HTML-escaped. Longest first, so no form is left half-replaced."""
    json_escaped = json.dumps(key)[1:-1]
    percent = quote(key, safe="")
    lower_percent = re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), percent)
    forms = {key, json_escaped, json_escaped.replace("/", "\\/"), percent, lower_percent, quote_plus(key, safe=""),
             html.escape(key, quote=True)}
    return sorted((form for form in forms if form), key=len, reverse=True)


def _redact(text: str | None, key: str) -> str | None:
    """Hide the API key should VTmarketing (or a proxy) ever echo it back, in any of its forms, before the text is
    stored, logged or shown (redacted before truncation: a cut never leaves part of a key)."""
    if text and len(key) >= 4:
        for form in key_forms(key):
            text = text.replace(form, "***")
    return text


def _result(
    outcome: Outcome,
    status: int | None,
    message: str,
    *,
    started: float,
    excerpt: str | None = None,
    retry_after: float | None = None,
    unusual: bool = False,
) -> SendResult:
    return SendResult(
        outcome=outcome,
        http_status=status,
        message=message[:_MESSAGE_CHARS],
        excerpt=excerpt,
        retry_after=retry_after,
        duration_ms=int((time.monotonic() - started) * 1000),
        unusual=unusual,
    )
