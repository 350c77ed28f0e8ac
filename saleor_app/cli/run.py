"""Long-running roles and the schema: `serve`, `worker`, `migrate`."""

from __future__ import annotations

import asyncio
import signal
from typing import Optional

import typer

from saleor_app.cli.common import console, load_checked_settings, run_with_context

def serve(
    host: str = typer.Option("0.0.0.0", help="Interface to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    worker: bool = typer.Option(True, "--worker/--no-worker", help="Run the delivery worker in this process."),
) -> None:
    """Serve the app (manifest, install, webhooks, settings page); runs migrations first."""
    import uvicorn

    from saleor_app.app import create_app

    settings = load_checked_settings()
    uvicorn.run(create_app(settings, run_worker=worker), host=host, port=port, log_level=settings.log_level.lower(),
                access_log=False, timeout_graceful_shutdown=25, log_config=None)  # uvicorn's lines use our handler


def migrate() -> None:
    """Create or upgrade the database schema."""
    settings = load_checked_settings()

    async def done(ctx) -> None:  # type: ignore[no-untyped-def]
        console.print("database is up to date")

    run_with_context(settings, done)


def worker_command(
    concurrency: Optional[int] = typer.Option(None, help="Deliveries in flight at once (default DELIVERY_CONCURRENCY)."),
    http_port: Optional[int] = typer.Option(None, help="Serve /healthz, /readyz and /metrics of this worker on this port."),
    host: str = typer.Option("0.0.0.0", help="Interface for --http-port."),
) -> None:
    """Run a delivery worker alone (scale-out on PostgreSQL: run as many as you like)."""
    from saleor_app.worker_runtime import build_worker

    settings = load_checked_settings()

    async def run(ctx) -> None:  # type: ignore[no-untyped-def]
        worker = build_worker(ctx, concurrency=concurrency)
        server = _worker_http_server(ctx, host, http_port) if http_port else None
        server_task = asyncio.create_task(server._serve()) if server else None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, worker.stop)
        try:
            await worker.run()
        finally:
            if server is not None and server_task is not None:
                server.should_exit = True
                await server_task

    run_with_context(settings, run)


def _worker_http_server(ctx, host: str, port: int):  # type: ignore[no-untyped-def]
    import uvicorn

    from saleor_app.observability import create_worker_http_app

    config = uvicorn.Config(create_worker_http_app(ctx), host=host, port=port, log_config=None, access_log=False, lifespan="off")
    # Served with `_serve()`, not `serve()`: the worker owns SIGTERM (finish in-flight deliveries, then stop).
    return uvicorn.Server(config)


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(migrate)
    app.command("worker")(worker_command)
