"""FastAPI dependencies: the process's AppContext (its services hang off it, e.g. `ctx.installations`)."""

from __future__ import annotations

from fastapi import Request

from saleor_app.context import AppContext
from saleor_app.errors import PayloadTooLarge


# `async def` although it does not await: FastAPI runs a plain `def` dependency in its thread pool, a thread
# hand-off on every webhook for one attribute read.
async def get_context(request: Request) -> AppContext:
    return request.app.state.ctx



async def read_limited_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed `limit` bytes (declared or streamed):
    an oversized body is never read whole, let alone parsed."""
    declared = request.headers.get("content-length")
    if declared and declared.isascii() and declared.isdigit() and int(declared) > limit:  # "²".isdigit() too
        raise PayloadTooLarge(f"Body larger than {limit} bytes.")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"Body larger than {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)
