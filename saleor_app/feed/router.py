"""`GET /api/feeds/<token>/<channel>.csv`: the feed VTmarketing fetches. Thin: open the file, answer conditional
requests, stream it (gzip when asked). Errors (404, 503 + Retry-After) go through saleor_app/errors.py."""

from __future__ import annotations

import re

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import StreamingResponse

from saleor_app.context import AppContext
from saleor_app.dependencies import get_context
from saleor_app.errors import AppError
from saleor_app.feed.serving import FeedServer, accepts_gzip

router = APIRouter()
_SAFE_FILENAME = re.compile(r"[A-Za-z0-9._-]{1,255}")


@router.api_route("/api/feeds/{token}/{filename}", methods=["GET", "HEAD"], include_in_schema=False)
async def feed_file(token: str, filename: str, request: Request, ctx: AppContext = Depends(get_context)) -> Response:
    server = FeedServer(ctx.db)
    try:
        file = await server.open(token, filename)
    except AppError as exc:
        ctx.metrics.feed_requests.labels(str(exc.status_code)).inc()
        raise
    ctx.metrics.feed_rows.labels(str(file.installation_id), file.channel).set(file.rows)
    gzipped = accepts_gzip(request.headers.get("accept-encoding"))
    headers = {
        "ETag": file.etag(gzipped),
        "Last-Modified": file.last_modified,
        "Cache-Control": "no-cache",  # revalidate every time: the file changes with every build
        "Vary": "Accept-Encoding",
        "X-Content-Type-Options": "nosniff",
        "Content-Disposition": f'inline; filename="{_filename(file.channel)}"',
    }
    if file.not_modified(request.headers.get("if-none-match"), request.headers.get("if-modified-since")):
        ctx.metrics.feed_requests.labels("304").inc()
        return Response(status_code=304, headers=headers)
    ctx.metrics.feed_requests.labels("200").inc()
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    headers["Content-Length"] = str(file.gzip_bytes if gzipped else file.csv_bytes)
    if request.method == "HEAD":
        return Response(headers=headers, media_type="text/csv; charset=utf-8")
    body = server.gzip_chunks(file) if gzipped else server.csv_chunks(file)
    return StreamingResponse(body, headers=headers, media_type="text/csv; charset=utf-8")


def _filename(channel: str) -> str:
    name = f"{channel}.csv"
    return name if _SAFE_FILENAME.fullmatch(name) else "feed.csv"
