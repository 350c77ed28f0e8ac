"""The settings API (`POST /graphql`) under hostile input: dashboard tokens for another app or another Saleor,
expired, `alg: none`, HS256 keyed with the public key, forged, garbage, random claims; and, with a valid token,
arbitrary GraphQL documents and variables generated from the schema itself, and arbitrary request bodies.

Every answer is < 500: a refused token is a 401/403 JSON error with a human message, a bad document is answered
with GraphQL errors (or a 4xx JSON error), and no resolver fails internally. No answer ever contains the stored
API key, the app's Saleor token or the dashboard JWT, and the database holds only this installation's changes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    get_named_type,
    is_leaf_type,
)
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from saleor_app.ratelimit import RateLimit
from saleor_app.settings.schema import schema as settings_schema
from saleor_app.settings.service import ChannelSettingsService
from saleor_app.storage.models import ChannelSettings, Delivery, Installation
from saleor_app.worker_runtime import build_worker
from tests.conftest import installation_id
from tests.fakes.saleor import FakeSaleor
from tests.hostile import FUZZ, assert_clear_answer

SCHEMA = settings_schema._schema  # graphql-core's view of the strawberry schema: what the page can ask
PROBE = "{ installation { saleorApiUrl status } viewer { email } }"
INTERNAL_ERROR = "Unexpected error"  # the masked message of an exception a resolver did not mean to raise


@dataclass
class Seeded:
    saleor: FakeSaleor
    api_key: str
    token: str

    def secrets(self) -> tuple[str, ...]:
        return self.api_key, self.saleor.app_token, self.token, self.token.rsplit(".", 1)[-1]


@pytest.fixture
async def seeded(running_app, installed, fake_vtm) -> Seeded:  # type: ignore[no-untyped-def]
    """An installation with a stored key, a delivered order and a failed one (attempts with excerpts)."""
    api_key = "vtm-secret-" + hashlib.sha256(installed.app_token.encode()).hexdigest()[:24]
    inst = await installation_id(running_app, installed)
    await ChannelSettingsService(running_app.ctx).update(inst, "default-channel", api_key=api_key)
    for _ in range(2):
        order = installed.add_order(installed.make_order())
        assert (await running_app.send_webhook(installed, order)).status_code == 200
    fake_vtm.fail_next(1, status=400)
    await build_worker(running_app.ctx).run_until_idle()
    return Seeded(installed, api_key, installed.dashboard_token(exp_in=3600))


async def post(running_app, body: bytes | dict, *, token: str | None, api_url: str | None) -> httpx.Response:  # type: ignore[no-untyped-def]
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization-Bearer"] = token
    if api_url is not None:
        headers["Saleor-Api-Url"] = api_url
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await running_app.client.post("/graphql", content=content, headers=headers)


def assert_keeps_secrets(response: httpx.Response, *secrets: str) -> None:
    """No secret in the raw text nor in any decoded string of a JSON answer (escapes must not hide one)."""
    assert_clear_answer(response, *secrets)
    try:
        decoded = json.dumps(response.json(), ensure_ascii=False)
    except ValueError:
        return
    for secret in secrets:
        if secret:
            assert secret not in decoded, f"the answer contains a secret ({secret[:4]}…)"


async def snapshot(running_app) -> tuple:  # type: ignore[no-untyped-def]
    async with running_app.ctx.db.session() as session:
        installations = [(i.id, i.saleor_api_url, i.app_id, i.token_encrypted, i.jwks, i.status)
                         for i in await session.scalars(select(Installation).order_by(Installation.id))]
        channel_owners = set(await session.scalars(select(ChannelSettings.installation_id)))
        deliveries = await session.scalar(select(func.count()).select_from(Delivery))
    return installations, channel_owners, deliveries


async def stored_keys(running_app) -> list[str]:  # type: ignore[no-untyped-def]
    async with running_app.ctx.db.session() as session:
        encrypted = [k for k in await session.scalars(select(ChannelSettings.api_key_encrypted)) if k]
    return [running_app.ctx.secrets.decrypt(k) for k in encrypted]


# --- tokens -----------------------------------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _compact(header: dict, claims: Any, signature: bytes) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}.{_b64(signature)}"


def _rs256(header: dict, claims: Any, saleor: FakeSaleor) -> str:
    """Signed by hand: PyJWT refuses to even encode some of the headers tried here (a non-string kid)."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = saleor.signing_key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64(signature)}"


json_scalars = st.none() | st.booleans() | st.integers(min_value=-(2**64), max_value=2**64) | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(json_scalars, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids, max_size=3), max_leaves=8)


@dataclass
class TokenCase:
    token: str
    expected: int  # 200 accepted, 403 valid but not allowed, 401 refused
    why: str


@st.composite
def token_cases(draw: st.DrawFn, saleor: FakeSaleor, stranger: FakeSaleor) -> TokenCase:
    now = int(time.time())
    claims: dict[str, Any] = jwt.decode(saleor.dashboard_token(exp_in=3600), options={"verify_signature": False})
    kind = draw(st.sampled_from(["claims", "claims", "claims", "header", "alg-none", "hs256-public-key",
                                 "foreign-key", "other-saleor", "garbage", "huge"]))
    if kind == "garbage":
        token = draw(st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=200)
                     | st.builds(lambda parts: ".".join(parts), st.lists(st.text(alphabet="abcXYZ019-_=", max_size=40), min_size=3, max_size=3)))
        return TokenCase(token, 401, kind)
    if kind == "huge":
        return TokenCase(saleor.dashboard_token() + "A" * 20_000, 401, kind)

    valid = True
    if kind == "claims":
        for name in ("exp", "app", "iss", "type", "user_permissions"):
            change = draw(st.sampled_from(["keep", "keep", "keep", "drop", "wrong", "random"]))
            if change == "keep":
                continue
            valid = False
            if change == "drop":
                del claims[name]
            elif change == "random":
                claims[name] = draw(json_values)
            else:
                claims[name] = {
                    "exp": draw(st.sampled_from([now - 1, now - 86400, 0, "9999999999", True, None])),
                    "app": draw(st.sampled_from(["QXBwOjk5OQ==", "", saleor.app_id.lower(), None])),
                    "iss": draw(st.sampled_from([stranger.api_url, saleor.api_url.rstrip("/"), saleor.url, ""])),
                    "type": draw(st.sampled_from(["access", "refresh", "THIRDPARTY", ""])),
                    "user_permissions": draw(st.sampled_from([[], ["MANAGE_ORDERS"], "MANAGE_APPS", None, ["manage_apps"]])),
                }[name]
        if draw(st.booleans()):
            claims[f"x_{draw(st.text(max_size=6))}"] = draw(json_values)
        if not valid and "exp" in claims and isinstance(claims["exp"], (int, float)) and not isinstance(claims["exp"], bool) \
                and 0 <= claims["exp"] - now <= 60:
            claims["exp"] = now + 3600  # never race the clock: a random exp is either clearly past or clearly future
        forbidden_only = (
            not valid and "exp" in claims and isinstance(claims["exp"], (int, float)) and not isinstance(claims["exp"], bool)
            and claims["exp"] > now + 60 and claims.get("app") == saleor.app_id and claims.get("iss") == saleor.api_url
            and claims.get("type") == "thirdparty" and isinstance(claims.get("user_permissions"), list)
        )
        token = _rs256({"alg": "RS256", "kid": saleor.kid, "typ": "JWT"}, claims, saleor)
        if valid:
            return TokenCase(token, 200, "valid")
        if forbidden_only:
            return TokenCase(token, 200 if "MANAGE_APPS" in claims["user_permissions"] else 403, "claims")
        return TokenCase(token, 401, "claims")
    if kind == "header":
        header: dict[str, Any] = {"alg": "RS256", "typ": "JWT"}
        kid = draw(st.sampled_from(["ours", "absent", "other", "int", "list", "empty"]))
        header.update({"ours": {"kid": saleor.kid}, "absent": {}, "other": {"kid": saleor.other_kid}, "int": {"kid": 7},
                       "list": {"kid": [saleor.kid]}, "empty": {"kid": ""}}[kid])
        if draw(st.booleans()):  # key locations an attacker controls: must be ignored
            header[draw(st.sampled_from(["jku", "x5u", "jwk"]))] = draw(st.sampled_from(
                ["http://127.0.0.1:9/jwks.json", {"kty": "oct", "k": "c2VjcmV0"}]))
        return TokenCase(_rs256(header, claims, saleor), 200 if kid in ("ours", "absent") else 401, f"header kid={kid}")
    if kind == "alg-none":
        alg = draw(st.sampled_from(["none", "None", "NONE", "nOnE", ""]))
        signature = draw(st.sampled_from([b"", b"x"]))
        return TokenCase(_compact({"alg": alg, "typ": "JWT", "kid": saleor.kid}, claims, signature), 401, kind)
    if kind == "hs256-public-key":
        secret = draw(st.sampled_from([
            saleor.jwks_json().encode(),
            saleor.signing_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        ]))
        header = {"alg": draw(st.sampled_from(["HS256", "HS384", "HS512"])), "typ": "JWT", "kid": saleor.kid}
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[header["alg"]]
        return TokenCase(f"{signing_input}.{_b64(hmac.new(secret, signing_input.encode(), digest).digest())}", 401, kind)
    if kind == "foreign-key":
        kid = draw(st.sampled_from([saleor.kid, saleor.other_kid]))
        return TokenCase(saleor.dashboard_token(key=saleor.other_key, kid=kid), 401, kind)
    # another Saleor's genuine token (its key, its iss), sent with our Saleor-Api-Url
    return TokenCase(stranger.dashboard_token(), 401, kind)


@pytest.fixture
def stranger():  # type: ignore[no-untyped-def]
    with FakeSaleor() as saleor:
        yield saleor


@FUZZ
@given(data=st.data())
async def test_only_a_valid_dashboard_token_opens_the_settings(running_app, seeded, stranger, data) -> None:  # type: ignore[no-untyped-def]
    case = data.draw(token_cases(seeded.saleor, stranger))
    before = await snapshot(running_app)
    response = await post(running_app, {"query": PROBE}, token=case.token, api_url=seeded.saleor.api_url)
    secrets = (*seeded.secrets(), case.token, case.token.rsplit(".", 1)[-1] if case.token.count(".") == 2 else "")
    assert_keeps_secrets(response, *[s for s in secrets if len(s) >= 16])
    assert response.status_code == case.expected, (case.why, response.text)
    if case.expected == 200:
        assert response.json()["data"]["installation"]["saleorApiUrl"] == seeded.saleor.api_url
    elif case.expected == 403:
        assert response.json()["error"]["code"] == "MISSING_PERMISSION"
    assert await snapshot(running_app) == before


@FUZZ
@given(api_url=st.text(max_size=80).map(lambda t: bytes(b for b in t.encode() if b == 9 or (b >= 32 and b != 127)).strip()),
       token=st.sampled_from(["ours", "stranger", "none"]))
async def test_any_saleor_api_url_with_any_token_is_refused_unless_it_is_ours(running_app, seeded, stranger, api_url, token) -> None:  # type: ignore[no-untyped-def]
    jwks_before = stranger.jwks_requests
    value = {"ours": seeded.token, "stranger": stranger.dashboard_token(), "none": None}[token]
    response = await post(running_app, {"query": PROBE}, token=value, api_url=api_url)
    assert_keeps_secrets(response, *seeded.secrets())
    if api_url.decode("latin-1").strip() == seeded.saleor.api_url and token == "ours":
        assert response.status_code == 200
    else:
        assert response.status_code == 401
    assert stranger.jwks_requests == jwks_before  # a URL we were not installed on is never asked for keys


# --- documents ------------------------------------------------------------------------------------------------------------

nasty_text = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["", " ", "\x00", "%", "_", "\\", "'; DROP TABLE deliveries; --", "default-channel", "channel-pln",
                     "1", "-1", "99999999999999999999", "#1", "\u202e", "😀", "x" * 300, "sku", "number",
                     "DELIVERED", "failed", "RGVsaXZlcnk6MQ=="]),
)


def _unwrap(type_: Any) -> Any:
    return type_.of_type if isinstance(type_, GraphQLNonNull) else type_


@st.composite
def input_literal(draw: st.DrawFn, type_: Any, depth: int = 0) -> str:
    """A GraphQL literal for an argument of `type_`; now and then one of the wrong type (validation must say so)."""
    if draw(st.integers(0, 11)) == 0:
        return draw(st.sampled_from(["null", '"x"', "1", "true", "{}", "[]", "1.5", "RED", "$undeclared"]))
    inner = _unwrap(type_)
    if isinstance(inner, GraphQLList):
        return "[" + ", ".join(draw(st.lists(input_literal(inner.of_type, depth + 1), max_size=2))) + "]"
    if isinstance(inner, GraphQLInputObjectType):
        fields = []
        for name, field in inner.fields.items():
            if isinstance(field.type, GraphQLNonNull) or draw(st.booleans()):
                fields.append(f"{name}: {draw(input_literal(field.type, depth + 1))}")
        return "{" + ", ".join(fields) + "}"
    if isinstance(inner, GraphQLEnumType):
        return draw(st.sampled_from(sorted(inner.values)))
    assert isinstance(inner, GraphQLScalarType)
    if inner.name == "Int":
        return str(draw(st.integers(min_value=-(2**33), max_value=2**33)))
    if inner.name == "Float":
        return repr(draw(st.floats(allow_nan=False, allow_infinity=False)))
    if inner.name == "Boolean":
        return draw(st.sampled_from(["true", "false"]))
    return json.dumps(draw(nasty_text))  # String, ID, DateTime, …: JSON string escapes are GraphQL's


@st.composite
def selection_set(draw: st.DrawFn, type_: Any, depth: int = 0) -> str:
    named = get_named_type(type_)
    assert isinstance(named, GraphQLObjectType)
    names = sorted(named.fields)
    chosen = draw(st.lists(st.sampled_from(names), min_size=1, max_size=4, unique=True))
    parts = []
    for index, name in enumerate(chosen):
        field = named.fields[name]
        arguments = [f"{arg}: {draw(input_literal(spec.type))}" for arg, spec in field.args.items()
                     if isinstance(spec.type, GraphQLNonNull) or draw(st.booleans())]
        text = f"a{index}: {name}" + (f"({', '.join(arguments)})" if arguments else "")
        if not is_leaf_type(get_named_type(field.type)):
            text += " { " + (draw(selection_set(field.type, depth + 1)) if depth < 3 else "__typename") + " }"
        parts.append(text)
    if draw(st.integers(0, 5)) == 0:
        parts.append(draw(st.sampled_from(["__typename", "__schema { queryType { name } }", "nope", "__type(name: \"Delivery\") { name }"])))
    return " ".join(parts)


@st.composite
def documents(draw: st.DrawFn) -> str:
    operation = draw(st.sampled_from(["query", "query", "mutation"]))
    root = SCHEMA.query_type if operation == "query" else SCHEMA.mutation_type
    return f"{operation} {{ {draw(selection_set(root))} }}"


@st.composite
def variable_requests(draw: st.DrawFn) -> dict:
    """One root field with every argument passed as a variable of its declared type, valued with any JSON."""
    operation = draw(st.sampled_from(["query", "mutation"]))
    root = SCHEMA.query_type if operation == "query" else SCHEMA.mutation_type
    name = draw(st.sampled_from(sorted(n for n, f in root.fields.items() if f.args)))
    field = root.fields[name]
    declarations = ", ".join(f"${arg}: {spec.type}" for arg, spec in field.args.items())
    arguments = ", ".join(f"{arg}: ${arg}" for arg in field.args)
    sub = "" if is_leaf_type(get_named_type(field.type)) else " { __typename }"
    variables = {arg: draw(json_values | nasty_text | st.dictionaries(st.sampled_from(["channel", "apiKey", "enabled", "itemId", "orderId"]),
                                                                      json_values | nasty_text, max_size=5))
                 for arg in field.args if draw(st.integers(0, 4)) > 0}
    return {"query": f"{operation}({declarations}) {{ {name}({arguments}){sub} }}", "variables": variables}


async def assert_safe_graphql_answer(running_app, seeded: Seeded, request: dict, before: tuple) -> None:  # type: ignore[no-untyped-def]
    # The test-event rate limit (5 a minute; tests/settings/test_api_limits.py) would answer every sendTestEvent
    # after the fifth of a run with 429 before its variables reach the resolver, sooner or later depending on the
    # machine's speed: each example starts with a fresh window, so the resolver is what is fuzzed.
    limit = running_app.ctx.test_event_limit
    running_app.ctx.test_event_limit = RateLimit(limit.limit, limit.window)
    response = await post(running_app, request, token=seeded.token, api_url=seeded.saleor.api_url)
    request_text = json.dumps(request, ensure_ascii=False)
    # Keys stored by this very request may be echoed in a validation error quoting it; any other one must not show.
    keys = [k for k in await stored_keys(running_app) if len(k) >= 12 and k not in request_text]
    assert_keeps_secrets(response, *seeded.secrets(), *keys)
    assert response.status_code == 200, response.text  # GraphQL answers its errors as data
    assert INTERNAL_ERROR not in response.text, f"a resolver failed: {request['query'][:300]} -> {response.text[:500]}"
    installations, owners, deliveries = await snapshot(running_app)
    assert installations == before[0]  # no installation is touched through the settings API
    assert owners <= {before[0][0][0]}  # only this installation's channels
    assert deliveries == before[2]  # resends change states, never add or remove deliveries


@FUZZ
@given(document=documents())
async def test_arbitrary_documents_never_fail_inside_nor_leak(running_app, seeded, document) -> None:  # type: ignore[no-untyped-def]
    before = await snapshot(running_app)
    await assert_safe_graphql_answer(running_app, seeded, {"query": document}, before)


@FUZZ
@given(request=variable_requests())
async def test_arbitrary_variables_never_fail_inside_nor_leak(running_app, seeded, request) -> None:  # type: ignore[no-untyped-def]
    before = await snapshot(running_app)
    await assert_safe_graphql_answer(running_app, seeded, request, before)


@FUZZ
@given(body=st.one_of(
    st.binary(max_size=300),
    st.builds(lambda v: json.dumps(v).encode(), json_values),
    st.builds(lambda q, v, o: json.dumps({"query": q, "variables": v, "operationName": o}).encode(),
              st.text(max_size=80) | json_values, json_values, st.none() | st.text(max_size=10) | json_scalars),
))
async def test_arbitrary_request_bodies_get_a_clear_answer(running_app, seeded, body) -> None:  # type: ignore[no-untyped-def]
    before = await snapshot(running_app)
    response = await post(running_app, body, token=seeded.token, api_url=seeded.saleor.api_url)
    assert_keeps_secrets(response, *seeded.secrets())
    assert INTERNAL_ERROR not in response.text, response.text[:500]
    assert await snapshot(running_app) == before


PATHOLOGICAL_REQUESTS = {
    "unbalanced": {"query": "{ installation { status } }" + "{" * 3000},
    "deep": {"query": "{ installation " + "{ installation " * 2000 + "}" * 2001},
    "300-aliases": {"query": "query { " + " ".join(f"a{i}: channels {{ apiKeyHint slug }}" for i in range(300)) + " }"},
    "nul-status": {"query": '{ deliveries(first: 100000, status: "\\u0000") { hasMore items { id } } }'},
    "nul-search": {"query": '{ deliveries(search: "\\u0000") { hasMore items { id } } }'},
    "nul-channel": {"query": '{ deliveries(channel: "default\\u0000channel") { hasMore items { id } } }'},
    "nul-id": {"query": '{ delivery(id: "\\u0000") { id } }'},
    "nul-key": {"query": 'mutation { updateChannelSettings(input: {channel: "\\u0000", apiKey: "\\u0000"}) { ok errors { message } } }'},
    "nul-channel-settings": {"query": 'mutation { updateChannelSettings(input: {channel: "c\\u0000", enabled: false}) { ok errors { message } } }'},
    "nul-test-event": {"query": 'mutation { sendTestEvent(channel: "\\u0000", apiKey: "k\\u0000ey", currency: "\\u0000") { ok message } }'},
    "nul-channel-test-event": {"query": 'mutation { sendTestEvent(channel: "c\\u0000") { ok message } }'},
    "nul-retry": {"query": 'mutation { retryFailedDeliveries(channel: "\\u0000") { ok count } }'},
    "bad-id": {"query": 'mutation { retryDelivery(id: "-1") { ok errors { message } } }'},
    "unicode-digit-id": {"query": '{ delivery(id: "\u00b2") { id } }'},
    "unicode-digit-retry": {"query": 'mutation { retryDelivery(id: "\u0661\u00b2") { ok errors { message } } }'},
    "unknown-operation": {"query": "query Q { installation { status } }", "operationName": "Nope"},
    "fragment-cycle": {"query": "fragment F on Query { ...F } { ...F }"},
    "no-query": {"variables": {}},
}


async def test_pathological_documents(running_app, seeded) -> None:  # type: ignore[no-untyped-def]
    before = await snapshot(running_app)
    for name, request in PATHOLOGICAL_REQUESTS.items():
        response = await post(running_app, request, token=seeded.token, api_url=seeded.saleor.api_url)
        try:
            assert_keeps_secrets(response, *seeded.secrets())
            assert INTERNAL_ERROR not in response.text, response.text[:500]
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from None
    assert await snapshot(running_app) == before
