"""Domain errors and the one place that turns them into HTTP answers."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger(__name__)


class AppError(Exception):
    """An error with a message a person understands. Subclasses say which HTTP answer it deserves."""

    status_code = 400
    code = "BAD_REQUEST"
    headers: dict[str, str] | None = None  # extra response headers (e.g. Retry-After on a 503)

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class BadRequest(AppError):
    status_code = 400
    code = "BAD_REQUEST"


class Unauthorized(AppError):
    status_code = 401
    code = "UNAUTHORIZED"


class Forbidden(AppError):
    status_code = 403
    code = "FORBIDDEN"


class NotFound(AppError):
    status_code = 404
    code = "NOT_FOUND"


class PayloadTooLarge(AppError):
    status_code = 413
    code = "PAYLOAD_TOO_LARGE"


class TooManyRequests(AppError):
    status_code = 429
    code = "RATE_LIMITED"


class ServiceUnavailable(AppError):
    """Something on our side cannot take the request now; the caller should retry (Saleor does for 5xx)."""

    status_code = 503
    code = "SERVICE_UNAVAILABLE"


def _where(request: Request) -> str:
    """The route's template (`/api/feeds/{token}/{filename}`), not the path: a path may hold a secret (a feed URL's
    token), and logs must never."""
    route = request.scope.get("route")
    return getattr(route, "path", None) or request.url.path


# Saleor's doors: a refusal there may mean an order or an installation lost, so each one is logged with its reason
# and the Saleor it names (never a token: those travel in the body and in Authorization, which are not logged).
SALEOR_PATHS = ("/api/register", "/api/webhooks/")


def _log_refusal(request: Request, exc: AppError) -> None:
    if exc.status_code >= 500:
        log.warning("answering %s %s: %s", exc.status_code, _where(request), exc.message)
    elif request.url.path.startswith(SALEOR_PATHS):
        saleor = (request.headers.get("saleor-api-url") or request.headers.get("saleor-domain") or "no Saleor-Api-Url")[:300]
        verb = "register refused" if request.url.path == "/api/register" else "webhook refused"
        log.warning("%s for %s: %s %s: %s", verb, saleor, exc.status_code, exc.code, exc.message)


# `{"error": {"code", "message"}}` is the shape Saleor shows in the dashboard when the install POST fails.
async def app_error_response(request: Request, exc: AppError) -> JSONResponse:
    _log_refusal(request, exc)
    return JSONResponse(
        {"success": False, "error": {"code": exc.code, "message": exc.message}}, status_code=exc.status_code,
        headers=exc.headers,
    )


# The database failing under any request (unreachable, read-only, full): "not now", so callers retry (Saleor
# does on 5xx), rather than a bare 500. A refused connection surfaces from asyncpg as a plain OSError.
async def database_unavailable_response(request: Request, exc: Exception) -> JSONResponse:
    log.error("answering 503 %s: %s", _where(request), type(exc).__name__)  # its text may quote stored data
    error = ServiceUnavailable("The app cannot reach its database right now; try again shortly.")
    return JSONResponse({"success": False, "error": {"code": error.code, "message": error.message}}, status_code=503)


# Which answer each kind of error gets: the app's exception handlers, and the webhooks that the app calls without
# its router (app.py) through error_response. The first class in the error's MRO found here wins, as in Starlette.
ERROR_ANSWERS: dict[type[Exception], Callable[[Request, Any], Awaitable[JSONResponse]]] = {
    AppError: app_error_response,
    SQLAlchemyError: database_unavailable_response,
    OSError: database_unavailable_response,
}


async def error_response(request: Request, exc: Exception) -> JSONResponse | None:
    """The answer the app's handlers give to `exc`; None when none takes it (a bug: the server answers 500)."""
    for kind in type(exc).__mro__:
        answer = ERROR_ANSWERS.get(kind)
        if answer is not None:
            return await answer(request, exc)
    return None


def install_error_handlers(app: FastAPI) -> None:
    for kind, answer in ERROR_ANSWERS.items():
        app.add_exception_handler(kind, answer)
