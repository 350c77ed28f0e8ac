"""Talks to an installation's Saleor: GraphQL with `gql` over the process's small httpx pools (http_pools.py).

One gql session stays open per Saleor API URL and pool (setting a Client and its session up per request cost more
than the request), and each query document is parsed and printed once per process, not on every request."""

from __future__ import annotations

import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx
from gql import Client, GraphQLRequest, gql
from gql.client import AsyncClientSession
from gql.transport.exceptions import TransportError, TransportProtocolError, TransportQueryError, TransportServerError
from gql.transport.httpx import HTTPXAsyncTransport
from graphql import DocumentNode, ExecutionResult

from saleor_app import __version__
from saleor_app.http_pools import ShardedPools, pool_limits, shared_ssl_context
from saleor_app.saleor.documents import load_document
from saleor_app.saleor.exceptions import SaleorError, SaleorPermissionDenied
from saleor_app.saleor.url_guard import GuardedNetworkBackend, PrivateAddressRefused, SaleorUrlGuard


# The headers of the answer to this task's latest request: the transport is shared by concurrent requests, so its
# own `response_headers` may be another request's.
_answer_headers: ContextVar[httpx.Headers | None] = ContextVar("saleor_answer_headers", default=None)
MAX_SESSIONS = 1000  # a few per installed Saleor; install attempts from other URLs only ever fill it up to here


@dataclass(frozen=True)
class _Document:
    node: DocumentNode
    text: str  # printed once: gql would print the document again for every request


@cache
def _document(document_name: str) -> _Document:
    node = gql(load_document(document_name))
    return _Document(node, GraphQLRequest(node).payload["query"])


class _PreparedRequest(GraphQLRequest):
    """A request whose query text is the document's, printed once."""

    def __init__(self, document: _Document, variables: dict | None) -> None:
        super().__init__(document.node, variable_values=variables or {})
        self._text = document.text

    @property
    def payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"query": self._text}
        if self.variable_values:
            payload["variables"] = self.variable_values
        return payload


class _PooledTransport(HTTPXAsyncTransport):
    """gql's httpx transport opens a client per session; this one borrows the process-wide client instead."""

    def __init__(self, url: str, client: httpx.AsyncClient) -> None:
        super().__init__(url=url)
        self._shared = client

    async def connect(self) -> None:
        self.client = self._shared

    async def close(self) -> None:
        self.client = None  # the shared client outlives the session

    def _get_json_result(self, response: httpx.Response) -> Any:
        _answer_headers.set(response.headers)
        return super()._get_json_result(response)


def _plain_words(exc: BaseException) -> str:
    """What went wrong on the wire, for a merchant: not the exception class names of two libraries."""
    refused = _private_address_refusal(exc)
    if refused is not None:
        return str(refused)
    cause = exc.__cause__ or exc.__context__ or exc
    if isinstance(exc, httpx.TimeoutException) or isinstance(cause, httpx.TimeoutException):
        return "it did not answer in time"
    if isinstance(exc, TransportProtocolError) or isinstance(cause, httpx.RemoteProtocolError):
        return "its answer was not a GraphQL answer"
    return "the connection failed"


def _private_address_refusal(exc: BaseException) -> PrivateAddressRefused | None:
    seen: BaseException | None = exc
    for _ in range(6):  # httpx and gql wrap it in their own exceptions
        if seen is None:
            return None
        if isinstance(seen, PrivateAddressRefused):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def saleor_time(headers: httpx.Headers | None) -> datetime | None:
    """Saleor's clock, from the `Date` header of its answer (second resolution); None when absent or unreadable."""
    value = headers.get("date") if headers is not None else None
    if not value:
        return None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


class _GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport whose connections go through the URL guard (see url_guard.py): every new connection to a
    Saleor is resolved, checked, and opened to the checked address."""

    def __init__(self, guard: SaleorUrlGuard, limits: httpx.Limits) -> None:
        super().__init__(limits=limits, verify=shared_ssl_context())
        # httpx builds its pool without a network backend option; the pool is rebuilt with the same limits.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=shared_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedNetworkBackend(guard),
        )


def jwks_url(saleor_api_url: str) -> str:
    parts = urlsplit(saleor_api_url)
    return f"{parts.scheme}://{parts.netloc}/.well-known/jwks.json"


def _is_permission_denied(errors: list[dict] | None) -> bool:
    return any((e.get("extensions") or {}).get("exception", {}).get("code") == "PermissionDenied" for e in errors or [])


@dataclass
class OrdersPage:
    orders: list[dict]
    has_next_page: bool
    end_cursor: str | None
    total_count: int | None
    saleor_time: datetime | None = None  # Saleor's clock when it answered (its Date header)


@dataclass(frozen=True)
class AppIdentity:
    app_id: str
    saleor_time: datetime | None  # Saleor's clock when it answered


@dataclass
class LineDetails:
    lines: list[dict]
    app_permissions: set[str] = field(default_factory=set)


class SaleorClient:
    def __init__(self, *, timeout: float = 10.0, connect_timeout: float = 3.0, metrics: Any = None,
                 url_guard: SaleorUrlGuard | None = None, max_in_flight: int = 64) -> None:
        limits = pool_limits()
        # Without a guard (or with ALLOW_PRIVATE_SALEOR_URLS) connections open as httpx opens them.
        guarded = url_guard is not None and not url_guard.allow_private
        self.url_guard = url_guard or SaleorUrlGuard(allow_private=True)
        self._pools = ShardedPools(lambda: httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            limits=limits,
            verify=shared_ssl_context(),
            transport=_GuardedTransport(self.url_guard, limits) if guarded else None,
            headers={"User-Agent": f"saleor-vtmarketing/{__version__}"},
            follow_redirects=False,
        ), max_in_flight=max_in_flight)
        self._metrics = metrics
        self._sessions: dict[tuple[str, int], AsyncClientSession] = {}

    async def aclose(self) -> None:
        for session in self._sessions.values():
            await session.client.close_async()
        self._sessions.clear()
        await self._pools.aclose()

    async def _session(self, api_url: str, pool: int) -> AsyncClientSession:
        """The open gql session for this Saleor over this pool (requests carry their own token: installations
        share nothing)."""
        session = self._sessions.get((api_url, pool))
        if session is None:
            transport = _PooledTransport(api_url, self._pools.clients[pool])
            session = await Client(transport=transport, fetch_schema_from_transport=False).connect_async()
            if len(self._sessions) >= MAX_SESSIONS:
                self._sessions.clear()  # nothing to close: the sessions borrow the process's httpx clients
            session = self._sessions.setdefault((api_url, pool), session)
        return session

    async def execute(self, api_url: str, token: str | None, document_name: str, variables: dict | None = None) -> ExecutionResult:
        return (await self._execute(api_url, token, document_name, variables))[0]

    async def _execute(self, api_url: str, token: str | None, document_name: str,
                       variables: dict | None = None) -> tuple[ExecutionResult, datetime | None]:
        """The answer, and Saleor's clock when it gave it (from the transport's last response headers)."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        started = time.perf_counter()
        _answer_headers.set(None)
        try:
            with self._pools.least_busy() as pool:
                session = await self._session(api_url, pool)
                result = await session.execute(
                    _PreparedRequest(_document(document_name), variables),
                    get_execution_result=True,
                    extra_args={"headers": headers},  # per request: the pooled clients are shared by installations
                )
            return result, saleor_time(_answer_headers.get())
        except TransportQueryError as exc:
            # GraphQL errors (PermissionDenied on a field, say) come with partial data; callers judge them.
            return ExecutionResult(data=exc.data, errors=exc.errors), saleor_time(_answer_headers.get())
        except TransportServerError as exc:
            code = exc.code if isinstance(exc.code, int) else None
            retryable = code is None or code >= 500 or code in (408, 429)
            raise SaleorError(f"Saleor answered HTTP {code}", retryable=retryable, status=code) from exc
        except (TransportError, httpx.HTTPError, OSError) as exc:
            raise SaleorError(f"Saleor could not be reached ({_plain_words(exc)})") from exc
        finally:
            if self._metrics is not None:
                self._metrics.saleor_request_seconds.labels(document_name).observe(time.perf_counter() - started)

    async def fetch_jwks(self, api_url: str) -> str:
        try:
            with self._pools.least_busy() as pool:
                response = await self._pools.clients[pool].get(jwks_url(api_url))
        except httpx.HTTPError as exc:
            refused = _private_address_refusal(exc)
            raise SaleorError(f"JWKS could not be fetched: {refused or type(exc).__name__}") from exc
        if response.status_code != 200:
            raise SaleorError(f"JWKS answered HTTP {response.status_code}", status=response.status_code)
        try:
            keys = response.json()["keys"]
            if not isinstance(keys, list) or not keys:
                raise ValueError
        except (ValueError, KeyError, TypeError) as exc:
            raise SaleorError("JWKS is not a JSON key set", retryable=False) from exc
        return response.text

    async def app_id(self, api_url: str, token: str) -> str:
        return (await self.app_identity(api_url, token)).app_id

    async def app_identity(self, api_url: str, token: str) -> AppIdentity:
        """The app the token belongs to (proves the token), and Saleor's clock at that moment."""
        result, at = await self._execute(api_url, token, "app_id.query.graphql")
        app = (result.data or {}).get("app")
        if not app or not app.get("id"):
            errors = [e if isinstance(e, dict) else e.formatted for e in (result.errors or [])]  # type: ignore[union-attr]
            raise SaleorPermissionDenied("Saleor did not accept the app token" + (" (PermissionDenied)" if _is_permission_denied(errors) else ""))
        return AppIdentity(app_id=str(app["id"]), saleor_time=at)

    async def order_lines(self, api_url: str, token: str, order_id: str) -> LineDetails:
        result = await self.execute(api_url, token, "order_lines.query.graphql", {"id": order_id})
        data = result.data or {}
        app = data.get("app")
        if not app:
            raise SaleorPermissionDenied("Saleor refused the app token: the app was removed or deactivated")
        permissions = {p["code"] for p in app.get("permissions") or [] if p and p.get("code")}
        if "MANAGE_ORDERS" not in permissions:
            raise SaleorPermissionDenied("the app lost the MANAGE_ORDERS permission in Saleor")
        order = data.get("order")
        if order is None:
            raise SaleorError("Saleor does not know this order any more (deleted?)", retryable=False)
        return LineDetails(lines=[line for line in order.get("lines") or [] if line], app_permissions=permissions)

    async def channels(self, api_url: str, token: str) -> list[dict]:
        result = await self.execute(api_url, token, "channels.query.graphql")
        channels = (result.data or {}).get("channels")
        if channels is None:
            raise SaleorPermissionDenied("Saleor refused to list channels with the app token")
        return [c for c in channels if c]

    async def orders_page(
        self, api_url: str, token: str, *, filter: dict, sort_by: dict, first: int = 100, after: str | None = None
    ) -> OrdersPage:
        """One page of the ConfirmedOrders query (not filtered by status: the caller decides what was confirmed)."""
        result, at = await self._execute(
            api_url, token, "confirmed_orders.query.graphql", {"first": first, "after": after, "filter": filter, "sortBy": sort_by}
        )
        connection = (result.data or {}).get("orders")
        if connection is None:
            errors = [e if isinstance(e, dict) else {"message": str(e)} for e in (result.errors or [])]
            if _is_permission_denied(errors):
                raise SaleorPermissionDenied("Saleor refused to list orders (MANAGE_ORDERS missing or token refused)")
            raise SaleorError("Saleor did not list orders: " + "; ".join(str(e.get("message")) for e in errors)[:300])
        page_info = connection.get("pageInfo") or {}
        return OrdersPage(
            orders=[edge["node"] for edge in connection.get("edges") or [] if edge and edge.get("node")],
            has_next_page=bool(page_info.get("hasNextPage")),
            end_cursor=page_info.get("endCursor"),
            total_count=connection.get("totalCount"),
            saleor_time=at,
        )
