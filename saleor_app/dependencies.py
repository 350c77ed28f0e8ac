"""FastAPI dependencies: the process's AppContext (its services hang off it, e.g. `ctx.installations`)."""

from __future__ import annotations

from fastapi import Request

from saleor_app.context import AppContext


# `async def` although it does not await: FastAPI runs a plain `def` dependency in its thread pool, a thread
# hand-off on every webhook for one attribute read.
async def get_context(request: Request) -> AppContext:
    return request.app.state.ctx

