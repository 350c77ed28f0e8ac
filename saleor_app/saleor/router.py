"""Saleor's doors into the app: manifest, install handshake, webhooks. Thin: parse, call a service, answer."""

from __future__ import annotations

import json

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from saleor_app.context import AppContext
from saleor_app.delivery.intake import receive_order_confirmed
from saleor_app.dependencies import get_context, get_installation_service
from saleor_app.errors import BadRequest, PayloadTooLarge
from saleor_app.saleor.installations import InstallationService
from saleor_app.saleor.manifest import APP_DELETED, ORDER_CONFIRMED, build_manifest

router = APIRouter()


async def read_limited_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"Body larger than {limit} bytes.")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"Body larger than {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


@router.get("/api/manifest")
async def manifest(ctx: AppContext = Depends(get_context)) -> JSONResponse:
    return JSONResponse(build_manifest(ctx.settings.app_url))


@router.post("/api/register")
async def register(
    request: Request,
    ctx: AppContext = Depends(get_context),
    installations: InstallationService = Depends(get_installation_service),
) -> JSONResponse:
    body = await read_limited_body(request, 64 * 1024)
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    # Checks run in the SDK's order: Saleor-Api-Url, allow-list, then the body's token.
    token = data.get("auth_token") if isinstance(data, dict) else None
    await installations.register(request.headers, token if isinstance(token, str) else None)
    return JSONResponse({"success": True})


def _check_event(request: Request, expected: str) -> None:
    event = (request.headers.get("saleor-event") or request.headers.get("x-saleor-event") or "").lower()
    if event != expected:
        raise BadRequest(f"Expected Saleor-Event {expected!r}, got {event or 'none'!r}.", code="WRONG_EVENT")


@router.post(ORDER_CONFIRMED.path)
async def order_confirmed(
    request: Request,
    ctx: AppContext = Depends(get_context),
    installations: InstallationService = Depends(get_installation_service),
) -> JSONResponse:
    body = await read_limited_body(request, ctx.settings.max_webhook_body_bytes)
    _check_event(request, ORDER_CONFIRMED.header_event)
    installation = await installations.verify_webhook(request.headers, body)
    outcome = await receive_order_confirmed(ctx, installation, body)
    return JSONResponse({"success": True, "outcome": outcome.value})


@router.post(APP_DELETED.path)
async def app_deleted(
    request: Request,
    ctx: AppContext = Depends(get_context),
    installations: InstallationService = Depends(get_installation_service),
) -> JSONResponse:
    body = await read_limited_body(request, ctx.settings.max_webhook_body_bytes)
    _check_event(request, APP_DELETED.header_event)
    installation = await installations.verify_webhook(request.headers, body)
    await installations.mark_uninstalled(installation, "Saleor reported the app deleted (APP_DELETED)")
    ctx.metrics.webhooks_received.labels("app_deleted", "stored").inc()
    return JSONResponse({"success": True})
