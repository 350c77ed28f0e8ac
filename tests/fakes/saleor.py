"""A fake Saleor that talks to the app over real HTTP, the way a real Saleor 3.20 / 3.23 does.

What it reproduces (checked against the captures of a real 3.23.28 in tests/data/saleor/captured/):

- `GET /.well-known/jwks.json`: one RS256 key, serialized byte-for-byte like Saleor's; `rotate_key()` swaps it
  without overlap, as Saleor does.
- Webhook signatures (`sign`): the detached JWS Saleor sends, with or without `crit` (older Saleors omit it).
- `POST /graphql/`: queries are parsed and validated against the REAL schema of the chosen version, so a query
  the real Saleor would reject (HTTP 400) is rejected here too; e.g. `appProblemCreate` on 3.20.
  Root fields are answered from in-memory state: `app`, `order`, `orders` (filters, sorting and Relay cursors
  like Saleor's), `channels`, `shop`, `appProblemCreate`, `appProblemDismiss`, and the catalogue's `products` and
  `attributes` (tests/fakes/catalogue.py). Other root fields validate but
  resolve to null.
- Authentication like Saleor: the 30-char app token acts as the app; an unknown or revoked token is anonymous
  (HTTP 200, `PermissionDenied` on protected fields, data for public ones such as `order(id:)`); a dashboard JWT
  issued by `dashboard_token()` acts as a staff user with the token's (app ∩ user) permissions; a bad or expired
  JWT gives per-field `InvalidSignatureError` / `ExpiredSignatureError` errors.

Where the fake does not know an argument (e.g. `orders(search:)`), it answers a GraphQL error naming it rather
than silently ignoring it, so a test never passes on a filter that was not applied.

Webhook bodies: `webhook_body(order)` sends the order dict as it is; `webhook_body(order, query=...)` runs it
through a subscription query instead, giving exactly Saleor's payload for that query (this reproduces the
captured bodies byte for byte). Stopping the HTTP server costs ~0.2 s: a module-scoped running fake plus
`reset()` before each test keeps big test files fast.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import json
import secrets
import string
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime, timezone
from functools import lru_cache
from typing import Any

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLNamedType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    build_ast_schema,
    get_named_type,
    parse,
    validate,
    value_from_ast_untyped,
)
from graphql.execution import default_field_resolver, execute_sync
from graphql.execution.executor import Executor
from jwt.algorithms import RSAAlgorithm
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.fakes.catalogue import CATALOGUE_COSTS, CATALOGUE_FIELD_GATES, Catalogue
from saleor_app.saleor.manifest import APP_ID
from tests.fakes.server import ThreadedServer
from tests.paths import CAPTURED_DIR, SCHEMA_DIR

__all__ = [
    "CAPTURED_SUBSCRIPTION",
    "DEFAULT_CHANNELS",
    "FakeSaleor",
    "detached_jws",
    "global_id",
    "jwk_thumbprint",
    "public_jwk",
    "saleor_schema",
]

# The rich ORDER_CONFIRMED subscription a real 3.23.28 accepted (validates on 3.21+, not on 3.20).
CAPTURED_SUBSCRIPTION = (CAPTURED_DIR / "subscription.graphql").read_text()

DEFAULT_CHANNELS: list[dict[str, Any]] = [  # as in captured/apptoken-ii-channels.body
    {
        "id": "Q2hhbm5lbDoy",
        "slug": "channel-pln",
        "name": "Channel-PLN",
        "currencyCode": "PLN",
        "isActive": True,
        "defaultCountry": {"code": "PL", "country": "Poland"},
        "metadata": [],
    },
    {
        "id": "Q2hhbm5lbDox",
        "slug": "default-channel",
        "name": "Channel-USD",
        "currencyCode": "USD",
        "isActive": True,
        "defaultCountry": {"code": "US", "country": "United States of America"},
        "metadata": [],
    },
]

PERMISSION_NAMES = {
    "MANAGE_APPS": "Manage apps.",
    "MANAGE_ORDERS": "Manage orders.",
    "MANAGE_ORDERS_IMPORT": "Manage orders import.",
    "MANAGE_CHANNELS": "Manage channels.",
    "MANAGE_USERS": "Manage customers.",
    "MANAGE_PRODUCTS": "Manage products.",
    "HANDLE_PAYMENTS": "Handle payments.",
}

AUTHENTICATED_APP = "AUTHENTICATED_APP"
AUTHENTICATED_STAFF_USER = "AUTHENTICATED_STAFF_USER"
MAX_CONNECTION_LIMIT = 100  # Saleor's `first`/`last` cap
MAX_PROBLEMS_PER_APP = 100


# --- schemas: built once per process and version (parsing the 39k-line SDL costs ~0.6 s) ----------------------

_SCHEMAS: dict[str, GraphQLSchema] = {}
_SCHEMAS_LOCK = threading.Lock()


def saleor_schema(version: str) -> GraphQLSchema:
    """The real Saleor schema of `version` ("3.20" or "3.23"), built from tests/data/saleor/schema/."""
    with _SCHEMAS_LOCK:
        if version not in _SCHEMAS:
            sdl = (SCHEMA_DIR / f"saleor-{version}.graphql").read_text()
            # The SDL is Saleor's own, known valid: skip SDL and schema validation to save time.
            document = parse(sdl, no_location=True)
            _SCHEMAS[version] = build_ast_schema(document, assume_valid_sdl=True, assume_valid=True)
        return _SCHEMAS[version]


# --- keys: RSA 2048 generation costs ~0.1-0.2 s, so keys are pooled per process --------------------------------
# A fake takes keys from the pool and gives them back on stop(): fakes alive at the same time never share a key,
# fakes that follow each other may.

_FREE_KEYS: list[rsa.RSAPrivateKey] = []
_KEYS_LOCK = threading.Lock()


def _take_key() -> rsa.RSAPrivateKey:
    with _KEYS_LOCK:
        if _FREE_KEYS:
            return _FREE_KEYS.pop()
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _give_back_keys(keys: Iterable[rsa.RSAPrivateKey]) -> None:
    with _KEYS_LOCK:
        _FREE_KEYS.extend(keys)


@lru_cache(maxsize=512)
def _parse_and_validate(version: str, query: str) -> tuple[DocumentNode | None, tuple[GraphQLError, ...]]:
    """Parse and validate a query against a version's schema, once per distinct query text (validating against
    the 39k-line schema costs tens of milliseconds, and apps send the same few queries again and again)."""
    try:
        document = parse(query)
    except GraphQLError as exc:
        return None, (exc,)
    return document, tuple(validate(saleor_schema(version), document))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 thumbprint of an RSA JWK: what Saleor (3.15+) uses as the kid."""
    canonical = json.dumps({"e": jwk["e"], "kty": jwk["kty"], "n": jwk["n"]}, separators=(",", ":"), sort_keys=True)
    return _b64url(hashlib.sha256(canonical.encode("ascii")).digest())


def public_jwk(key: rsa.RSAPrivateKey) -> dict[str, Any]:
    """The public JWK as Saleor publishes it: PyJWT's to_jwk ({kty, key_ops, n, e}) plus use, kid and alg."""
    jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    jwk.update({"use": "sig", "kid": jwk_thumbprint(jwk), "alg": "RS256"})
    return jwk


def detached_jws(body: bytes, key: rsa.RSAPrivateKey, kid: str, *, with_crit: bool = True) -> str:
    """`<b64url(header)>..<b64url(RS256 over header_segment + "." + body)>`, the header compact with sorted keys."""
    header: dict[str, Any] = {"alg": "RS256", "b64": False, "kid": kid, "typ": "JWT"}
    if with_crit:
        header["crit"] = ["b64"]
    header_segment = _b64url(json.dumps(header, separators=(",", ":"), sort_keys=True).encode("ascii"))
    signature = key.sign(header_segment.encode("ascii") + b"." + body, padding.PKCS1v15(), hashes.SHA256())
    return f"{header_segment}..{_b64url(signature)}"


def global_id(type_name: str, pk: object) -> str:
    """Saleor's (graphene's) global ID: base64 of "Type:pk", padded."""
    return base64.b64encode(f"{type_name}:{pk}".encode()).decode("ascii")


def _from_global_id(value: str) -> tuple[str, str]:
    try:
        type_name, _, pk = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
    except (ValueError, UnicodeDecodeError):
        raise GraphQLError(f"Couldn't resolve id: {value}.") from None
    if not type_name or not pk:
        raise GraphQLError(f"Couldn't resolve id: {value}.")
    return type_name, pk


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


def _money(amount: float, currency: str) -> dict[str, Any]:
    return {"amount": round(float(amount), 2), "currency": currency}


def _taxed(gross: float, currency: str) -> dict[str, Any]:
    """TaxedMoney with no tax (as in the captures: net == gross, tax 0.0)."""
    return {
        "gross": _money(gross, currency),
        "net": _money(gross, currency),
        "tax": _money(0.0, currency),
        "currency": currency,
    }


# --- errors as Saleor formats them --------------------------------------------------------------------------------


def _error(message: str, code: str = "GraphQLError") -> GraphQLError:
    return GraphQLError(message, extensions={"exception": {"code": code}})


def _permission_denied(*permissions: str) -> GraphQLError:
    return _error(
        f"To access this path, you need one of the following permissions: {', '.join(permissions)}",
        "PermissionDenied",
    )


def _not_implemented(what: str) -> GraphQLError:
    return _error(f"FakeSaleor does not implement {what}", "NotImplementedInFake")


def _format_error(error: GraphQLError) -> dict[str, Any]:
    """Saleor's shape: message, locations, path, extensions.exception.code (the exception's class name)."""
    formatted: dict[str, Any] = {"message": error.message}
    if error.locations:
        formatted["locations"] = [{"line": loc.line, "column": loc.column} for loc in error.locations]
    if error.path is not None:
        formatted["path"] = list(error.path)
    code = ((error.extensions or {}).get("exception") or {}).get("code")
    if code is None:  # an exception raised in a resolver: Saleor reports its class name
        original = error.original_error
        unwrapped = original is not None and not isinstance(original, GraphQLError)
        code = type(original).__name__ if unwrapped else "GraphQLError"
    formatted["extensions"] = {"exception": {"code": code}}
    return formatted


# --- who is asking --------------------------------------------------------------------------------------------


class _Requestor:
    """The authenticated principal of one request, resolved like Saleor's context (lazily for JWT errors)."""

    def __init__(
        self,
        kind: str,
        permissions: Iterable[str] = (),
        claims: dict[str, Any] | None = None,
        jwt_error: tuple[str, str] | None = None,
    ) -> None:
        self.kind = kind  # "app", "staff" or "anonymous"
        self.permissions = set(permissions)
        self.claims = claims or {}
        self._jwt_error = jwt_error  # (message, exception class name) of a JWT that failed verification

    def touch(self) -> None:
        """Saleor decodes a JWT when a resolver first looks at the user: a bad one fails that field only."""
        if self._jwt_error is not None:
            raise _error(*self._jwt_error)

    def require(self, *permissions: str) -> None:
        """Pass if the requestor holds one of `permissions` (Saleor's one_of_permissions_or_auth_filter_required)."""
        self.touch()
        if AUTHENTICATED_APP in permissions and self.kind == "app":
            return
        if AUTHENTICATED_STAFF_USER in permissions and self.kind == "staff":
            return
        if self.permissions.intersection(permissions):
            return
        raise _permission_denied(*permissions)


# Field-level permission gates (type, field) -> permissions, as documented in the schema. Checked only when
# the field is actually selected; everything else resolves from the dicts with graphql-core's default resolver.
_FIELD_GATES: dict[tuple[str, str], tuple[str, ...]] = {
    **{
        ("Channel", field): (AUTHENTICATED_APP, AUTHENTICATED_STAFF_USER)
        for field in ("name", "isActive", "currencyCode", "defaultCountry", "warehouses", "stockSettings")
    },
    ("Channel", "orderSettings"): ("MANAGE_CHANNELS", "MANAGE_ORDERS"),
    ("Order", "privateMetadata"): ("MANAGE_ORDERS",),
    ("Order", "events"): ("MANAGE_ORDERS",),
    ("Order", "transactions"): ("MANAGE_ORDERS", "HANDLE_PAYMENTS"),
    ("Shop", "version"): (AUTHENTICATED_STAFF_USER, AUTHENTICATED_APP),
    ("Shop", "channelCurrencies"): (AUTHENTICATED_STAFF_USER, AUTHENTICATED_APP),
    ("App", "problems"): (AUTHENTICATED_APP, "MANAGE_APPS"),
    **CATALOGUE_FIELD_GATES,  # products, variants, stocks (tests/fakes/catalogue.py)
}


def _field_resolver(source: Any, info: Any, **args: Any) -> Any:
    requestor: _Requestor = info.context
    parent, field = info.parent_type.name, info.field_name
    gate = _FIELD_GATES.get((parent, field))
    if gate is not None:
        requestor.require(*gate)
    elif (parent, field) == ("OrderLine", "variant"):
        requestor.touch()  # visibility of the variant depends on the requestor (see apptoken-iv-f/g captures)
    value = default_field_resolver(source, info, **args)
    if (parent, field) == ("Order", "user") and value is not None:
        requestor.require("MANAGE_USERS", "MANAGE_ORDERS", "HANDLE_PAYMENTS", "HANDLE_TAXES")
    return value


# --- orders: filters, sorting and cursors like Saleor's ---------------------------------------------------------


def _parse_datetime(value: Any) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        raise _error(f"Invalid DateTime: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _parse_date(value: Any) -> date:
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise _error(f"Invalid Date: {value!r}") from None


OrderPredicate = Callable[[Mapping[str, Any]], bool]


def _range(bounds: Mapping[str, Any] | None, parse: Callable[[Any], Any]) -> Callable[[Any], bool]:
    """`{gte, lte}` (both inclusive, either optional) as a test on already parsed values."""
    bounds = bounds or {}
    low = parse(bounds["gte"]) if bounds.get("gte") is not None else None
    high = parse(bounds["lte"]) if bounds.get("lte") is not None else None
    return lambda value: (low is None or value >= low) and (high is None or value <= high)


def _eq_one_of(condition: Mapping[str, Any], convert: Callable[[Any], Any] = lambda v: v) -> Callable[[Any], bool]:
    """`{eq, oneOf}` filter inputs."""
    eq = convert(condition["eq"]) if condition.get("eq") is not None else None
    one_of = [convert(v) for v in condition["oneOf"]] if condition.get("oneOf") is not None else None
    return lambda value: (eq is None or value == eq) and (one_of is None or value in one_of)


def _channel_pk(value: str) -> str:
    """A Channel global ID → its pk; anything else (e.g. a slug) fails like Saleor's global-ID resolution."""
    type_name, pk = _from_global_id(value)
    if type_name != "Channel":
        raise _error(f"Must receive Channel id: {value}.")
    return pk


def _updated_at(order: Mapping[str, Any]) -> datetime:
    return _parse_datetime(order["updatedAt"])


def _created_at(order: Mapping[str, Any]) -> datetime:
    return _parse_datetime(order["created"])


def _order_channel_pk(order: Mapping[str, Any]) -> str:
    return _from_global_id(order["channel"]["id"])[1]


def _all(tests: list[OrderPredicate]) -> OrderPredicate:
    return lambda order: all(test(order) for test in tests)


def _compile_filter(flt: Mapping[str, Any]) -> OrderPredicate:
    """`filter: OrderFilterInput` (3.20 and 3.23) as a predicate. Arguments are checked here, before any order is
    looked at, so a bad or unsupported one fails even on an empty shop."""
    tests: list[OrderPredicate] = []
    for key, value in flt.items():
        if value is None:
            continue
        if key == "updatedAt":
            in_range = _range(value, _parse_datetime)
            tests.append(lambda order, in_range=in_range: in_range(_updated_at(order)))
        elif key == "created":  # DateRangeInput: compares the creation date
            in_range = _range(value, _parse_date)
            tests.append(lambda order, in_range=in_range: in_range(_created_at(order).date()))
        elif key == "channels":
            pks = {_channel_pk(v) for v in value}
            if pks:  # an empty list filters nothing, as in Saleor
                tests.append(lambda order, pks=pks: _order_channel_pk(order) in pks)
        elif key == "status":
            unsupported = {"READY_TO_FULFILL", "READY_TO_CAPTURE"}.intersection(value)
            if unsupported:
                raise _not_implemented(f"orders(filter: {{status: {sorted(unsupported)}}}) (needs payments)")
            if value:
                tests.append(lambda order, statuses=set(value): order["status"] in statuses)
        elif key == "ids":
            tests.append(lambda order, ids=set(value): order["id"] in ids)
        elif key == "numbers":
            tests.append(lambda order, numbers={str(n) for n in value}: str(order["number"]) in numbers)
        elif key == "customer":  # Saleor searches the email and the customer's names
            def matches_customer(order: Mapping[str, Any], needle: str = str(value).lower()) -> bool:
                address = order.get("billingAddress") or {}
                fields = (order.get("userEmail"), address.get("firstName"), address.get("lastName"))
                return needle in " ".join(str(field or "") for field in fields).lower()

            tests.append(matches_customer)
        else:
            raise _not_implemented(f"orders(filter: {{{key}: ...}})")
    return _all(tests)


def _compile_where(where: Mapping[str, Any]) -> OrderPredicate:
    """`where: OrderWhereInput` (3.22+), the part an app needs, as a predicate (checked up front too)."""
    tests: list[OrderPredicate] = []
    for key, value in where.items():
        if value is None:
            continue
        if key == "updatedAt":
            in_range = _range(value, _parse_datetime)
            tests.append(lambda order, in_range=in_range: in_range(_updated_at(order)))
        elif key == "createdAt":
            in_range = _range(value, _parse_datetime)
            tests.append(lambda order, in_range=in_range: in_range(_created_at(order)))
        elif key == "channelId":
            matches = _eq_one_of(value, _channel_pk)
            tests.append(lambda order, matches=matches: matches(_order_channel_pk(order)))
        elif key in ("status", "userEmail"):
            tests.append(lambda order, matches=_eq_one_of(value), key=key: matches(order.get(key)))
        elif key == "number":
            matches, in_range = _eq_one_of(value), _range(value.get("range"), int)
            tests.append(lambda order, m=matches, r=in_range: m(int(order["number"])) and r(int(order["number"])))
        elif key == "ids":
            tests.append(lambda order, ids=set(value): order["id"] in ids)
        elif key == "AND":
            parts = [_compile_where(part) for part in value]
            tests.append(lambda order, parts=parts: all(part(order) for part in parts))
        elif key == "OR":
            parts = [_compile_where(part) for part in value]
            tests.append(lambda order, parts=parts: any(part(order) for part in parts))
        else:
            raise _not_implemented(f"orders(where: {{{key}: ...}})")
    return _all(tests)


# OrderSortField -> the model fields Saleor sorts by (and encodes in cursors), from saleor/graphql/order/sorters.py.
_SORT_FIELDS: dict[str, tuple[str, ...]] = {
    "NUMBER": ("number",),
    "CREATION_DATE": ("created", "status", "number", "pk"),
    "CREATED_AT": ("created", "status", "number"),
    "LAST_MODIFIED_AT": ("updatedAt", "status", "number"),
    "STATUS": ("status", "number"),  # 3.22+
}
_FIELD_PARSERS = {"number": int, "created": _parse_datetime, "updatedAt": _parse_datetime, "status": str, "pk": str}


def _sort_value(order: Mapping[str, Any], field: str) -> Any:
    if field == "pk":
        return _from_global_id(order["id"])[1]
    return _FIELD_PARSERS[field](order[field])


def _encode_cursor(values: Iterable[Any]) -> str:
    """Saleor's to_global_cursor: base64 of a JSON list of the sort values as strings."""
    return base64.b64encode(json.dumps([str(value) for value in values]).encode()).decode("utf-8")


def _decode_cursor(cursor: str, fields: tuple[str, ...]) -> tuple[Any, ...]:
    try:
        values = json.loads(base64.b64decode(cursor))
        if not isinstance(values, list) or len(values) != len(fields):
            raise ValueError
        return tuple(_FIELD_PARSERS[field](value) for field, value in zip(fields, values, strict=True))
    except (ValueError, TypeError, GraphQLError):
        raise _error("Received cursor is invalid.") from None


def _validate_connection_args(field: str, first: Any, last: Any, before: Any, after: Any) -> None:
    """The checks of Saleor's ConnectionField (graphene-django style messages)."""
    if first is None and last is None:
        raise _error(f"You must provide a `first` or `last` value to properly paginate the `{field}` connection.")
    if first is not None and last is not None:
        raise _error("Argument `last` cannot be combined with `first`.")
    if first is not None and first < 0:
        raise _error("Argument `first` must be a non-negative integer.")
    if last is not None and last < 0:
        raise _error("Argument `last` must be a non-negative integer.")
    if first is not None and before:
        raise _error("Argument `first` cannot be combined with `before`.")
    if last is not None and after:
        raise _error("Argument `last` cannot be combined with `after`.")
    for name, value in (("first", first), ("last", last)):
        if value is not None and value > MAX_CONNECTION_LIMIT:
            raise _error(
                f"Requesting {value} records on the `{field}` connection exceeds the `{name}` limit of "
                f"{MAX_CONNECTION_LIMIT} records."
            )


def _paginate(rows: list[dict[str, Any]], sort_by: Mapping[str, Any] | None, args: Mapping[str, Any]) -> dict:
    """Keyset pagination like Saleor's connection_from_queryset_slice."""
    if sort_by:
        field_name = sort_by["field"]
        if field_name not in _SORT_FIELDS:
            raise _not_implemented(f"orders(sortBy: {{field: {field_name}}})")
        fields, descending = _SORT_FIELDS[field_name], sort_by["direction"] == "DESC"
    else:
        fields, descending = ("number",), True  # Order.Meta.ordering = ("-number",)

    def key(order: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(_sort_value(order, field) for field in fields)

    ordered = sorted(rows, key=key, reverse=descending)

    def beyond(order: Mapping[str, Any], cursor: tuple[Any, ...]) -> bool:  # strictly after cursor in sort order
        return key(order) < cursor if descending else key(order) > cursor

    first, last, after, before = args.get("first"), args.get("last"), args.get("after"), args.get("before")
    if after:
        cursor = _decode_cursor(after, fields)
        ordered = [order for order in ordered if beyond(order, cursor)]
    if before:
        cursor = _decode_cursor(before, fields)
        ordered = [order for order in ordered if not beyond(order, cursor) and key(order) != cursor]
    if first is not None:
        page = ordered[:first]
        has_next, has_previous = len(ordered) > first, bool(after)
    else:
        page = ordered[-last:] if last else []
        has_next, has_previous = bool(before), len(ordered) > last
    edges = [{"node": order, "cursor": _encode_cursor(key(order))} for order in page]
    return {
        "edges": edges,
        "pageInfo": {
            "hasNextPage": has_next,
            "hasPreviousPage": has_previous,
            "startCursor": edges[0]["cursor"] if edges else None,
            "endCursor": edges[-1]["cursor"] if edges else None,
        },
        "totalCount": len(rows),
    }


class _SyncExecutor(Executor):
    """Every resolver here is synchronous: skipping graphql-core's awaitable check on each value makes big answers
    (a page of 100 products with their variants) markedly cheaper to execute."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.is_awaitable = lambda value: False  # type: ignore[assignment,method-assign]


# --- query cost, reported in `extensions.cost` like Saleor ------------------------------------------------------

# The part of Saleor's COST_MAP (saleor/graphql/query_cost_map.py) this app's queries can touch. A field's cost is
# multiplier × (complexity + cost of its selections); fields not in the map only pass on their selections' cost.
_COST_MAP: dict[str, dict[str, tuple[int, bool]]] = {  # field -> (complexity, multiplied by first/last)
    "Query": {"app": (1, False), "channel": (1, False), "channels": (1, False), "order": (1, False),
              "orders": (1, True), "me": (1, False), "apps": (1, True)},
    "App": {"extensions": (1, False), "tokens": (1, False), "webhooks": (1, False)},
    "Order": {field: (1, False) for field in (
        "availableCollectionPoints", "availableShippingMethods", "billingAddress", "channel", "deliveryMethod",
        "discounts", "events", "fulfillments", "giftCards", "lines", "payments", "shippingAddress",
        "shippingMethod", "shippingMethods", "transactions", "user", "voucher")} | {"invoices": (10, False)},
    "OrderLine": {"allocations": (1, False), "thumbnail": (1, False), "variant": (1, False)},
    "ProductVariant": {field: (1, False) for field in (
        "attributes", "channelListings", "images", "media", "pricing", "product", "revenue")},
    "Product": {field: (1, False) for field in (
        "attributes", "category", "channelListings", "collections", "defaultVariant", "description", "media",
        "pricing", "productType", "thumbnail", "variants")},
}
for _type, _costs in CATALOGUE_COSTS.items():
    _COST_MAP[_type] = {**_COST_MAP.get(_type, {}), **_costs}


def _query_cost(schema: GraphQLSchema, document: DocumentNode, variables: Mapping[str, Any] | None,
                operation_name: str | None) -> int:
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    operation = next((o for o in operations if operation_name is None or (o.name and o.name.value == operation_name)),
                     None)
    root = operation and schema.get_root_type(operation.operation)
    if operation is None or root is None:
        return 1  # Saleor: "operations that fail before cost can be calculated have a fixed cost of 1"

    variables = variables if isinstance(variables, Mapping) else {}

    def argument(field: FieldNode, name: str) -> Any:
        for arg in field.arguments or ():
            if arg.name.value == name:
                if isinstance(arg.value, VariableNode):
                    return variables.get(arg.value.name.value)
                return value_from_ast_untyped(arg.value)
        return None

    def cost(parent: GraphQLNamedType, selection_set: SelectionSetNode | None) -> int:
        total = 0
        for selection in (selection_set.selections or ()) if selection_set else ():
            if isinstance(selection, FieldNode):
                fields = getattr(parent, "fields", {})
                if selection.name.value not in fields:  # __typename and friends
                    continue
                child = get_named_type(fields[selection.name.value].type)
                children = cost(child, selection.selection_set)
                spec = _COST_MAP.get(parent.name, {}).get(selection.name.value)
                if spec is None:
                    total += children
                    continue
                multiplier = 1
                if spec[1]:
                    for name in ("first", "last"):
                        if isinstance(argument(selection, name), int):
                            multiplier *= argument(selection, name)
                total += multiplier * (spec[0] + children)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                total += cost(schema.get_type(condition.name.value) if condition else parent, selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode) and selection.name.value in fragments:
                fragment = fragments[selection.name.value]
                total += cost(schema.get_type(fragment.type_condition.name.value), fragment.selection_set)
        return total

    return cost(root, operation.selection_set)


# --- the fake ------------------------------------------------------------------------------------------------


class FakeSaleor:
    """A Saleor the app can install into, receive signed webhooks from and query over real HTTP on 127.0.0.1.

    Tests change its state directly (`add_order`, `channels`, `app_permissions`, `revoke_app_token()`, ...) and
    read what happened (`graphql_requests`, `jwks_requests`, `problems`). All of it is guarded by one lock, so the
    server thread and the test never see half an update.
    """

    def __init__(self, schema_version: str = "3.23", saleor_version: str = "3.23.28") -> None:
        self.schema_version = schema_version
        self.saleor_version = saleor_version

        # The installed app, as Saleor knows it.
        self.app_id = "QXBwOjQ="
        self.app_name = "VTmarketing"
        self.app_identifier = APP_ID  # the manifest's `id`, as Saleor stores it
        self.app_token = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(30))
        self._lock = threading.RLock()
        self.reset()
        self._key = _take_key()
        self._retired_keys: list[rsa.RSAPrivateKey] = []
        self._other_key: rsa.RSAPrivateKey | None = None
        self._server = ThreadedServer(self._asgi_app())
        self._started = False
        self._stopped = False

    def reset(self) -> None:
        """Back to a fresh fake's state (same server, app token and key): lets tests share one running fake."""
        with self._lock:
            self.app_permissions: list[str] = ["MANAGE_ORDERS"]
            self._app_token_valid = True
            # Shop data.
            self.channels: list[dict[str, Any]] = copy.deepcopy(DEFAULT_CHANNELS)
            self.orders: dict[str, dict[str, Any]] = {}
            self._order_number = 0
            self.catalogue = Catalogue()  # products, variants, categories, attributes (tests/fakes/catalogue.py)
            # App problems (3.22+): key -> message of the latest problem not dismissed, every record, every call.
            self.problems: dict[str, str] = {}
            self.problem_records: list[dict[str, Any]] = []
            self.problem_calls: list[dict[str, Any]] = []
            # Observation and failure switches.
            self.graphql_requests: list[dict[str, Any]] = []
            self.graphql_status_override: int | None = None
            self.graphql_latency = 0.0  # seconds before each GraphQL answer (to catch a client mid-walk)
            self._hold: _QueryHold | None = None
            self.jwks_requests = 0
            self.jwks_status_override: int | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------

    @property
    def schema(self) -> GraphQLSchema:
        """The real schema of `schema_version` (built on first use, then cached for the process)."""
        return saleor_schema(self.schema_version)

    def start(self) -> FakeSaleor:
        saleor_schema(self.schema_version)  # build it now rather than during the app's first request
        self._server.start()
        self._started = True
        return self

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self._started:
            self._server.stop()
        keys = [self._key, *self._retired_keys] + ([self._other_key] if self._other_key else [])
        _give_back_keys(keys)

    def __enter__(self) -> FakeSaleor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def api_url(self) -> str:
        return f"{self.url}/graphql/"

    @property
    def domain(self) -> str:
        return f"127.0.0.1:{self._server.port}"

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/.well-known/jwks.json"

    @property
    def version_header(self) -> str:
        """major.minor, as in `User-Agent: Saleor/3.23` and `Saleor-Schema-Version`."""
        return ".".join(self.saleor_version.split(".")[:2])

    # -- keys and signatures -----------------------------------------------------------------------------------

    @property
    def kid(self) -> str:
        return jwk_thumbprint(public_jwk(self._key))

    def jwks(self) -> dict[str, Any]:
        return {"keys": [public_jwk(self._key)]}

    def jwks_json(self) -> str:
        """Exactly the bytes (as text) served at /.well-known/jwks.json: json.dumps default separators."""
        return json.dumps(self.jwks())

    def rotate_key(self) -> str:
        """Replace the single signing key (no overlap, like Saleor's RSA_PRIVATE_KEY change); return the new kid."""
        with self._lock:
            self._retired_keys.append(self._key)
            self._key = _take_key()
        return self.kid

    def sign(self, body: bytes, *, with_crit: bool = True) -> str:
        """The Saleor-Signature header for `body`; with_crit=False gives the pre-3.20 header without `crit`."""
        return detached_jws(body, self._key, self.kid, with_crit=with_crit)

    @property
    def signing_key(self) -> rsa.RSAPrivateKey:
        """The current private key, for tests that craft their own tokens or signatures."""
        return self._key

    @property
    def other_key(self) -> rsa.RSAPrivateKey:
        """A key that is never in this fake's JWKS (for forgeries)."""
        with self._lock:
            if self._other_key is None:
                self._other_key = _take_key()
            return self._other_key

    @property
    def other_kid(self) -> str:
        return jwk_thumbprint(public_jwk(self.other_key))

    def other_key_sign(self, body: bytes, *, with_crit: bool = True, kid: str | None = None) -> str:
        """A signature by a key not in the JWKS. The kid defaults to the real one, as a forger would copy it
        (verification then fails as "invalid"); pass kid=fake.other_kid for an "unknown_kid" forgery."""
        return detached_jws(body, self.other_key, self.kid if kid is None else kid, with_crit=with_crit)

    def dashboard_token(
        self,
        *,
        user_permissions: Iterable[str] = ("MANAGE_APPS", "MANAGE_ORDERS"),
        exp_in: float = 300,
        app: str | None = None,
        iss: str | None = None,
        type_: str = "thirdparty",
        key: rsa.RSAPrivateKey | None = None,
        kid: str | None = None,
        iat: int | None = None,
        email: str = "admin@example.com",
    ) -> str:
        """An `App.accessToken` like captured/dashboard-token.json: RS256, header {alg, kid, typ}, same claims.

        `key` signs instead of the current key (e.g. `fake.other_key` for a forgery); the kid stays the
        published one unless `kid` is given. `exp_in` may be negative for an expired token.
        """
        user_permissions = list(user_permissions)
        issued_at = int(time.time()) if iat is None else iat
        claims = {  # insertion order = Saleor's claim order
            "iat": issued_at,
            "owner": "saleor",
            "iss": self.api_url if iss is None else iss,
            "exp": int(issued_at + exp_in),
            "token": "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(12)),
            "email": email,
            "type": type_,
            "user_id": "VXNlcjoyMQ==",
            "is_staff": True,
            "app": self.app_id if app is None else app,
            "permissions": [p for p in self.app_permissions if p in user_permissions],
            "user_permissions": user_permissions,
        }
        signing_key = self._key if key is None else key
        return jwt.encode(claims, signing_key, algorithm="RS256", headers={"kid": self.kid if kid is None else kid})

    # -- what Saleor sends to the app ------------------------------------------------------------------------

    def webhook_body(
        self,
        order: Mapping[str, Any],
        *,
        typename: str = "OrderConfirmed",
        issued_at: str | None = None,
        query: str | None = None,
    ) -> bytes:
        """The body of an async webhook for `order`, serialized exactly like Saleor (json.dumps defaults, ASCII).

        Without `query`, the order dict is sent as it is: `{"__typename", "issuedAt", "version", "order"}`.
        With a subscription `query` (e.g. CAPTURED_SUBSCRIPTION or the app's manifest query), the event is run
        through it against the real schema as the app, so the body has exactly the selected fields in selection
        order, as Saleor's payload would (`event { ... }` → the fields at the top level; a top-level field such
        as `orderConfirmed` → `{"data": {...}}`).
        """
        event = {
            "__typename": typename,
            "issuedAt": issued_at or _now_iso(),
            "version": self.saleor_version,
            "order": order,
        }
        if query is None:
            return json.dumps(event).encode("ascii")
        return json.dumps(self._project_event(event, query)).encode("ascii")

    def _project_event(self, event: dict[str, Any], query: str) -> dict[str, Any]:
        document, errors = _parse_and_validate(self.schema_version, query)
        if document is None or errors:
            raise ValueError(f"subscription does not validate on Saleor {self.schema_version}: {errors[0].message}")
        top_level_field = event["__typename"][0].lower() + event["__typename"][1:]  # OrderConfirmed -> orderConfirmed
        app = _Requestor("app", self.app_permissions)
        with self._lock:
            result = execute_sync(
                self.schema,
                document,
                root_value={"event": event, top_level_field: event},
                context_value=app,
                field_resolver=_field_resolver,
            )
        data = result.data or {}
        payload: dict[str, Any] = dict(data["event"] or {}) if "event" in data else {"data": data}
        if result.errors:
            payload["errors"] = [_format_error(error) for error in result.errors]
        return payload

    def webhook_headers(self, body: bytes, event: str = "order_confirmed", *, signature: str | None = None) -> dict:
        """The headers of captured/webhook-order-a.json, signed for `body` (or with the given `signature`).
        Host and Content-Length are left to the HTTP client."""
        signature = self.sign(body) if signature is None else signature
        return {
            "User-Agent": f"Saleor/{self.version_header}",
            "Accept-Encoding": "gzip, deflate",
            "Accept": "*/*",
            "Content-Type": "application/json",
            "X-Saleor-Event": event,
            "X-Saleor-Domain": self.domain,
            "X-Saleor-Signature": signature,
            "Saleor-Event": event,
            "Saleor-Domain": self.domain,
            "Saleor-Signature": signature,
            "Saleor-Api-Url": self.api_url,
            "traceparent": f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01",
        }

    def register_headers(self) -> dict:
        """The headers of the token POST to tokenTargetUrl (captured/register-request.json): no signature."""
        return {
            "User-Agent": f"Saleor/{self.version_header}",
            "Accept-Encoding": "gzip, deflate",
            "Accept": "*/*",
            "Content-Type": "application/json",
            "X-Saleor-Domain": self.domain,
            "Saleor-Domain": self.domain,
            "Saleor-Api-Url": self.api_url,
            "Saleor-Schema-Version": self.version_header,
        }

    def register_body(self) -> bytes:
        """`{"auth_token": "<30 chars>"}`, exactly as captured/register-request.body."""
        return json.dumps({"auth_token": self.app_token}).encode("ascii")

    def manifest_headers(self) -> dict:
        """The headers of the manifest GET during appInstall (captured/manifest-request.json)."""
        return {
            "User-Agent": f"Saleor/{self.version_header}",
            "Accept-Encoding": "gzip, deflate",
            "Accept": "*/*",
            "Saleor-Schema-Version": self.version_header,
        }

    # -- shop state ------------------------------------------------------------------------------------------

    def revoke_app_token(self) -> None:
        """The token dies (appDelete, appTokenDelete, appDeactivate): it now authenticates as nobody."""
        with self._lock:
            self._app_token_valid = False

    def channel(self, slug: str) -> dict[str, Any]:
        for channel in self.channels:
            if channel["slug"] == slug:
                return channel
        raise KeyError(f"no channel {slug!r} in this fake (channels: {[c['slug'] for c in self.channels]})")

    def make_line(
        self,
        *,
        sku: str | None = "118223581",
        quantity: int = 1,
        unit_price: float = 45.0,
        currency: str = "USD",
        product_name: str = "Paul's Balance 420",
        variant_name: str = "39",
        product_slug: str | None = None,
        variant_external_reference: str | None = None,
        product_external_reference: str | None = None,
        category: str = "Sneakers",
    ) -> dict[str, Any]:
        """One order line shaped like those of captured/webhook-order-a.body (plus the other non-null fields).
        Variant/product ids are stable per sku/product name; a sku-less variant is named by its id, as in Saleor."""
        variant_id = global_id("ProductVariant", zlib.crc32(f"{sku}/{product_name}".encode()) % 100000)
        product_id = global_id("Product", zlib.crc32(product_name.encode()) % 100000)
        if sku is None and variant_name == "39":
            variant_name = variant_id
        return {
            "id": global_id("OrderLine", uuid.uuid4()),
            "quantity": quantity,
            "productName": product_name,
            "variantName": variant_name,
            "productSku": sku,
            "productVariantId": variant_id,
            "unitPrice": _taxed(unit_price, currency),
            "totalPrice": _taxed(unit_price * quantity, currency),
            "variant": {
                "id": variant_id,
                "sku": sku,
                "externalReference": variant_external_reference,
                "product": {
                    "id": product_id,
                    "name": product_name,
                    "slug": product_slug or product_name.lower().replace(" ", "-").replace("'", ""),
                    "externalReference": product_external_reference,
                    "category": {"id": global_id("Category", zlib.crc32(category.encode()) % 1000), "name": category},
                    "metadata": [],
                },
                "name": variant_name,
                "metadata": [],
            },
            "undiscountedUnitPrice": _taxed(unit_price, currency),
            "undiscountedTotalPrice": _taxed(unit_price * quantity, currency),
            "unitDiscount": _money(0.0, currency),
            "quantityFulfilled": 0,
            "isShippingRequired": True,
            "metadata": [],
            "privateMetadata": [],
        }

    def make_order(
        self,
        *,
        lines: Iterable[Mapping[str, Any]] | None = None,
        channel_slug: str = "default-channel",
        shipping_amount: float = 0.0,
        **overrides: Any,
    ) -> dict[str, Any]:
        """A full order shaped like captured/webhook-order-a.body's `order` (plus `updatedAt`), not yet stored.

        `lines`: full line dicts (from make_line) or make_line keyword dicts, e.g. [{"sku": "A", "quantity": 2}].
        Totals follow from the lines and `shipping_amount`. `overrides` replace top-level keys (camelCase, e.g.
        `status="CANCELED"`, `updatedAt="2026-01-01T00:00:00+00:00"`, `userEmail=...`).
        """
        channel = self.channel(channel_slug)
        currency = channel["currencyCode"]
        if lines is None:
            lines = [
                {"sku": "118223581", "quantity": 1, "unit_price": 45.0,
                 "variant_external_reference": "ERP-VAR-118223581", "product_external_reference": "ERP-PROD-PB420"},
                {"sku": "328223580", "quantity": 2, "unit_price": 18.0, "product_name": "Monospace Tee",
                 "variant_name": "S", "category": "T-shirts"},
            ]
        full_lines = [
            copy.deepcopy(dict(line)) if "id" in line else self.make_line(currency=currency, **line) for line in lines
        ]
        subtotal = round(sum(line["totalPrice"]["gross"]["amount"] for line in full_lines), 2)
        total = round(subtotal + shipping_amount, 2)
        with self._lock:
            self._order_number += 1
            number = self._order_number
        now = _now_iso()
        address = {
            "firstName": "Ada",
            "lastName": "Buyer",
            "phone": "+16502530000",
            "city": "MOUNTAIN VIEW",
            "postalCode": "94043",
            "countryArea": "CA",
            "country": {"code": "US", "country": "United States of America"},
            "id": global_id("Address", 1000 + number),
            "companyName": "",
            "streetAddress1": "1600 Amphitheatre Pkwy",
            "streetAddress2": "",
            "cityArea": "",
        }
        order: dict[str, Any] = {
            "id": global_id("Order", uuid.uuid4()),
            "number": str(number),
            "created": now,
            "status": "UNFULFILLED",
            "origin": "CHECKOUT",
            "languageCodeEnum": "EN",
            "userEmail": "ada.buyer@example.com",
            "user": None,
            "billingAddress": address,
            "shippingAddress": copy.deepcopy(address),
            "channel": {key: channel[key] for key in ("id", "slug", "currencyCode", "name", "isActive")},
            "total": _taxed(total, currency),
            "subtotal": _taxed(subtotal, currency),
            "undiscountedTotal": _taxed(total, currency),
            "shippingPrice": _taxed(shipping_amount, currency),
            "voucherCode": None,
            "voucher": None,
            "discounts": [],
            "lines": full_lines,
            "metadata": [],
            "updatedAt": now,
            "privateMetadata": [],
            "externalReference": None,
            "customerNote": "",
            "isPaid": True,
            "paymentStatus": "FULLY_CHARGED",
            "authorizeStatus": "FULL",
            "chargeStatus": "FULL",
        }
        order.update(overrides)
        return order

    def add_order(self, order: dict[str, Any]) -> dict[str, Any]:
        """Store `order` (by reference) so GraphQL returns it; return it."""
        with self._lock:
            self.orders[order["id"]] = order
        return order

    def app_object(self) -> dict[str, Any]:
        """The `App` as GraphQL serves it (a fresh dict; permissions follow `app_permissions`)."""
        return {
            "id": self.app_id,
            "identifier": self.app_identifier,
            "name": self.app_name,
            "isActive": True,
            "type": "THIRDPARTY",
            "version": "0.1.0",
            "permissions": [{"code": code, "name": PERMISSION_NAMES.get(code, code)} for code in self.app_permissions],
            "metadata": [],
            "privateMetadata": [],
            "extensions": [],
            # Only staff users get an access token, minted for themselves.
            "accessToken": lambda info: (
                self.dashboard_token(user_permissions=info.context.claims.get("user_permissions", ()))
                if info.context.kind == "staff"
                else None
            ),
            "problems": lambda info, limit=None: [
                record for record in reversed(self.problem_records) if record["dismissed"] is None
            ][: limit or MAX_PROBLEMS_PER_APP],
        }

    # -- HTTP ------------------------------------------------------------------------------------------------

    def _asgi_app(self) -> Starlette:
        routes = [
            Route("/.well-known/jwks.json", self._jwks_endpoint, methods=["GET"]),
            Route("/graphql/", self._graphql_endpoint, methods=["POST"]),
        ]
        app = Starlette(routes=routes)
        app.router.redirect_slashes = False  # Saleor's path is exactly /graphql/
        return app

    async def _jwks_endpoint(self, request: Request) -> Response:
        with self._lock:
            self.jwks_requests += 1
            if self.jwks_status_override is not None:
                return Response("Service Unavailable", status_code=self.jwks_status_override)
            return Response(self.jwks_json(), media_type="application/json")

    def hold_queries(self, needle: str, *, after: int, timeout: float = 120.0) -> "_QueryHold":
        """Answer the first `after` GraphQL requests whose body contains `needle`, then hold each further one until
        `release` of the returned hold is set (or `timeout` passed): a client caught mid-walk, on any machine."""
        hold = _QueryHold(needle.encode(), after, timeout)
        with self._lock:
            self._hold = hold
        return hold

    async def _graphql_endpoint(self, request: Request) -> Response:
        raw = await request.body()
        if self.graphql_latency:
            await asyncio.sleep(self.graphql_latency)
        hold = self._hold
        if hold is not None and hold.needle in raw:
            await hold.pass_or_wait(self._lock)
        token = _bearer_token(request.headers)
        with self._lock:
            record: dict[str, Any] = {"query": None, "variables": None, "operationName": None, "token": token,
                                      "authorization": request.headers.get("authorization")}
            self.graphql_requests.append(record)
            if self.graphql_status_override is not None:
                return Response(
                    f"<html><body><h1>{self.graphql_status_override}</h1></body></html>",
                    status_code=self.graphql_status_override,
                    media_type="text/html",
                )
            try:
                data = json.loads(raw)
            except ValueError:
                return _json_response({"errors": [{"message": "Unable to parse query."}]}, 400)
            if isinstance(data, list):  # query batching
                answers = [self._answer(entry, token, record) for entry in data]
                return _json_response([body for body, _ in answers], max((s for _, s in answers), default=200))
            body, status = self._answer(data, token, record)
            return _json_response(body, status)

    def _requestor(self, token: str | None) -> _Requestor:
        """Saleor's rules: a 30-char token is an app token (unknown → anonymous); a JWT whose unverified `owner` is
        "saleor" must verify (errors surface per field); anything else is ignored (anonymous)."""
        if token is None:
            return _Requestor("anonymous")
        if len(token) == 30:
            if token == self.app_token and self._app_token_valid:
                return _Requestor("app", self.app_permissions)
            return _Requestor("anonymous")
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            return _Requestor("anonymous")
        if unverified.get("owner") != "saleor":  # is_saleor_token(): other tokens belong to auth plugins
            return _Requestor("anonymous")
        try:
            claims = jwt.decode(token, self._key.public_key(), algorithms=["RS256"], options={"verify_aud": False})
        except jwt.PyJWTError as exc:
            return _Requestor("anonymous", jwt_error=(str(exc), type(exc).__name__))
        # A thirdparty token acts with the app's permissions ∩ the user's; a user's own token with all of theirs.
        permissions = claims.get("permissions" if claims.get("type") == "thirdparty" else "user_permissions")
        return _Requestor("staff" if claims.get("is_staff") else "anonymous", permissions or [], claims)

    def _answer(self, data: Any, token: str | None, record: dict[str, Any]) -> tuple[dict[str, Any], int]:
        if not isinstance(data, dict):
            return {"errors": [_format_error(_error("Must provide a query string."))]}, 400
        query, variables, operation_name = data.get("query"), data.get("variables"), data.get("operationName")
        record.update(query=query, variables=variables, operationName=operation_name)
        if not query or not isinstance(query, str):
            return {"errors": [_format_error(_error("Must provide a query string."))]}, 400
        document, validation_errors = _parse_and_validate(self.schema_version, query)
        if document is None:  # syntax error
            return {"errors": [_format_error(e) for e in validation_errors]}, 400
        if validation_errors:
            # Saleor answers queries that do not validate against its schema with HTTP 400 and no data.
            cost = {"cost": {"requestedQueryCost": 1, "maximumAvailable": 50000}}
            return {"errors": [_format_error(e) for e in validation_errors], "extensions": cost}, 400
        requested = _query_cost(self.schema, document, variables, operation_name)
        cost = {"cost": {"requestedQueryCost": requested, "maximumAvailable": 50000}}
        result = execute_sync(
            self.schema,
            document,
            root_value=_Root(self),
            context_value=self._requestor(token),
            variable_values=variables,
            operation_name=operation_name,
            field_resolver=_field_resolver,
            executor_class=_SyncExecutor,
        )
        if result.data is None and result.errors and all(error.path is None for error in result.errors):
            # Bad variables or operation name: a request error, which Saleor answers with HTTP 400 and no data.
            return {"errors": [_format_error(e) for e in result.errors], "extensions": cost}, 400
        body: dict[str, Any] = {}
        if result.errors:
            body["errors"] = [_format_error(e) for e in result.errors]
        body["data"] = result.data
        body["extensions"] = cost
        return body, 200

    # -- app problems (3.22+) ------------------------------------------------------------------------------

    def _refresh_problems(self) -> None:
        self.problems = {r["key"]: r["message"] for r in self.problem_records if r["dismissed"] is None}

    def _problem_create(self, requestor: _Requestor, data: Mapping[str, Any]) -> dict[str, Any]:
        requestor.require(AUTHENTICATED_APP)
        self.problem_calls.append({"mutation": "appProblemCreate", "input": copy.deepcopy(dict(data))})
        message, key = data["message"], data["key"]
        threshold, period = data.get("criticalThreshold"), data.get("aggregationPeriod")
        period = 60 if period is None else period
        if len(message) < 3:
            return {"appProblem": None, "errors": [{"field": "message", "code": "INVALID",
                                                    "message": "Message must be at least 3 characters."}]}
        if not 3 <= len(key) <= 128:
            return {"appProblem": None, "errors": [{"field": "key", "code": "INVALID",
                                                    "message": "Key must be between 3 and 128 characters."}]}
        if len(message) > 2048:
            message = message[:2045] + "..."
        now = datetime.now(timezone.utc)
        candidates = [r for r in self.problem_records if r["key"] == key and r["dismissed"] is None]
        existing = max(candidates, key=lambda r: r["updatedAt"], default=None)
        if existing and period > 0 and (now - _parse_datetime(existing["updatedAt"])).total_seconds() <= period * 60:
            existing["count"] += 1
            existing.update(message=message, updatedAt=now.isoformat(),
                            isCritical=bool(threshold and existing["count"] >= threshold))
            problem = existing
        else:
            if len(self.problem_records) >= MAX_PROBLEMS_PER_APP:  # Saleor drops the oldest
                self.problem_records.pop(0)
            problem = {
                "id": global_id("AppProblem", len(self.problem_calls)),
                "createdAt": now.isoformat(),
                "updatedAt": now.isoformat(),
                "count": 1,
                "isCritical": bool(threshold and threshold <= 1),
                "dismissed": None,
                "message": message,
                "key": key,
            }
            self.problem_records.append(problem)
        self._refresh_problems()
        return {"appProblem": problem, "errors": []}

    def _problem_dismiss(self, requestor: _Requestor, data: Mapping[str, Any]) -> dict[str, Any]:
        requestor.require("MANAGE_APPS", AUTHENTICATED_APP)
        self.problem_calls.append({"mutation": "appProblemDismiss", "input": copy.deepcopy(dict(data))})
        given = [name for name in ("byApp", "byStaffWithIds", "byStaffWithKeys") if data.get(name) is not None]
        if len(given) != 1:
            return {"errors": [{"field": None, "code": "INVALID",
                                "message": "Exactly one of byApp, byStaffWithIds, byStaffWithKeys is required."}]}
        how, spec = given[0], data[given[0]]
        if (how == "byApp") != (requestor.kind == "app"):
            return {"errors": [{"field": how, "code": "INVALID",
                                "message": "byApp is for apps; byStaffWith* are for staff users."}]}
        ids, keys = spec.get("ids"), spec.get("keys")
        if how == "byApp" and (ids is None) == (keys is None):
            return {"errors": [{"field": "byApp", "code": "INVALID", "message": "Provide either ids or keys."}]}
        if how == "byStaffWithKeys" and spec["app"] != self.app_id:
            return {"errors": [{"field": "app", "code": "NOT_FOUND", "message": "App not found."}]}
        if len(ids or keys or []) > 100:
            return {"errors": [{"field": "ids" if ids else "keys", "code": "INVALID", "message": "At most 100."}]}
        by = {"by": "APP" if requestor.kind == "app" else "USER", "user": None,
              "userEmail": requestor.claims.get("email")}
        for record in self.problem_records:
            if record["dismissed"] is None and (record["id"] in (ids or ()) or record["key"] in (keys or ())):
                record["dismissed"] = dict(by)
        self._refresh_problems()
        return {"errors": []}


class _Root:
    """Root Query/Mutation resolvers. graphql-core's default resolver calls these with (info, **arguments)."""

    def __init__(self, fake: FakeSaleor) -> None:
        self._fake = fake

    def app(self, info: Any, id: str | None = None) -> dict[str, Any] | None:  # noqa: A002 - GraphQL argument name
        requestor: _Requestor = info.context
        requestor.require(AUTHENTICATED_STAFF_USER, AUTHENTICATED_APP)
        if id is None:
            if requestor.kind == "app":
                return self._fake.app_object()
            raise _error("At least one of arguments is required: 'id'.")
        return self._fake.app_object() if id == self._fake.app_id else None

    def order(self, info: Any, id: str | None = None, externalReference: str | None = None) -> Any:  # noqa: A002,N803
        if externalReference is not None:
            info.context.require("MANAGE_ORDERS")
            return next((o for o in self._fake.orders.values() if o.get("externalReference") == externalReference),
                        None)
        if id is None:
            raise _error("At least one of arguments is required: 'id', 'external_reference'.")
        type_name, _ = _from_global_id(id)
        # Readable anonymously, like the real one (captured/apptoken-iv-invalid-token.*).
        return self._fake.orders.get(id) if type_name == "Order" else None

    def orders(self, info: Any, **args: Any) -> dict[str, Any]:
        info.context.require("MANAGE_ORDERS")
        flt, where, sort_by = args.get("filter"), args.get("where"), args.get("sortBy")
        if flt is not None and where is not None:
            raise _error("Only one filtering argument (filter or where) can be specified.")
        if args.get("search"):
            raise _not_implemented("orders(search:)")
        _validate_connection_args("orders", args.get("first"), args.get("last"), args.get("before"), args.get("after"))
        rows = [order for order in self._fake.orders.values() if order.get("status") != "DRAFT"]  # non_draft()
        if args.get("channel"):
            rows = [order for order in rows if order["channel"]["slug"] == args["channel"]]
        if flt is not None:
            matches = _compile_filter(flt)
            rows = [order for order in rows if matches(order)]
        if where is not None:
            matches = _compile_where(where)
            rows = [order for order in rows if matches(order)]
        return _paginate(rows, sort_by, args)

    def channels(self, info: Any) -> list[dict[str, Any]]:
        info.context.require(AUTHENTICATED_APP, AUTHENTICATED_STAFF_USER)
        return self._fake.channels

    def products(self, info: Any, **args: Any) -> dict[str, Any]:
        return self._fake.catalogue.resolve_products(info.context, args, self._fake.channels)

    def attributes(self, info: Any, **args: Any) -> dict[str, Any]:
        return self._fake.catalogue.resolve_attributes(info.context, args)

    def shop(self, info: Any) -> dict[str, Any]:
        fake = self._fake
        return {
            "id": "U2hvcDox",
            "name": "Saleor e-commerce",
            "version": fake.saleor_version,
            "domain": {"host": fake.domain.split(":")[0], "sslEnabled": False, "url": fake.url},
            "channelCurrencies": sorted({channel["currencyCode"] for channel in fake.channels}),
            "metadata": [],
        }

    def appProblemCreate(self, info: Any, input: Mapping[str, Any]) -> dict[str, Any]:  # noqa: A002,N802
        return self._fake._problem_create(info.context, input)

    def appProblemDismiss(self, info: Any, input: Mapping[str, Any]) -> dict[str, Any]:  # noqa: A002,N802
        return self._fake._problem_dismiss(info.context, input)


class _QueryHold:
    """See FakeSaleor.hold_queries. `waiting`: how many requests are held right now."""

    def __init__(self, needle: bytes, after: int, timeout: float) -> None:
        self.needle, self.after, self.timeout = needle, after, timeout
        self.release = threading.Event()
        self.seen = 0
        self.waiting = 0

    async def pass_or_wait(self, lock: threading.RLock) -> None:
        with lock:
            self.seen += 1
            if self.seen <= self.after:
                return
            self.waiting += 1
        deadline = time.monotonic() + self.timeout
        try:
            while not self.release.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
        finally:
            with lock:
                self.waiting -= 1


def _bearer_token(headers: Mapping[str, str]) -> str | None:
    """`Authorization: Bearer <t>` (or `JWT <t>`), or `Authorization-Bearer: <t>`, as Saleor accepts them."""
    authorization = headers.get("authorization")
    if authorization:
        prefix, _, value = authorization.partition(" ")
        if prefix.lower() in ("bearer", "jwt") and value.strip():
            return value.strip()
    value = headers.get("authorization-bearer")
    return value.strip() if value and value.strip() else None


def _json_response(body: Any, status: int) -> Response:
    # Saleor answers compact JSON (captured/apptoken-i-app.body).
    return Response(json.dumps(body, separators=(",", ":")), status_code=status, media_type="application/json")
