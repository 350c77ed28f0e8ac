"""The baseline: a bare Starlette endpoint that reads the webhook's body and answers 200, nothing else.

Served by uvicorn exactly like `saleor-vtmarketing serve` serves the app (uvicorn.run defaults: uvloop and
httptools when installed, access log off), so app/bare isolates what the app itself costs per webhook.

    python bench/bare_app.py --port 8001
"""

from __future__ import annotations

import argparse

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def webhook(request: Request) -> JSONResponse:
    await request.body()
    return JSONResponse({"success": True})


async def manifest(request: Request) -> JSONResponse:
    return JSONResponse({"name": "bare"})


app = Starlette(routes=[
    Route("/api/webhooks/order-confirmed", webhook, methods=["POST"]),
    Route("/api/manifest", manifest, methods=["GET"]),
])


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False, timeout_graceful_shutdown=25)
