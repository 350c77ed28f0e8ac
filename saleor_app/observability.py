"""Health, readiness and Prometheus metrics endpoints."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from saleor_app.context import AppContext
from saleor_app.dependencies import get_context
from saleor_app.errors import Unauthorized
from saleor_app.storage.db import Database, describe_database_error
from saleor_app.storage.models import utcnow
from saleor_app.storage.repositories import DeliveryRepository, WriteProbeRepository

router = APIRouter()

# /readyz probes the database with a write when the app itself wrote nothing for this long.
WRITE_PROBE_AFTER_SECONDS = 5.0


@router.get("/healthz")
async def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(ctx: AppContext = Depends(get_context)) -> JSONResponse:
    """200 when this process can do its job: the database answers, is migrated, is the file it opened (SQLite) and
    takes writes; and the delivery worker of this process (if it runs one) makes progress. 503 says why not."""
    try:
        await ctx.db.ping()
        current = await ctx.db.migrations_current()
    except Exception as exc:
        return JSONResponse({"status": "unavailable", "database": f"unreachable: {type(exc).__name__}"}, status_code=503)
    if not current:
        return JSONResponse({"status": "unavailable", "database": "migrations not applied"}, status_code=503)
    problems: dict[str, str] = {}
    database = ctx.db.file_problem() or await _refused_writes(ctx.db)
    if database:
        problems["database"] = database
    worker = ctx.worker_health.problem() if ctx.worker_health is not None else None
    if worker:
        problems["worker"] = worker
    if problems:
        return JSONResponse({"status": "unavailable", **problems}, status_code=503)
    return JSONResponse({"status": "ready"})


async def _refused_writes(db: Database) -> str | None:
    """Why the database refuses writes, or None. Known for free from the app's own writes when one succeeded
    lately; otherwise (idle, or failing since) one probe write finds out."""
    since_ok = db.write_health.seconds_since_ok()
    if db.write_health.failing() is None and since_ok is not None and since_ok < WRITE_PROBE_AFTER_SECONDS:
        return None
    try:
        async with db.transaction() as session:
            await WriteProbeRepository(session).touch()
    except Exception as exc:  # noqa: BLE001 - whatever it is, the answer is "cannot write"
        return f"refuses writes: {describe_database_error(exc)}"
    return None


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
