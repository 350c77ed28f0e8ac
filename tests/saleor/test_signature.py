"""Saleor-Signature (detached JWS, RFC 7797) and dashboard-token verification, against real captures first."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from saleor_app.saleor.signature import (
    DashboardTokenError,
    SignatureError,
    key_ids,
    verify_dashboard_token,
    verify_saleor_signature,
)
from tests.fakes.saleor import FakeSaleor, public_jwk
from tests.paths import CAPTURED_DIR

CAPTURED_JWKS = (CAPTURED_DIR / "jwks.json").read_text()
CAPTURED_KID = "GWbwirDfVaULqjW-vpS80fpHb9aIVhZlRQxS7M7obUs"
WEBHOOK_BODIES = sorted(CAPTURED_DIR.glob("webhook-*.body"))
DASHBOARD = json.loads((CAPTURED_DIR / "dashboard-token.json").read_text())
CAPTURED_APP_ID = "QXBwOjQ="
CAPTURED_API_URL = "http://localhost:8000/graphql/"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def captured(body_path: Path) -> tuple[bytes, str]:
    twin = json.loads(body_path.with_suffix(".json").read_text())
    return body_path.read_bytes(), twin["headers"]["Saleor-Signature"]


def kind_of(signature: str | None, body: bytes, jwks: str = CAPTURED_JWKS) -> str:
    with pytest.raises(SignatureError) as info:
        verify_saleor_signature(signature, body, jwks)
    assert str(info.value)  # always a human message
    return info.value.kind


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeSaleor]:
    """Only its keys are used here: no server, no schema."""
    saleor = FakeSaleor()
    yield saleor
    saleor.stop()


# --- webhooks: captured vectors -----------------------------------------------------------------------------


def test_there_are_captured_webhooks() -> None:
    assert len(WEBHOOK_BODIES) >= 3


@pytest.mark.parametrize("body_path", WEBHOOK_BODIES, ids=lambda p: p.name)
def test_every_captured_webhook_verifies(body_path: Path) -> None:
    body, signature = captured(body_path)
    verify_saleor_signature(signature, body, CAPTURED_JWKS)


@pytest.mark.parametrize("body_path", WEBHOOK_BODIES, ids=lambda p: p.name)
def test_one_changed_byte_breaks_it(body_path: Path) -> None:
    body, signature = captured(body_path)
    positions = {0, 1, len(body) // 3, len(body) // 2, len(body) - 2, len(body) - 1}
    for position in positions:
        tampered = bytearray(body)
        tampered[position] ^= 0x01
        assert kind_of(signature, bytes(tampered)) == "invalid", position


@pytest.mark.parametrize("body_path", WEBHOOK_BODIES, ids=lambda p: p.name)
def test_reserialised_body_does_not_verify(body_path: Path) -> None:
    body, signature = captured(body_path)
    compact = json.dumps(json.loads(body), separators=(",", ":")).encode()
    assert kind_of(signature, compact) == "invalid"
    assert kind_of(signature, body + b"\n") == "invalid"
    assert kind_of(signature, body[:-1]) == "invalid"


def test_signature_of_another_body_does_not_verify() -> None:
    (body_a, signature_a), (body_b, _) = captured(WEBHOOK_BODIES[0]), captured(WEBHOOK_BODIES[1])
    assert body_a != body_b
    assert kind_of(signature_a, body_b) == "invalid"


def test_key_ids() -> None:
    assert key_ids(CAPTURED_JWKS) == {CAPTURED_KID}
    assert key_ids("not json") == set()
    assert key_ids('{"keys": "nope"}') == set()
    assert key_ids('{"keys": [{"kty": "EC", "kid": "x"}, 5, null]}') == set()


def test_captured_signature_header_is_the_documented_one() -> None:
    _, signature = captured(WEBHOOK_BODIES[0])
    header_segment = signature.split("..")[0]
    decoded = base64.urlsafe_b64decode(header_segment + "=" * (-len(header_segment) % 4))
    assert decoded == b'{"alg":"RS256","b64":false,"crit":["b64"],"kid":"' + CAPTURED_KID.encode() + b'","typ":"JWT"}'


# --- webhooks: the fake's signatures ------------------------------------------------------------------------


def test_fake_signature_verifies_with_and_without_crit(fake: FakeSaleor) -> None:
    body = fake.webhook_body(fake.make_order())
    verify_saleor_signature(fake.sign(body), body, fake.jwks_json())
    verify_saleor_signature(fake.sign(body, with_crit=False), body, fake.jwks_json())
    assert kind_of(fake.sign(body, with_crit=False), body + b" ", fake.jwks_json()) == "invalid"


def test_pyjwt_alone_would_refuse_the_no_crit_variant(fake: FakeSaleor) -> None:
    """Why the signing input is built by hand: documents the PyJWT behaviour the verifier works around."""
    body = b'{"order": {}}'
    key = jwt.PyJWK(fake.jwks()["keys"][0])
    jwt.api_jws.decode_complete(fake.sign(body), key, algorithms=["RS256"], detached_payload=body)
    with pytest.raises(jwt.PyJWTError):
        jwt.api_jws.decode_complete(fake.sign(body, with_crit=False), key, algorithms=["RS256"], detached_payload=body)


def test_signature_by_another_key_fails(fake: FakeSaleor) -> None:
    body = fake.webhook_body(fake.make_order())
    assert kind_of(fake.other_key_sign(body), body, fake.jwks_json()) == "invalid"  # copies the real kid
    assert kind_of(fake.other_key_sign(body, kid=fake.other_kid), body, fake.jwks_json()) == "unknown_kid"


def test_captured_signature_against_other_keys_is_unknown_kid(fake: FakeSaleor) -> None:
    body, signature = captured(WEBHOOK_BODIES[0])
    assert kind_of(signature, body, fake.jwks_json()) == "unknown_kid"


def test_unusable_jwks_is_unknown_kid_so_callers_refetch() -> None:
    body, signature = captured(WEBHOOK_BODIES[0])
    key_without_material = json.dumps({"keys": [{"kty": "RSA", "kid": CAPTURED_KID}]})
    for jwks in ("", "garbage", "[]", '{"keys": {}}', '{"keys": []}', key_without_material):
        assert kind_of(signature, body, jwks) == "unknown_kid", jwks


def test_header_without_kid_uses_the_only_key(fake: FakeSaleor) -> None:
    body = b'{"order": {"id": "x"}}'
    header = b64url(json.dumps({"alg": "RS256", "b64": False, "crit": ["b64"]}, separators=(",", ":")).encode())
    signature = fake.signing_key.sign(header.encode() + b"." + body, padding.PKCS1v15(), hashes.SHA256())
    value = f"{header}..{b64url(signature)}"
    verify_saleor_signature(value, body, fake.jwks_json())
    two_keys = json.dumps({"keys": [public_jwk(fake.signing_key), public_jwk(fake.other_key)]})
    assert kind_of(value, body, two_keys) == "unknown_kid"  # ambiguous: refuse rather than guess


def test_two_key_jwks_picks_by_kid(fake: FakeSaleor) -> None:
    body = b"{}"
    two_keys = json.dumps({"keys": [public_jwk(fake.other_key), public_jwk(fake.signing_key)]})
    verify_saleor_signature(fake.sign(body), body, two_keys)
    verify_saleor_signature(fake.other_key_sign(body, kid=fake.other_kid), body, two_keys)


@pytest.mark.parametrize("value", [None, "", "   "])
def test_missing(value: str | None) -> None:
    assert kind_of(value, b"{}") == "missing"


def _with_header(header: object, signature_segment: str = "c2ln") -> str:
    return b64url(json.dumps(header).encode()) + ".." + signature_segment


@pytest.mark.parametrize(
    "value",
    [
        "garbage",
        "a.b",
        "a..b..c",
        "!!!..!!!",
        "a b..c",
        "é..x",
        "x" * 5000,
        b64url(b"not json") + "..c2ln",
        b64url(b"\xff\xfe") + "..c2ln",
        _with_header(["alg", "RS256"]),
        _with_header("RS256"),
        _with_header({"alg": "RS256", "b64": False, "crit": ["b64"], "kid": CAPTURED_KID}, "!!!"),
        _with_header({"alg": "RS256", "kid": CAPTURED_KID}),  # b64 missing: not Saleor's format
        _with_header({"alg": "RS256", "b64": True, "kid": CAPTURED_KID}),
        _with_header({"alg": "RS256", "b64": False, "crit": ["b64", "exp"], "kid": CAPTURED_KID}),
        _with_header({"alg": "RS256", "b64": False, "crit": "b64", "kid": CAPTURED_KID}),
        _with_header({"alg": "RS256", "b64": False, "crit": [], "kid": CAPTURED_KID}),
        _with_header({"alg": "RS256", "b64": False, "kid": 7}),
    ],
)
def test_malformed(value: str) -> None:
    assert kind_of(value, b"{}") == "malformed"


def test_non_string_signature_is_malformed() -> None:
    assert kind_of(b"abc..def", b"{}") == "malformed"  # type: ignore[arg-type]
    assert kind_of(42, b"{}") == "malformed"  # type: ignore[arg-type]


def test_embedded_payload_is_malformed() -> None:
    body, signature = captured(WEBHOOK_BODIES[0])
    header, _, sig = signature.partition("..")
    assert kind_of(f"{header}.{b64url(body)}.{sig}", body) == "malformed"


def test_alg_none_is_refused() -> None:
    header = {"alg": "none", "b64": False, "crit": ["b64"], "kid": CAPTURED_KID, "typ": "JWT"}
    assert kind_of(_with_header(header, ""), b"{}") == "algorithm"
    assert kind_of(_with_header({"alg": "none"}, ""), b"{}") == "algorithm"
    assert kind_of(_with_header({"b64": False}, ""), b"{}") == "algorithm"  # no alg at all


def test_hs256_with_the_public_key_as_secret_is_refused(fake: FakeSaleor) -> None:
    """The classic key-confusion forgery: HMAC keyed with the (public) RSA key must never be accepted."""
    body = b'{"order": {"id": "forged"}}'
    header = b64url(
        json.dumps({"alg": "HS256", "b64": False, "crit": ["b64"], "kid": fake.kid, "typ": "JWT"}).encode()
    )
    public_pem = fake.signing_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for secret in (public_pem, fake.jwks_json().encode()):
        mac = hmac.new(secret, header.encode() + b"." + body, hashlib.sha256).digest()
        assert kind_of(f"{header}..{b64url(mac)}", body, fake.jwks_json()) == "algorithm"


def test_signature_of_wrong_length_is_invalid() -> None:
    body, signature = captured(WEBHOOK_BODIES[0])
    header, _, sig = signature.partition("..")
    assert kind_of(f"{header}..{sig[:-8]}", body) == "invalid"
    assert kind_of(f"{header}..", body) == "invalid"


def test_surrounding_whitespace_is_tolerated() -> None:
    body, signature = captured(WEBHOOK_BODIES[0])
    verify_saleor_signature(f" {signature}\t", body, CAPTURED_JWKS)


# --- dashboard tokens -------------------------------------------------------------------------------------


CAPTURED_FRESH = DASHBOARD["claims"]["iat"] + 10  # a moment when the captured token was valid


def dashboard_kind(token: str, *, jwks: str = CAPTURED_JWKS, app_id: str = CAPTURED_APP_ID,
                   api_url: str = CAPTURED_API_URL, now: float | None = CAPTURED_FRESH, **kwargs: object) -> str:
    with pytest.raises(DashboardTokenError) as info:
        verify_dashboard_token(token, jwks_json=jwks, app_id=app_id, saleor_api_url=api_url, now=now, **kwargs)
    assert str(info.value)
    return info.value.kind


def test_captured_dashboard_token_decodes_to_its_recorded_header_and_claims() -> None:
    token = DASHBOARD["accessToken"]
    assert jwt.get_unverified_header(token) == DASHBOARD["header"]
    assert jwt.decode(token, options={"verify_signature": False}) == DASHBOARD["claims"]


def test_captured_dashboard_token_verifies_while_it_was_fresh() -> None:
    claims = verify_dashboard_token(
        DASHBOARD["accessToken"],
        jwks_json=CAPTURED_JWKS,
        app_id=CAPTURED_APP_ID,
        saleor_api_url=CAPTURED_API_URL,
        now=CAPTURED_FRESH,
    )
    assert claims == DASHBOARD["claims"]
    assert "MANAGE_APPS" in claims["user_permissions"]


def test_captured_dashboard_token_is_expired_now() -> None:
    token = DASHBOARD["accessToken"]
    assert dashboard_kind(token, now=DASHBOARD["claims"]["exp"]) == "expired"
    assert dashboard_kind(token, now=DASHBOARD["claims"]["exp"] + 3600) == "expired"
    with pytest.raises(DashboardTokenError) as info:  # and by the real clock (it expired in 2026)
        verify_dashboard_token(token, jwks_json=CAPTURED_JWKS, app_id=CAPTURED_APP_ID, saleor_api_url=CAPTURED_API_URL)
    assert info.value.kind == "expired"


def test_dashboard_wrong_app_issuer_and_permission() -> None:
    token = DASHBOARD["accessToken"]
    assert dashboard_kind(token, app_id="QXBwOjU=") == "wrong_app"
    assert dashboard_kind(token, api_url="https://other.example.com/graphql/") == "wrong_issuer"
    assert dashboard_kind(token, api_url="http://localhost:8000/graphql") == "wrong_issuer"  # exact match only
    assert dashboard_kind(token, required_permission="MANAGE_EVERYTHING") == "forbidden"


def test_dashboard_tampered_claims_are_invalid_signature() -> None:
    header, claims, signature = DASHBOARD["accessToken"].split(".")
    forged_claims = dict(DASHBOARD["claims"], user_permissions=["MANAGE_APPS"], app="QXBwOjQ=")
    forged_claims["email"] = "attacker@example.com"
    forged = ".".join([header, b64url(json.dumps(forged_claims).encode()), signature])
    assert dashboard_kind(forged) == "invalid_signature"
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    assert dashboard_kind(".".join([header, claims, flipped])) == "invalid_signature"


def test_dashboard_token_from_the_fake(fake: FakeSaleor) -> None:
    token = fake.dashboard_token()
    claims = verify_dashboard_token(token, jwks_json=fake.jwks_json(), app_id=fake.app_id, saleor_api_url=fake.api_url)
    assert claims["type"] == "thirdparty" and claims["app"] == fake.app_id
    kwargs = {"jwks": fake.jwks_json(), "app_id": fake.app_id, "api_url": fake.api_url, "now": None}
    assert dashboard_kind(fake.dashboard_token(exp_in=-1), **kwargs) == "expired"
    assert dashboard_kind(fake.dashboard_token(type_="access"), **kwargs) == "wrong_type"
    assert dashboard_kind(fake.dashboard_token(user_permissions=["MANAGE_ORDERS"]), **kwargs) == "forbidden"
    assert dashboard_kind(fake.dashboard_token(app="QXBwOjk5"), **kwargs) == "wrong_app"
    assert dashboard_kind(fake.dashboard_token(iss="http://evil/graphql/"), **kwargs) == "wrong_issuer"
    assert dashboard_kind(fake.dashboard_token(key=fake.other_key), **kwargs) == "invalid_signature"
    assert dashboard_kind(fake.dashboard_token(key=fake.other_key, kid=fake.other_kid), **kwargs) == "unknown_kid"
    assert dashboard_kind(token, **dict(kwargs, jwks=CAPTURED_JWKS)) == "unknown_kid"
    # A custom permission requirement.
    verify_dashboard_token(token, jwks_json=fake.jwks_json(), app_id=fake.app_id, saleor_api_url=fake.api_url,
                           required_permission="MANAGE_ORDERS")


def test_dashboard_token_without_exp_or_permissions_is_malformed(fake: FakeSaleor) -> None:
    kwargs = {"jwks": fake.jwks_json(), "app_id": fake.app_id, "api_url": fake.api_url, "now": None}
    base = jwt.decode(fake.dashboard_token(), options={"verify_signature": False})
    for claims in ({k: v for k, v in base.items() if k != "exp"}, dict(base, exp="soon"),
                   dict(base, user_permissions="MANAGE_APPS")):
        token = jwt.encode(claims, fake.signing_key, algorithm="RS256", headers={"kid": fake.kid})
        assert dashboard_kind(token, **kwargs) == "malformed"


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c", "a.b", "eyJhbGciOiJSUzI1NiJ9.!!!.abc"])
def test_dashboard_garbage_is_malformed(token: str) -> None:
    assert dashboard_kind(token) == "malformed"


def test_dashboard_alg_none_is_never_accepted() -> None:
    header = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    claims = b64url(json.dumps(DASHBOARD["claims"]).encode())
    for token in (f"{header}.{claims}.", f"{header}.{claims}.c2ln"):
        assert dashboard_kind(token) in ("malformed", "invalid_signature")


def test_dashboard_hs256_with_public_key_is_refused(fake: FakeSaleor) -> None:
    """Key confusion: an HMAC keyed with the public key (PyJWT would refuse to make one, so it is made by hand)."""
    _, claims, _ = fake.dashboard_token().split(".")
    header = b64url(json.dumps({"alg": "HS256", "kid": fake.kid, "typ": "JWT"}).encode())
    public_pem = fake.signing_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    kwargs = {"jwks": fake.jwks_json(), "app_id": fake.app_id, "api_url": fake.api_url, "now": None}
    for secret in (public_pem, fake.jwks_json().encode()):
        mac = hmac.new(secret, f"{header}.{claims}".encode(), hashlib.sha256).digest()
        assert dashboard_kind(f"{header}.{claims}.{b64url(mac)}", **kwargs) in ("malformed", "invalid_signature")
