"""Health, readiness and Prometheus metrics endpoints."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from saleor_app.context import AppContext
from saleor_app.dependencies import get_context
from saleor_app.errors import Unauthorized
from saleor_app.storage.models import utcnow
from saleor_app.storage.repositories import DeliveryRepository

router = APIRouter()


@router.get("/healthz")
async def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(ctx: AppContext = Depends(get_context)) -> JSONResponse:
    try:
        await ctx.db.ping()
        current = await ctx.db.migrations_current()
    except Exception as exc:
        return JSONResponse({"status": "unavailable", "database": f"unreachable: {type(exc).__name__}"}, status_code=503)
    if not current:
        return JSONResponse({"status": "unavailable", "database": "migrations not applied"}, status_code=503)
    return JSONResponse({"status": "ready"})


@router.get("/metrics")
async def metrics(request: Request, ctx: AppContext = Depends(get_context)) -> Response:
    token = ctx.settings.metrics_token
    if token:
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise Unauthorized("Metrics need `Authorization: Bearer <METRICS_TOKEN>`.")
    async with ctx.db.session() as session:
        depth, oldest = await DeliveryRepository(session).queue_stats()
    ctx.metrics.queue_depth.set(depth)
    ctx.metrics.oldest_pending_age.set((utcnow() - oldest).total_seconds() if oldest else 0)
    return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def create_worker_http_app(ctx: AppContext):  # type: ignore[no-untyped-def]
    """What a standalone `worker` serves when given a port: its own health and metrics (its delivery counters and
    VTmarketing timings live in its process, so no web replica can report them)."""
    from fastapi import FastAPI

    from saleor_app.errors import install_error_handlers

    app = FastAPI(title="saleor-vtmarketing worker", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.ctx = ctx
    install_error_handlers(app)
    app.include_router(router)
    return app
