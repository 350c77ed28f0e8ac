"""Saleor's doors into the app: manifest, install handshake, webhooks. Thin: parse, call a service, answer."""

from __future__ import annotations

import json

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from saleor_app.context import AppContext
from saleor_app.dependencies import get_context, read_limited_body
from saleor_app.errors import BadRequest
from saleor_app.saleor.manifest import APP_DELETED, ORDER_CONFIRMED, WEBHOOKS, WebhookDefinition, build_manifest
from saleor_app.storage.models import Installation

router = APIRouter()


@router.get("/api/manifest")
async def manifest(ctx: AppContext = Depends(get_context)) -> JSONResponse:
    return JSONResponse(build_manifest(ctx.settings.app_url))


@router.post("/api/register")
async def register(
    request: Request,
    ctx: AppContext = Depends(get_context),
) -> JSONResponse:
    body = await read_limited_body(request, 64 * 1024)
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    # Checks run in the SDK's order: Saleor-Api-Url, allow-list, then the body's token.
    token = data.get("auth_token") if isinstance(data, dict) else None
    await ctx.installations.register(request.headers, token if isinstance(token, str) else None)
    return JSONResponse({"success": True})


def _check_event(request: Request, expected: str) -> None:
    event = (request.headers.get("saleor-event") or request.headers.get("x-saleor-event") or "").lower()
    if event != expected:
        raise BadRequest(f"Expected Saleor-Event {expected!r}, got {event or 'none'!r}.", code="WRONG_EVENT")


async def handle_order_confirmed(ctx: AppContext, installation: Installation, body: bytes) -> dict:
    outcome = await ctx.intake.receive_order_confirmed(installation, body)
    return {"success": True, "outcome": outcome.value}


async def handle_app_deleted(ctx: AppContext, installation: Installation, body: bytes) -> dict:
    outcome = await ctx.installations.app_deleted(installation, body)
    ctx.metrics.webhooks_received.labels("app_deleted", outcome).inc()
    return {"success": True, "outcome": outcome}


# Every webhook of the manifest (saleor/manifest.py WEBHOOKS) and the use case that takes it once it is verified.
WEBHOOK_HANDLERS = {ORDER_CONFIRMED: handle_order_confirmed, APP_DELETED: handle_app_deleted}


def _webhook_endpoint(hook: WebhookDefinition, handler):  # type: ignore[no-untyped-def]
    # A plain Starlette endpoint, not a FastAPI route: a webhook needs no dependency resolution, and on the busiest
    # path of the app FastAPI's per-request machinery cost about as much as the rest of the request. Errors raised
    # here still reach the app's exception handlers (errors.py), as from any route.
    async def endpoint(request: Request) -> Response:
        ctx: AppContext = request.app.state.ctx
        body = await read_limited_body(request, ctx.settings.max_webhook_body_bytes)
        _check_event(request, hook.header_event)
        installation = await ctx.installations.verify_webhook(request.headers, body)
        return JSONResponse(await handler(ctx, installation, body))

    endpoint.__name__ = f"webhook_{hook.event.lower()}"
    return endpoint


# path -> endpoint of every webhook: routes of the router, and called directly by the app (app.py) for a POST.
WEBHOOK_ENDPOINTS = {hook.path: _webhook_endpoint(hook, WEBHOOK_HANDLERS[hook]) for hook in WEBHOOKS}
for _path, _endpoint in WEBHOOK_ENDPOINTS.items():
    router.add_route(_path, _endpoint, methods=["POST"], include_in_schema=False)
