"""The FastAPI app factory: wires routers, error handling, the context and (optionally) the in-process worker."""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from typing import AsyncIterator

from collections.abc import Awaitable, Callable

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from saleor_app import __version__
from saleor_app.config import Settings, load_settings
from saleor_app.context import AppContext
from saleor_app.errors import error_response, install_error_handlers

log = logging.getLogger(__name__)

STOPPING_WORKER = "stopping the delivery worker: the deliveries in flight may finish (up to 20 s)"


class SaleorApp(FastAPI):
    """FastAPI, except that a POST to one of `direct_endpoints` (Saleor's webhooks: every confirmed order comes
    through one) is answered by its endpoint at once, without FastAPI's middleware stack and router, which cost
    about as much CPU as the webhook's own work. Their errors get the answers the app's exception handlers give
    (errors.error_response); other methods on those paths go through the router as usual (405)."""

    def __init__(self, *args, direct_endpoints: dict[str, Callable[[Request], Awaitable[Response]]], **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.direct_endpoints = direct_endpoints

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = self.direct_endpoints.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if endpoint is None:
            await super().__call__(scope, receive, send)
            return
        scope["app"] = self
        request = Request(scope, receive)
        try:
            response = await endpoint(request)
        except Exception as exc:
            handled = await error_response(request, exc)
            if handled is None:
                raise  # a bug: the server logs it and answers 500
            response = handled
        await response(scope, receive, send)


def create_app(settings: Settings | None = None, *, run_worker: bool = True, migrate: bool = True) -> SaleorApp:
    settings = settings or load_settings()
    ctx = AppContext.create(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if migrate:
            await ctx.db.migrate()
        worker_task = intake_first_task = None
        if run_worker:
            from saleor_app.delivery.intake_first import IntakeFirst
            from saleor_app.worker_runtime import build_worker

            worker = build_worker(ctx)
            app.state.worker = worker
            worker_task = asyncio.create_task(worker.run())
            # The worker shares this loop with the webhooks: it never starves them (delivery/intake_first.py).
            intake_first_task = asyncio.create_task(IntakeFirst(worker, ctx.intake).run())
        try:
            yield
        finally:
            if worker_task is not None:
                intake_first_task.cancel()
                app.state.worker.stop()
                log.info(STOPPING_WORKER)
                await worker_task
                await asyncio.gather(intake_first_task, return_exceptions=True)
            await ctx.aclose()

    from saleor_app.feed.router import router as feed_router
    from saleor_app.observability import router as observability_router
    from saleor_app.saleor.router import WEBHOOK_ENDPOINTS
    from saleor_app.saleor.router import router as saleor_router

    from saleor_app.settings.router import router as settings_router
    from saleor_app.web.router import router as public_router

    app = SaleorApp(title="saleor-vtmarketing", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                    direct_endpoints=WEBHOOK_ENDPOINTS)
    app.state.ctx = ctx
    install_error_handlers(app)
    app.include_router(saleor_router)
    app.include_router(observability_router)
    app.include_router(settings_router)  # the settings API and the dashboard page
    app.include_router(feed_router)  # the product feed VTmarketing fetches
    app.include_router(public_router)  # the home page, the docs and the logo
    return app
