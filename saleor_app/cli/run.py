"""Long-running roles, the schema and the container's health: `serve`, `worker`, `migrate`, `healthcheck`."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Optional

import typer

from saleor_app.cli.common import check_database_or_exit, console, load_checked_settings, run_with_context

log = logging.getLogger("saleor_app")


def serve(
    host: str = typer.Option("0.0.0.0", metavar="ADDRESS",
                             help="Network interface to listen on; 127.0.0.1 keeps the app to this machine."),
    port: Optional[int] = typer.Option(None, metavar="PORT", min=0, max=65535, show_default=False,
                                       help="TCP port to listen on. Default: the PORT variable, else 8000."),
    worker: bool = typer.Option(True, "--worker/--no-worker",
                                help="Run the delivery worker in this process (the default), or not: with "
                                     "--no-worker, run `worker` processes beside it (PostgreSQL)."),
) -> None:
    """Serve the app: manifest, install handshake, webhooks, the settings page and API, health and metrics.

    Migrates the database first. With APP_URL unset, the app announces itself as http://localhost:PORT. At start
    it logs the manifest URL to paste into the Saleor dashboard. SIGTERM stops it gracefully (exit 0).

    \b
    Examples:
      saleor-vtmarketing serve
      PORT=8080 saleor-vtmarketing serve
      saleor-vtmarketing serve --host 127.0.0.1 --port 9000 --no-worker
    """
    import uvicorn

    from saleor_app.app import create_app
    from saleor_app.cli.http_server import HttpServer
    from saleor_app.saleor.manifest import manifest_url

    settings = load_checked_settings(lock_database=True)
    if port is not None:
        settings = settings.with_port(port)
    check_database_or_exit(settings)
    url = manifest_url(settings.app_url)

    def announce(listen_host: str, listen_port: int) -> None:
        log.info("listening on %s:%d; install the app by pasting the manifest URL %s into the Saleor dashboard "
                 "(Extensions → Add Extension → Install from manifest; older dashboards: Apps → Install external app)",
                 listen_host, listen_port, url)
        if not settings.app_url_given:
            log.warning("APP_URL is not set: the manifest names %s, which only a Saleor on this machine can reach; "
                        "set APP_URL to the app's public address", settings.app_url)

    config = uvicorn.Config(create_app(settings, run_worker=worker, migrate=False), host=host, port=settings.port,
                            log_level=settings.log_level.lower(), access_log=False, timeout_graceful_shutdown=25,
                            log_config=None)  # uvicorn's lines go through our handler (JSON with LOG_FORMAT=json)
    server = HttpServer(config, on_listening=announce, freeze_heap=True)
    server.run()
    if not server.started:
        raise typer.Exit(3)  # uvicorn's code for "could not start" (its reason is logged above)


def migrate() -> None:
    """Create the database schema, or upgrade it to this version's; safe to run again.

    `serve` and `worker` migrate at start too; run it alone as a one-shot step before a rolling upgrade.

    \b
    Example:
      saleor-vtmarketing migrate
    """
    settings = load_checked_settings()

    async def done(ctx) -> None:  # type: ignore[no-untyped-def]
        console.print("database is up to date")

    run_with_context(settings, done)


def worker_command(
    concurrency: Optional[int] = typer.Option(None, metavar="N", min=1, max=256, show_default=False,
                                              help="Deliveries in flight at once. Default: DELIVERY_CONCURRENCY (64)."),
    http_port: Optional[int] = typer.Option(None, metavar="PORT", min=1, max=65535, show_default=False,
                                            help="Also serve this worker's /healthz, /readyz and /metrics on this "
                                                 "port, for probes and Prometheus. Default: no HTTP."),
    host: str = typer.Option("0.0.0.0", metavar="ADDRESS", help="Network interface for --http-port."),
) -> None:
    """Run a delivery worker alone: it sends stored orders to VTmarketing and retries failures.

    For scale-out on PostgreSQL, beside `serve --no-worker`: run as many as you like, they share the queue
    without sending an order twice. On SQLite, `serve` already runs the worker: do not start one beside it.
    SIGTERM lets the deliveries in flight finish (up to 20 s), then exits 0.

    \b
    Examples:
      saleor-vtmarketing worker
      saleor-vtmarketing worker --concurrency 32 --http-port 9100
    """
    from saleor_app.app import STOPPING_WORKER
    from saleor_app.heap import freeze_start_up_objects
    from saleor_app.worker_runtime import build_worker

    settings = load_checked_settings(lock_database=True)
    if concurrency is not None:  # the VTmarketing client sizes its pools for it too
        settings = settings.model_copy(update={"delivery_concurrency": concurrency})

    async def run(ctx) -> None:  # type: ignore[no-untyped-def]
        worker = build_worker(ctx)
        server = _worker_http_server(ctx, host, http_port) if http_port else None
        server_task = asyncio.create_task(server._serve()) if server else None
        loop = asyncio.get_running_loop()

        def stop(sig: signal.Signals) -> None:
            worker.stop()
            log.info("%s: %s", sig.name, STOPPING_WORKER)

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop, sig)
        freeze_start_up_objects()  # full collections then skip them (heap.py)
        try:
            await worker.run()
        finally:
            if server is not None and server_task is not None:
                server.should_exit = True
                await server_task

    run_with_context(settings, run)


def _worker_http_server(ctx, host: str, port: int):  # type: ignore[no-untyped-def]
    import uvicorn

    from saleor_app.cli.http_server import HttpServer
    from saleor_app.observability import create_worker_http_app

    config = uvicorn.Config(create_worker_http_app(ctx), host=host, port=port, log_config=None, access_log=False,
                            lifespan="off")
    # Served with `_serve()`, not `serve()`: the worker owns SIGTERM (finish in-flight deliveries, then stop).
    return HttpServer(config)


def healthcheck(
    port: Optional[int] = typer.Option(None, metavar="PORT", min=1, max=65535, show_default=False,
                                       help="Probe this port. Default: the port `serve` (or `worker --http-port`) "
                                            "of this machine listens on, else PORT, else 8000."),
    timeout: float = typer.Option(4.0, metavar="SECONDS", min=0.1, help="Give up after this long."),
) -> None:
    """Exit 0 if this machine's app answers GET /healthz with 200, else 1: the image's HEALTHCHECK.

    It finds the port the server really listens on (`serve --port 9000` stays healthy). Liveness only: a
    database outage does not make the app unhealthy (that is /readyz's business), so it is not restarted for it.

    \b
    Example:
      saleor-vtmarketing healthcheck && echo alive
    """
    import os

    import httpx

    from saleor_app.cli.http_server import read_listen_file

    if port is not None:
        host = "127.0.0.1"
    else:
        host, port = read_listen_file() or ("127.0.0.1", int(os.environ.get("PORT") or 8000))
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}/healthz"
    try:
        status = httpx.get(url, timeout=timeout).status_code
    except httpx.HTTPError as exc:
        typer.echo(f"unhealthy: {url}: {type(exc).__name__}", err=True)
        raise typer.Exit(1) from None
    if status != 200:
        typer.echo(f"unhealthy: {url} answered {status}", err=True)
        raise typer.Exit(1)
    typer.echo(f"healthy: {url}")


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command("worker")(worker_command)
    app.command()(migrate)
    app.command()(healthcheck)
