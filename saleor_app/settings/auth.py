"""Who is calling the settings API: the Saleor dashboard's token, checked the way Saleor's app SDK does, plus more.

The page inside the dashboard sends the AppBridge token as `Authorization-Bearer: <JWT>` (the SDK's
`createAuthenticatedFetch`; `Authorization: Bearer <JWT>` is accepted too) and the Saleor it belongs to as
`Saleor-Api-Url`. The order of the checks matters:

1. The Saleor API URL must be one that installed the app and is still active. It is looked up in our database
   *before* the token is read, so a request naming an attacker's URL never makes us fetch keys from it.
2. The JWT must be signed (RS256 only) by that Saleor's key. An unknown kid or a bad signature refetches the JWKS
   once (rate-limited), because Saleor rotates its single key without overlap.
3. It must not be expired, be issued for our app, by that Saleor (`iss`), for a third-party app (`type`), to a
   user holding MANAGE_APPS: Saleor lets any staff user open an app page, so the app enforces who may configure it.

Every refusal is an AppError subclass with its own code, answered by the app's one error handler (401, or 403 for
a missing permission). Messages never contain the token.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from saleor_app.context import AppContext
from saleor_app.errors import Forbidden, Unauthorized
from saleor_app.saleor.signature import DashboardTokenError, verify_dashboard_token
from saleor_app.storage.models import Installation
from saleor_app.storage.repositories import InstallationRepository

log = logging.getLogger(__name__)

REQUIRED_PERMISSION = "MANAGE_APPS"
MAX_TOKEN_LENGTH = 16 * 1024  # a Saleor token with every permission is ~2 kB


class MissingToken(Unauthorized):
    code = "MISSING_TOKEN"


class MissingApiUrl(Unauthorized):
    code = "MISSING_SALEOR_API_URL"


class NotInstalled(Unauthorized):
    code = "NOT_INSTALLED"


class AppUninstalled(Unauthorized):
    code = "APP_UNINSTALLED"


class InvalidToken(Unauthorized):
    """The token is refused; `code` names the check that failed (TOKEN_EXPIRED, TOKEN_WRONG_APP, ...)."""

    code = "INVALID_TOKEN"


class MissingPermission(Forbidden):
    code = "MISSING_PERMISSION"


# DashboardTokenError.kind -> (code, message a merchant or developer can act on)
_TOKEN_ERRORS: dict[str, tuple[str, str]] = {
    "malformed": ("TOKEN_MALFORMED", "The dashboard token is not a valid JWT."),
    "expired": ("TOKEN_EXPIRED", "The dashboard token has expired. Reload the page in the Saleor dashboard."),
    "unknown_kid": (
        "TOKEN_UNKNOWN_KEY",
        "The dashboard token is signed by a key this Saleor does not publish.",
    ),
    "invalid_signature": ("TOKEN_INVALID_SIGNATURE", "The dashboard token's signature is not valid."),
    "wrong_app": ("TOKEN_WRONG_APP", "The dashboard token was issued for another app."),
    "wrong_issuer": ("TOKEN_WRONG_ISSUER", "The dashboard token was issued by another Saleor than Saleor-Api-Url."),
    "wrong_type": ("TOKEN_WRONG_TYPE", "The dashboard token is not a third-party app token."),
}


@dataclass(frozen=True)
class DashboardUser:
    """An authenticated staff user of one installation, as the verified token describes them."""

    installation: Installation
    claims: dict[str, Any]

    @property
    def email(self) -> str | None:
        email = self.claims.get("email")
        return email if isinstance(email, str) else None

    @property
    def user_id(self) -> str | None:
        user_id = self.claims.get("user_id")
        return user_id if isinstance(user_id, str) else None


def token_from(headers: Any) -> str | None:
    """`Authorization-Bearer: <jwt>` (Saleor's SDK) or `Authorization: Bearer <jwt>`."""
    value = (headers.get("authorization-bearer") or "").strip()
    if value.lower().startswith("bearer "):
        value = value[7:].strip()
    if not value:
        scheme, _, credentials = (headers.get("authorization") or "").strip().partition(" ")
        if scheme.lower() == "bearer":
            value = credentials.strip()
    return value or None


async def authenticate(ctx: AppContext, headers: Any) -> DashboardUser:
    """The verified dashboard user for these request headers, or an AppError (401/403) saying why not."""
    token = token_from(headers)
    if token is None:
        raise MissingToken("Missing dashboard token: send it as Authorization-Bearer (or Authorization: Bearer).")
    if len(token) > MAX_TOKEN_LENGTH:
        raise InvalidToken("The dashboard token is not a valid JWT.", code="TOKEN_MALFORMED")
    api_url = (headers.get("saleor-api-url") or "").strip()
    if not api_url:
        raise MissingApiUrl("Missing Saleor-Api-Url header.")

    async with ctx.db.session() as session:
        installation = await InstallationRepository(session).by_api_url(api_url)
    if installation is None:
        raise NotInstalled("This Saleor has not installed the app.")
    if not installation.is_active:
        raise AppUninstalled("The app is no longer installed in this Saleor; install it again.")

    def check(jwks_json: str) -> dict[str, Any]:
        return verify_dashboard_token(
            token,
            jwks_json=jwks_json,
            app_id=installation.app_id,
            saleor_api_url=installation.saleor_api_url,
            required_permission=REQUIRED_PERMISSION,
        )

    try:
        claims = await ctx.installations.verify_with_fresh_keys(installation, check)
    except DashboardTokenError as exc:
        log.info("dashboard token refused for installation %s: %s", installation.id, exc.kind)
        if exc.kind == "forbidden":
            raise MissingPermission(
                f"Only staff members with the {REQUIRED_PERMISSION} permission can change this app's settings."
            ) from None
        code, message = _TOKEN_ERRORS.get(exc.kind, ("INVALID_TOKEN", "The dashboard token is not valid."))
        raise InvalidToken(message, code=code) from None
    return DashboardUser(installation=installation, claims=claims)


async def dashboard_user(request: Request) -> DashboardUser:
    """FastAPI dependency: the verified dashboard user of this request."""
    return await authenticate(request.app.state.ctx, request.headers)
