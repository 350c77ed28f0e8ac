"""The ORDER_CONFIRMED endpoint under hostile input: arbitrary headers and bodies, arbitrary JSON validly signed by
Saleor (so it passes verification and reaches the parser and the database), huge and deeply nested bodies, wrong
content types, replayed and forged signatures, signature headers with every algorithm and shape.

Every answer is 200 (stored, once) or a 4xx with a JSON error and a human message, never a 5xx; and the database
holds exactly what was answered 200 (plus, for a body that Saleor signed but we cannot read, one failed entry)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from saleor_app.saleor.manifest import ORDER_CONFIRMED
from saleor_app.storage.models import Delivery
from tests.fakes.saleor import FakeSaleor
from tests.hostile import FUZZ, assert_clear_answer

PATH = ORDER_CONFIRMED.path
# Names the app reads; a random header with one of them may legitimately change the answer.
RELEVANT = {"saleor-signature", "x-saleor-signature", "saleor-api-url", "saleor-domain", "x-saleor-domain",
            "saleor-event", "x-saleor-event", "content-length", "transfer-encoding", "host", "content-encoding"}
TCHAR = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


# --- strategies -----------------------------------------------------------------------------------------------------

header_names = st.text(alphabet=TCHAR, min_size=1, max_size=24).filter(lambda n: n.lower() not in RELEVANT)


@st.composite
def header_values(draw: st.DrawFn) -> bytes:
    """Any text, UTF-8 encoded (bytes >= 0x80 are obs-text), minus what HTTP forbids in a field value (CR, LF, NUL,
    other controls but TAB); trimmed, as a server would."""
    raw = draw(st.text(max_size=60)).encode("utf-8")
    return bytes(b for b in raw if b == 9 or (b >= 32 and b != 127)).strip(b" \t")


random_headers = st.lists(st.tuples(header_names, header_values()), max_size=8)

json_scalars = (
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=40)
)
json_values = st.recursive(
    json_scalars, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=12), kids, max_size=4),
    max_leaves=16,
)
# Strings a database or a parser may choke on: NUL, controls, RTL marks, astral plane, long, SQL-ish.
nasty_text = st.one_of(
    st.text(max_size=40),
    st.text(max_size=400, alphabet=st.characters(codec="utf-8")),
    st.sampled_from(["", " ", "\x00", "a\x00b", "'; DROP TABLE deliveries; --", "%", "_", "\\", "\u202e", "😀" * 70,
                     "x" * 257, "9" * 65, "\ufeff", "\r\n", "Order:\x00"]),
)
order_like = st.fixed_dictionaries(
    {"id": nasty_text | json_values},
    optional={
        "number": nasty_text | st.integers(min_value=-(2**70), max_value=2**70) | json_values,
        "channel": st.none() | st.fixed_dictionaries({}, optional={"slug": nasty_text | json_values,
                                                                 "currencyCode": nasty_text}) | json_values,
        "userEmail": nasty_text | json_values,
        "total": json_values | st.fixed_dictionaries({"gross": st.fixed_dictionaries(
            {}, optional={"amount": json_scalars, "currency": nasty_text})}),
        "lines": json_values,
        "created": nasty_text,
        "status": nasty_text,
        "billingAddress": json_values,
        "user": json_values,
        "voucherCode": nasty_text | json_values,
        "extra": json_values,
    },
)
payloads = st.fixed_dictionaries(
    {"order": order_like | json_values},
    optional={
        "__typename": nasty_text,
        "issuedAt": nasty_text,
        "version": nasty_text,
        "errors": st.lists(st.fixed_dictionaries({}, optional={"message": nasty_text, "path": st.lists(nasty_text, max_size=3)}),
                           max_size=3) | json_values,
    },
)


# --- helpers ----------------------------------------------------------------------------------------------------------


async def count_deliveries(running_app) -> int:  # type: ignore[no-untyped-def]
    async with running_app.ctx.db.session() as session:
        return await session.scalar(select(func.count()).select_from(Delivery))


async def newest_delivery(running_app) -> Delivery:  # type: ignore[no-untyped-def]
    async with running_app.ctx.db.session() as session:
        return await session.scalar(select(Delivery).order_by(Delivery.id.desc()).limit(1))


async def post(running_app, body: bytes, headers: list[tuple[str, Any]] | dict):  # type: ignore[no-untyped-def]
    return await running_app.client.post(PATH, content=body, headers=headers)


async def assert_signed_body_is_stored_or_refused(running_app, saleor: FakeSaleor, body: bytes, **header_overrides) -> None:  # type: ignore[no-untyped-def]
    """A body Saleor signed: 200 and stored once (pending), or 400 with a message and kept as a failed entry."""
    before = await count_deliveries(running_app)
    response = await post(running_app, body, dict(saleor.webhook_headers(body), **header_overrides))
    assert_clear_answer(response, saleor.app_token)
    assert response.status_code in (200, 400, 413), response.text
    after = await count_deliveries(running_app)
    if response.status_code == 200:
        outcome = response.json()["outcome"]
        assert outcome in ("stored", "duplicate")
        assert after == before + (outcome == "stored")
        if outcome == "stored":
            stored = await newest_delivery(running_app)
            assert stored.status == "pending" and stored.order_id and stored.payload.encode() == body
    elif response.status_code == 400:
        assert response.json()["error"]["code"] == "INVALID_PAYLOAD"
        assert after == before + 1  # kept where the merchant sees it
        kept = await newest_delivery(running_app)
        assert kept.status == "failed" and kept.order_id is None and "could not read" in kept.reason
    else:
        assert after == before


# --- headers ----------------------------------------------------------------------------------------------------------


@FUZZ
@given(extra=random_headers, extras_first=st.booleans())
async def test_any_extra_headers_on_a_signed_webhook_still_store_it_once(running_app, installed, extra, extras_first) -> None:  # type: ignore[no-untyped-def]
    order = installed.make_order()
    body = installed.webhook_body(order, query=ORDER_CONFIRMED.query)
    valid = list(installed.webhook_headers(body).items())
    before = await count_deliveries(running_app)
    response = await post(running_app, body, extra + valid if extras_first else valid + extra)
    assert_clear_answer(response, installed.app_token)
    assert response.status_code == 200 and response.json()["outcome"] == "stored"
    assert await count_deliveries(running_app) == before + 1


@FUZZ
@given(headers=st.lists(st.tuples(st.sampled_from(sorted(RELEVANT - {"content-length", "transfer-encoding", "host",
                                                                      "content-encoding"})) | header_names,
                                  header_values()), max_size=10),
       body=st.binary(max_size=2048))
async def test_arbitrary_headers_and_body_are_refused_clearly_and_store_nothing(running_app, installed, headers, body) -> None:  # type: ignore[no-untyped-def]
    before = await count_deliveries(running_app)
    response = await post(running_app, body, headers)
    assert_clear_answer(response, installed.app_token)
    assert 400 <= response.status_code < 500  # nothing here is signed by the Saleor
    assert await count_deliveries(running_app) == before


# --- bodies Saleor signed ---------------------------------------------------------------------------------------------


@FUZZ
@given(body=st.binary(max_size=4096))
async def test_signed_arbitrary_bytes_are_stored_or_refused_with_a_reason(running_app, installed, body) -> None:  # type: ignore[no-untyped-def]
    await assert_signed_body_is_stored_or_refused(running_app, installed, body)


@FUZZ
@given(value=json_values, ascii_only=st.booleans())
async def test_signed_arbitrary_json_is_stored_or_refused_with_a_reason(running_app, installed, value, ascii_only) -> None:  # type: ignore[no-untyped-def]
    await assert_signed_body_is_stored_or_refused(running_app, installed, json.dumps(value, ensure_ascii=ascii_only).encode())


@settings(parent=FUZZ, max_examples=100)
@given(payload=payloads, ascii_only=st.booleans())
async def test_signed_order_shaped_json_is_stored_or_refused_with_a_reason(running_app, installed, payload, ascii_only) -> None:  # type: ignore[no-untyped-def]
    """Order-shaped payloads reach the parser and the database: NUL bytes, 300-character ids, emoji, SQL-ish text."""
    await assert_signed_body_is_stored_or_refused(running_app, installed, json.dumps(payload, ensure_ascii=ascii_only).encode())


PATHOLOGICAL_BODIES = {
    "nested-lists": b"[" * 10_000 + b"]" * 10_000,
    "nested-order": b'{"order": ' + b"[" * 10_000 + b"]" * 10_000 + b"}",
    "nested-objects": b'{"order": {"id": "x", "extra": ' + b'{"a": ' * 10_000 + b"1" + b"}" * 10_000 + b"}}",
    "escaped-nuls": b'{"order": {"id": "' + b"\\u0000" * 1000 + b'"}}',
    "raw-nuls": b"\x00" * 1000,
    "bad-utf8": b'{"order": {"id": "\xff\xfe"}}',
    "lone-surrogate": b'{"order": {"id": "\\ud800"}}',
    "bom": b"\xef\xbb\xbf" + b'{"order": {"id": "with-bom"}}',
    "duplicate-keys": b'{"order": {"id": "a"}, "order": {"id": "b"}}',
    "long-id": json.dumps({"order": {"id": "x" * 257}}).encode(),
    "long-number": json.dumps({"order": {"id": "long-number", "number": 10**70}}).encode(),
    "long-slug": json.dumps({"order": {"id": "long-slug", "channel": {"slug": "s" * 256}}}).encode(),
    "nul-in-errors": json.dumps({"order": {"id": "nul-errors"}, "errors": [{"message": "a\x00b", "path": ["\x00"]}]}).encode(),
    "empty": b"",
    "null": b"null",
    "string": b'"order"',
    "huge-number": b"1e999999",
}


async def test_signed_pathological_bodies(running_app, installed) -> None:  # type: ignore[no-untyped-def]
    """Deep nesting, NUL bytes, invalid UTF-8, values longer than their column: 200 stored or 400 kept, never 5xx."""
    for name, body in PATHOLOGICAL_BODIES.items():
        try:
            await assert_signed_body_is_stored_or_refused(running_app, installed, body)
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from None


async def test_body_just_under_the_limit_is_stored_and_one_over_is_413(running_app, installed) -> None:  # type: ignore[no-untyped-def]
    limit = running_app.ctx.settings.max_webhook_body_bytes
    order = installed.make_order()
    skeleton = installed.webhook_body(dict(order, padding=""))
    body = installed.webhook_body(dict(order, padding="x" * (limit - len(skeleton))))
    assert len(body) == limit
    await assert_signed_body_is_stored_or_refused(running_app, installed, body)
    assert (await newest_delivery(running_app)).order_id == order["id"]

    over = installed.webhook_body(dict(installed.make_order(), padding="x" * limit))
    before = await count_deliveries(running_app)
    response = await post(running_app, over, installed.webhook_headers(over))
    assert response.status_code == 413
    assert_clear_answer(response)
    assert await count_deliveries(running_app) == before


async def test_streamed_body_without_length_over_the_limit_is_413(running_app, installed) -> None:  # type: ignore[no-untyped-def]
    """No Content-Length to refuse up front (chunked): the body is cut off while it is read, never held whole."""
    limit = running_app.ctx.settings.max_webhook_body_bytes
    chunk = b"x" * 65536
    sent = 0

    async def chunks():  # type: ignore[no-untyped-def]
        nonlocal sent
        while sent < 4 * limit:
            sent += len(chunk)
            yield chunk

    headers = installed.webhook_headers(b"irrelevant")
    response = await running_app.client.post(PATH, content=chunks(), headers=headers)
    assert response.status_code == 413
    assert_clear_answer(response)
    assert sent < 2 * limit  # stopped reading soon after the limit
    assert await count_deliveries(running_app) == 0


async def test_lying_content_length_is_refused_up_front_and_junk_is_ignored(running_app, installed) -> None:  # type: ignore[no-untyped-def]
    body = installed.webhook_body(installed.make_order())
    headers = dict(installed.webhook_headers(body), **{"Content-Length": str(10**12)})
    response = await running_app.client.post(PATH, content=body, headers=headers)
    assert response.status_code == 413
    assert_clear_answer(response)
    # Not a number (a server in front would refuse these; the app must not fail on them either): the body decides.
    for junk in ("\u00b2".encode("latin-1"), b"-1", b"abc", b"\xd9\xa1"):
        order = installed.make_order()
        body = installed.webhook_body(order)
        response = await post(running_app, body, dict(installed.webhook_headers(body), **{"Content-Length": junk}))
        assert_clear_answer(response)
        assert response.status_code == 200, junk


async def test_content_type_does_not_matter_for_what_saleor_signed(running_app, installed) -> None:  # type: ignore[no-untyped-def]
    for content_type in (None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                         "application/xml", "application/json; charset=latin-1", "image/png", "ünïcode/\u2603", ""):
        order = installed.make_order()
        body = installed.webhook_body(order, query=ORDER_CONFIRMED.query)
        headers = {k: v for k, v in installed.webhook_headers(body).items() if k.lower() != "content-type"}
        if content_type is not None:
            headers["Content-Type"] = content_type.encode("utf-8")
        response = await post(running_app, body, headers)
        assert_clear_answer(response)
        assert response.status_code == 200, content_type
        assert (await newest_delivery(running_app)).order_id == order["id"]


# --- signatures ---------------------------------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@st.composite
def jws_headers(draw: st.DrawFn, kid: str, other_kid: str) -> dict:
    header: dict[str, Any] = {}
    alg = draw(st.sampled_from(["RS256", "RS256", "RS256", "none", "None", "HS256", "RS512", "PS256", "ES256", "rs256", None]))
    if alg is not None:
        header["alg"] = alg
    b64 = draw(st.sampled_from([False, False, False, True, "false", 0, None, "absent"]))
    if b64 != "absent":
        header["b64"] = b64
    crit = draw(st.sampled_from([["b64"], ["b64"], "absent", [], ["b64", "exp"], "b64", [None], ["B64"]]))
    if crit != "absent":
        header["crit"] = crit
    key_id = draw(st.sampled_from([kid, kid, kid, "absent", other_kid, "", None, 5, [kid]]))
    if key_id != "absent":
        header["kid"] = key_id
    if draw(st.booleans()):
        header["typ"] = draw(st.sampled_from(["JWT", "JOSE", 7]))
    if draw(st.booleans()):
        header[draw(st.text(max_size=8))] = draw(json_scalars)
    return header


def conforming(header: dict, kid: str) -> bool:
    """What a signature by the current key must declare to be accepted (Saleor's detached RS256 JWS)."""
    return (
        header.get("alg") == "RS256"
        and header.get("b64") is False
        and header.get("crit", ["b64"]) == ["b64"]
        and header.get("kid", kid) == kid
    )


@FUZZ
@given(data=st.data(), signer=st.sampled_from(["saleor", "saleor", "foreign-key", "hs256-with-public-key", "no-signature", "garbage"]))
async def test_only_a_conforming_signature_by_saleors_key_is_accepted(running_app, installed, data, signer) -> None:  # type: ignore[no-untyped-def]
    header = data.draw(jws_headers(installed.kid, installed.other_kid))
    order = installed.make_order()
    body = installed.webhook_body(order, query=ORDER_CONFIRMED.query)
    segment = _b64(json.dumps(header).encode())
    signing_input = segment.encode() + b"." + body
    if signer == "saleor":
        signature = installed.signing_key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    elif signer == "foreign-key":
        signature = installed.other_key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    elif signer == "hs256-with-public-key":  # the classic confusion: the public key used as an HMAC secret
        pem = installed.signing_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        signature = hmac.new(pem, signing_input, hashlib.sha256).digest()
    elif signer == "no-signature":
        signature = b""
    else:
        signature = data.draw(st.binary(max_size=300))
    headers = installed.webhook_headers(body, signature=f"{segment}..{_b64(signature)}")

    before = await count_deliveries(running_app)
    response = await post(running_app, body, headers)
    assert_clear_answer(response, installed.app_token)
    if signer == "saleor" and conforming(header, installed.kid):
        assert response.status_code == 200, response.text
        assert await count_deliveries(running_app) == before + 1
    else:
        assert response.status_code == 401, (header, signer, response.text)
        assert response.json()["error"]["code"] == "INVALID_SIGNATURE"
        assert await count_deliveries(running_app) == before


@FUZZ
@given(signature=st.text(max_size=300) | st.builds(lambda parts: "..".join(parts), st.lists(st.text(max_size=80), min_size=2, max_size=3)))
async def test_garbage_signature_headers_are_401(running_app, installed, signature) -> None:  # type: ignore[no-untyped-def]
    body = installed.webhook_body(installed.make_order())
    value = bytes(b for b in signature.encode("utf-8") if b == 9 or (b >= 32 and b != 127))
    assume(value.strip())
    response = await post(running_app, body, dict(installed.webhook_headers(body), **{"Saleor-Signature": value}))
    assert_clear_answer(response)
    assert response.status_code == 401
    assert await count_deliveries(running_app) == 0


async def test_replays_across_installations_and_bodies_are_refused(running_app, installed) -> None:  # type: ignore[no-untyped-def]
    with FakeSaleor() as other:
        assert (await running_app.register(other)).status_code == 200
        theirs = other.webhook_body(other.make_order())
        their_signature = other.sign(theirs)
        ours = installed.webhook_body(installed.make_order())
        our_signature = installed.sign(ours)
        cases = [
            # their body and signature, claimed to come from our Saleor
            (theirs, dict(other.webhook_headers(theirs), **{"Saleor-Api-Url": installed.api_url})),
            # our signature on another body of ours
            (installed.webhook_body(installed.make_order()), installed.webhook_headers(ours)),
            # our signature sent to their installation
            (ours, dict(installed.webhook_headers(ours), **{"Saleor-Api-Url": other.api_url})),
            # their signature with our body, under our URL
            (ours, dict(installed.webhook_headers(ours, signature=their_signature))),
            # a forged signature by a foreign key with our kid, and one with an unknown kid
            (ours, installed.webhook_headers(ours, signature=installed.other_key_sign(ours))),
            (ours, installed.webhook_headers(ours, signature=installed.other_key_sign(ours, kid=installed.other_kid))),
            # alg none / an empty signature
            (ours, installed.webhook_headers(ours, signature=_b64(b'{"alg":"none","b64":false,"crit":["b64"]}') + "..")),
            (ours, installed.webhook_headers(ours, signature=our_signature.rsplit(".", 1)[0] + ".")),
        ]
        for body, headers in cases:
            response = await post(running_app, body, headers)
            assert response.status_code == 401, response.text
            assert_clear_answer(response, installed.app_token, other.app_token)
        assert await count_deliveries(running_app) == 0
        # The genuine webhook, replayed any number of times (as Saleor retries), is stored once.
        for _ in range(3):
            response = await post(running_app, ours, installed.webhook_headers(ours, signature=our_signature))
            assert response.status_code == 200
        assert await count_deliveries(running_app) == 1
