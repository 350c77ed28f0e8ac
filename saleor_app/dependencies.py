"""FastAPI dependencies: the process's AppContext and the services built on it."""

from __future__ import annotations

from fastapi import Request

from saleor_app.context import AppContext
from saleor_app.saleor.installations import InstallationService


# `async def` although they do not await: FastAPI runs a plain `def` dependency in its thread pool, which cost
# every webhook two thread hand-offs for two attribute reads.
async def get_context(request: Request) -> AppContext:
    return request.app.state.ctx


async def get_installation_service(request: Request) -> InstallationService:
    return request.app.state.installations
