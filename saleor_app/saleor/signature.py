"""Checks that a request really comes from the Saleor that installed us.

Two kinds of proof, both RS256 signatures by the Saleor's single signing key (published as a JWKS at
`<origin>/.well-known/jwks.json`):

- `Saleor-Signature` on webhooks: a compact JWS with a detached, unencoded payload (RFC 7797),
  `<b64url(protected header)>..<b64url(signature)>`, over the raw body bytes.
- The dashboard token (`App.accessToken`): an ordinary RS256 JWT carrying the staff user's permissions.

Both verifiers take the JWKS as the JSON text we stored at install time and never take the algorithm from the
token: RS256 is the only algorithm Saleor uses, so anything else is refused before any key is touched.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from functools import lru_cache
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt.algorithms import RSAAlgorithm

__all__ = [
    "DashboardTokenError",
    "SignatureError",
    "key_ids",
    "verify_dashboard_token",
    "verify_saleor_signature",
]

ALGORITHM = "RS256"
_RS256 = RSAAlgorithm(RSAAlgorithm.SHA256)
# base64url without padding, as JOSE writes it. Python's decoder would silently skip other characters.
_B64URL = re.compile(r"[A-Za-z0-9_-]*")


class SignatureError(Exception):
    """A webhook signature we refuse. `kind` says why, for the caller's policy (e.g. refetch keys on unknown_kid).

    kind: "missing" (no header), "malformed" (not a detached JWS we can read), "algorithm" (not RS256),
    "unknown_kid" (no usable key with that kid in the JWKS), "invalid" (the signature does not match the body).
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class DashboardTokenError(Exception):
    """A dashboard token we refuse.

    kind: "malformed", "expired", "unknown_kid", "invalid_signature", "wrong_app", "wrong_issuer", "wrong_type",
    "forbidden" (valid token, but the user lacks the required permission).
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


# --- keys -----------------------------------------------------------------------------------------------------


@lru_cache(maxsize=64)
def _load_jwks(jwks_json: str) -> tuple[tuple[str | None, RSAPublicKey], ...]:
    """The usable RS256 public keys of a JWKS as (kid, key) pairs. Unreadable JWKS or keys are skipped, not raised:
    a JWKS without a usable key simply matches no signature ("unknown_kid"), which makes callers refetch it.

    Cached: the same stored JWKS text is verified against for every webhook.
    """
    try:
        document = json.loads(jwks_json)
    except (TypeError, ValueError):
        return ()
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list):
        return ()
    usable: list[tuple[str | None, RSAPublicKey]] = []
    for jwk in keys:
        if not isinstance(jwk, dict) or jwk.get("kty") != "RSA" or jwk.get("alg", ALGORITHM) != ALGORITHM:
            continue
        if jwk.get("use", "sig") != "sig":
            continue
        kid = jwk.get("kid")
        try:
            public_key = _RS256.from_jwk(jwk)
        except Exception:  # noqa: BLE001 - PyJWT raises several types for a broken JWK; all mean "not usable"
            continue
        if not isinstance(public_key, RSAPublicKey):  # a JWK carrying "d" loads as a private key: not what we want
            continue
        usable.append((kid if isinstance(kid, str) else None, public_key))
    return tuple(usable)


def key_ids(jwks_json: str) -> set[str]:
    """The kids of the usable RS256 keys in a JWKS (empty for unreadable JSON)."""
    return {kid for kid, _ in _load_jwks(jwks_json) if kid is not None}


def _pick_key(kid: Any, jwks_json: str) -> RSAPublicKey | None:
    keys = _load_jwks(jwks_json)
    if kid is None:
        # Saleor always sends a kid, but a header without one is unambiguous when there is a single key.
        return keys[0][1] if len(keys) == 1 else None
    for key_id, public_key in keys:
        if key_id == kid:
            return public_key
    return None


def _b64url_decode(segment: str) -> bytes:
    if not _B64URL.fullmatch(segment) or len(segment) % 4 == 1:
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


# --- webhooks -------------------------------------------------------------------------------------------------


def verify_saleor_signature(signature: str | None, body: bytes, jwks_json: str) -> None:
    """Raise SignatureError unless `signature` (the Saleor-Signature header) signs `body` with a key of the JWKS.

    The signing input is ASCII(protected segment) + "." + the raw body: the body is never decoded or
    re-serialised. This is done by hand rather than with PyJWT's RFC 7797 support because PyJWT (correctly, per
    the RFC) rejects `b64: false` without `crit: ["b64"]`, and Saleor before 3.20 (and some 3.14-3.19 patch
    releases) sends exactly that.
    """
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise TypeError("body must be the raw request bytes")  # a caller bug, not a bad request
    if signature is None or (isinstance(signature, str) and not signature.strip()):
        raise SignatureError("missing", "no Saleor-Signature header")
    try:
        compact = signature.strip().encode("ascii")
    except (UnicodeEncodeError, AttributeError):
        raise SignatureError("malformed", "signature is not an ASCII string") from None
    parts = compact.split(b".")
    if len(parts) != 3:
        raise SignatureError("malformed", "signature is not a compact JWS (header..signature)")
    header_segment, payload_segment, signature_segment = parts
    if payload_segment:
        # Saleor detaches the payload; an embedded one would be a different message than the body we got.
        raise SignatureError("malformed", "signature carries an embedded payload; expected a detached one")

    try:
        header = json.loads(_b64url_decode(header_segment.decode("ascii")))
        raw_signature = _b64url_decode(signature_segment.decode("ascii"))
    except (ValueError, binascii.Error):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise SignatureError("malformed", "signature header or signature is not valid base64url/JSON") from None
    if not isinstance(header, dict):
        raise SignatureError("malformed", "signature header is not a JSON object")

    if header.get("alg") != ALGORITHM:
        raise SignatureError("algorithm", f"signature algorithm {header.get('alg')!r} is not {ALGORITHM}")
    if header.get("b64") is not False:
        # With b64 true the signing input would be the base64url of the body; Saleor never signs that way.
        raise SignatureError("malformed", "signature header lacks b64: false (unencoded payload)")
    crit = header.get("crit", ["b64"])
    if not isinstance(crit, list) or not crit or any(extension != "b64" for extension in crit):
        # RFC 7515 §4.1.11: a critical extension we do not understand makes the JWS invalid.
        raise SignatureError("malformed", f"unsupported critical header parameters: {crit!r}")
    kid = header.get("kid")
    if "kid" in header and not isinstance(kid, str):  # absent is unambiguous with one key; `null` is not Saleor's
        raise SignatureError("malformed", "signature kid is not a string")

    public_key = _pick_key(kid, jwks_json)
    if public_key is None:
        raise SignatureError("unknown_kid", f"no signing key {kid!r} in Saleor's JWKS")

    signing_input = header_segment + b"." + bytes(body)
    if not _RS256.verify(signing_input, public_key, raw_signature):
        raise SignatureError("invalid", "signature does not match the body")


# --- dashboard tokens -----------------------------------------------------------------------------------------


def verify_dashboard_token(
    token: str,
    *,
    jwks_json: str,
    app_id: str,
    saleor_api_url: str,
    required_permission: str = "MANAGE_APPS",
    now: float | None = None,
) -> dict[str, Any]:
    """Verify the dashboard's `App.accessToken` JWT and return its claims, or raise DashboardTokenError.

    The signature is checked before any claim is believed. Then: `exp` in the future, `app` is our app id,
    `iss` is the Saleor API URL we were installed on, `type` is "thirdparty" (a token Saleor minted for a
    third-party app page), and the user holds `required_permission` (Saleor lets any staff user open an app page,
    so the app must enforce who may configure it itself).
    """
    if not isinstance(token, str) or not token:
        raise DashboardTokenError("malformed", "no dashboard token")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise DashboardTokenError("malformed", "dashboard token is not a JWT") from None
    if header.get("alg") != ALGORITHM:
        # "none", HS256 (with the public key as the HMAC secret) and friends: never accepted.
        raise DashboardTokenError("invalid_signature", f"token algorithm {header.get('alg')!r} is not {ALGORITHM}")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise DashboardTokenError("malformed", "token kid is not a string")
    public_key = _pick_key(kid, jwks_json)
    if public_key is None:
        raise DashboardTokenError("unknown_kid", f"no signing key {kid!r} in Saleor's JWKS")

    try:
        # Only the signature here; the time and claim checks follow below, against `now`.
        claims = jwt.decode(
            token,
            public_key,
            algorithms=[ALGORITHM],
            options={
                "verify_signature": True,
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "verify_aud": False,
                "verify_iss": False,
            },
        )
    except jwt.InvalidSignatureError:
        raise DashboardTokenError("invalid_signature", "token signature does not match") from None
    except jwt.PyJWTError as exc:
        raise DashboardTokenError("malformed", f"token cannot be decoded: {exc}") from None
    if not isinstance(claims, dict):
        raise DashboardTokenError("malformed", "token claims are not an object")

    exp = claims.get("exp")
    if not isinstance(exp, (int, float)) or isinstance(exp, bool):
        raise DashboardTokenError("malformed", "token has no numeric exp")
    if exp <= (time.time() if now is None else now):
        raise DashboardTokenError("expired", "token has expired")
    if claims.get("app") != app_id:
        raise DashboardTokenError("wrong_app", "token was issued for another app")
    if claims.get("iss") != saleor_api_url:
        raise DashboardTokenError("wrong_issuer", "token was issued by another Saleor")
    if claims.get("type") != "thirdparty":
        raise DashboardTokenError("wrong_type", f"token type {claims.get('type')!r} is not thirdparty")
    user_permissions = claims.get("user_permissions")
    if not isinstance(user_permissions, list):
        raise DashboardTokenError("malformed", "token has no user_permissions list")
    if required_permission not in user_permissions:
        raise DashboardTokenError("forbidden", f"the user lacks the {required_permission} permission")
    return claims
