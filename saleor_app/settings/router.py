"""The dashboard's doors into the app: the settings page (`GET /app` and its `/static/` files) and the settings API
(`POST /graphql`, authenticated by the dashboard token). Thin: authenticate, hand over to the schema, answer."""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from typing import Any

from cross_web import HTTPException as StrawberryHTTPException
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from strawberry.fastapi import GraphQLRouter

from saleor_app import __version__
from saleor_app.dependencies import read_limited_body
from saleor_app.errors import AppError, NotFound
from saleor_app.settings.auth import DashboardUser, dashboard_user
from saleor_app.settings.schema import SettingsContext, schema

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
STATIC_DIR = WEB_DIR / "static"
STATIC_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".woff2": "font/woff2",
}

# The page is framed by Saleor dashboards, which live on any origin (self-hosted or saleor.cloud, with custom
# domains), so `frame-ancestors *`: the page itself holds nothing without the dashboard's token, and a token is only
# accepted from the frame's parent when its origin is `document.referrer`'s. Everything else is locked down: no
# inline script or style, same-origin fetches only, no forms posting anywhere, no plugins, no <base> tricks.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "form-action 'none'",
        "base-uri 'none'",
        "object-src 'none'",
        "frame-ancestors *",
    ]
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Cache-Control": "no-store",
}

router = APIRouter()

# The page's requests are a few kilobytes; an API key is at most 512 characters.
MAX_SETTINGS_BODY_BYTES = 1024 * 1024


# --- the settings API -------------------------------------------------------------------------------------------


async def settings_context(
    request: Request, response: Response, user: DashboardUser = Depends(dashboard_user)
) -> SettingsContext:
    """Runs before any GraphQL parsing: an unauthenticated request is answered 401/403 by the app's error handler."""
    response.headers["Cache-Control"] = "no-store"
    return SettingsContext(request.app.state.ctx, user)


class GraphQLRequestError(AppError):
    """A request strawberry cannot run at all (not UTF-8 JSON, no query, variables not an object, unknown operation)."""

    code = "BAD_GRAPHQL_REQUEST"


class SettingsGraphQLRouter(GraphQLRouter):
    """strawberry answers such requests with plain text; re-raised as an AppError, the app's error handler answers
    them like every other refusal: `{"error": {"code", "message"}}` JSON with the same status."""

    async def run(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(request, Request) and request.method == "POST":
            await _check_json_body(request)
        try:
            response = await super().run(request, *args, **kwargs)
        except StrawberryHTTPException as exc:
            error = GraphQLRequestError(exc.reason)
            error.status_code = exc.status_code
            raise error from None
        context = kwargs.get("context")
        if isinstance(context, SettingsContext) and context.refusal is not None:
            raise context.refusal  # e.g. 429: answered in the app's error shape, which the page shows
        return response


async def _check_json_body(request: Request) -> None:
    """What strawberry does not check itself and crashes on (a 500): a body that is not UTF-8, or JSON that is not
    an object (`null`, `1`). A list is left to strawberry, which says batching is not enabled."""
    # Read once, bounded, before strawberry parses anything; strawberry then reads the same bytes.
    request._body = await read_limited_body(request, MAX_SETTINGS_BODY_BYTES)
    content_type = request.headers.get("content-type", "")
    if content_type and "json" not in content_type.lower():
        return
    try:
        data = json.loads(await request.body())
    except ValueError:  # UnicodeDecodeError included
        raise GraphQLRequestError("Unable to parse request body as JSON.") from None
    if not isinstance(data, (dict, list)):
        raise GraphQLRequestError("The request body must be a JSON object with a `query`.")


graphql_router: GraphQLRouter = SettingsGraphQLRouter(
    schema,
    path="/graphql",
    graphql_ide=None,  # no GraphiQL: the endpoint is only for the page (and it needs the dashboard token anyway)
    allow_queries_via_get=False,
    context_getter=settings_context,
    subscription_protocols=(),
    include_in_schema=False,
)
router.include_router(graphql_router)


# --- the page ---------------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _templates() -> Environment:
    return Environment(
        loader=FileSystemLoader(str(WEB_DIR / "templates")),
        autoescape=select_autoescape(["html"]),
        auto_reload=False,
    )


@lru_cache(maxsize=64)
def _static_file(name: str) -> tuple[bytes, str, str]:
    """(content, content type, short hash) of a file in web/static/ (or a folder of it, like fonts/) of a served
    type; NotFound for anything else, including any path that leads outside or through a hidden name."""
    if "\x00" in name:  # no file has one, and resolving it would raise
        raise NotFound("No such file.")
    path = (STATIC_DIR / name).resolve()
    if (
        not path.is_relative_to(STATIC_DIR)
        or any(part.startswith(".") for part in path.relative_to(STATIC_DIR).parts)
        or path.suffix not in STATIC_TYPES
        or not path.is_file()
    ):
        raise NotFound("No such file.")
    content = path.read_bytes()
    return content, STATIC_TYPES[path.suffix], hashlib.sha256(content).hexdigest()[:12]


def _asset(base_path: str, name: str) -> str:
    """A cache-busting URL of a static file: its content hash in the query string."""
    return f"{base_path}/static/{name}?v={_static_file(name)[2]}"


@router.get("/app", response_class=HTMLResponse, include_in_schema=False)
async def settings_page(request: Request) -> HTMLResponse:
    app_url = request.app.state.ctx.settings.app_url.rstrip("/")
    base_path = urlsplit(app_url).path.rstrip("/")
    html = _templates().get_template("app.html").render(
        app_url=app_url,
        manifest_url=f"{app_url}/api/manifest",
        graphql_path=f"{base_path}/graphql",
        css_url=_asset(base_path, "app.css"),
        js_url=_asset(base_path, "app.js"),
        poll_ms=int(request.app.state.ctx.settings.page_poll_seconds * 1000),
        feed_js_url=_asset(base_path, "feed.js"),  # the product feed section of each channel card
        version=__version__,
    )
    return HTMLResponse(html, headers=PAGE_HEADERS)


@router.get("/static/{name:path}", include_in_schema=False)
async def static_file(name: str) -> Response:
    content, media_type, _ = _static_file(name)
    return Response(
        content,
        media_type=media_type,
        headers={"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"},
    )
