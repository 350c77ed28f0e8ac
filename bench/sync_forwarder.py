"""The comparison: a synchronous forwarder, the way Saleor's Klaviyo/Segment apps handle ORDER_CONFIRMED.

It verifies nothing and stores nothing: it maps the webhook to an event and POSTs it to VTmarketing inside the
webhook request, answering Saleor only when VTmarketing has answered (so Saleor waits on the vendor, and an order
is lost if the vendor is down past Saleor's retries). Served by uvicorn like the app.

    VTMARKETING_API_URL=http://127.0.0.1:9000/v1/event/ python bench/sync_forwarder.py --port 8002
"""

from __future__ import annotations

import argparse
import json
import os

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

VTM_URL = os.environ.get("VTMARKETING_API_URL", "http://127.0.0.1:9/v1/event/")
API_KEY = os.environ.get("VTMARKETING_API_KEY", "sync-forwarder-key")
client = httpx.AsyncClient(timeout=10.0, limits=httpx.Limits(max_connections=256, max_keepalive_connections=64))


async def webhook(request: Request) -> JSONResponse:
    order = json.loads(await request.body())["order"]
    event = {
        "user": {"email": order["userEmail"]},
        "event": {"confirmation": {"generic": {"orderId": order["number"], "total": order["total"]["gross"]["amount"],
                                               "currency": order["total"]["gross"]["currency"]}}},
    }
    answer = await client.post(VTM_URL, json=event, headers={"Authorization": API_KEY})
    return JSONResponse({"success": answer.is_success}, status_code=200 if answer.is_success else 502)


async def manifest(request: Request) -> JSONResponse:
    return JSONResponse({"name": "sync-forwarder"})


app = Starlette(routes=[
    Route("/api/webhooks/order-confirmed", webhook, methods=["POST"]),
    Route("/api/manifest", manifest, methods=["GET"]),
])


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8002)
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False, timeout_graceful_shutdown=25)
