"""The FastAPI app factory: wires routers, error handling, the context and (optionally) the in-process worker."""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from typing import AsyncIterator

from fastapi import FastAPI

from saleor_app import __version__
from saleor_app.config import Settings, load_settings
from saleor_app.context import AppContext
from saleor_app.errors import install_error_handlers

log = logging.getLogger(__name__)

STOPPING_WORKER = "stopping the delivery worker: the deliveries in flight may finish (up to 20 s)"


def create_app(settings: Settings | None = None, *, run_worker: bool = True, migrate: bool = True) -> FastAPI:
    settings = settings or load_settings()
    ctx = AppContext.create(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if migrate:
            await ctx.db.migrate()
        worker_task = None
        if run_worker:
            from saleor_app.worker_runtime import build_worker

            worker = build_worker(ctx)
            app.state.worker = worker
            worker_task = asyncio.create_task(worker.run())
        try:
            yield
        finally:
            if worker_task is not None:
                app.state.worker.stop()
                log.info(STOPPING_WORKER)
                await worker_task
            await ctx.aclose()

    app = FastAPI(title="saleor-vtmarketing", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.ctx = ctx
    install_error_handlers(app)

    from saleor_app.feed.router import router as feed_router
    from saleor_app.observability import router as observability_router
    from saleor_app.saleor.router import router as saleor_router

    from saleor_app.settings.router import router as settings_router
    from saleor_app.web.router import router as public_router

    app.include_router(saleor_router)
    app.include_router(observability_router)
    app.include_router(settings_router)  # the settings API and the dashboard page
    app.include_router(feed_router)  # the product feed VTmarketing fetches
    app.include_router(public_router)  # the home page, the docs and the logo
    return app
