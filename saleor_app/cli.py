"""`saleor-vtmarketing`: run the app, run workers, migrate, and script channel settings and deliveries."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Awaitable, Callable, Optional, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from saleor_app.config import ConfigError, Settings, load_settings
from saleor_app.logs import configure_logging

app = typer.Typer(help="Saleor App that sends confirmed orders to VTmarketing.", no_args_is_help=True, add_completion=False)
channels_app = typer.Typer(help="Per-channel VTmarketing settings.", no_args_is_help=True)
deliveries_app = typer.Typer(help="The delivery log: list and resend.", no_args_is_help=True)
app.add_typer(channels_app, name="channels")
app.add_typer(deliveries_app, name="deliveries")
console = Console()
log = logging.getLogger("saleor_app")
T = TypeVar("T")


def _settings() -> Settings:
    try:
        settings = load_settings()
        settings.effective_secret_key()
    except ConfigError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    configure_logging(settings.log_level, settings.log_format)
    if not settings.allowed_url_patterns:
        log.warning(
            "ALLOWED_SALEOR_API_URLS is not set: ANY Saleor can install this app. "
            "Set it to your Saleor API URL(s), e.g. https://shop.example.com/graphql/"
        )
    return settings


def _with_context(settings: Settings, job: Callable[..., Awaitable[T]], *, migrate: bool = True) -> T:
    from saleor_app.context import AppContext

    async def main() -> T:
        ctx = AppContext.create(settings)
        try:
            if migrate:
                await ctx.db.migrate()
            return await job(ctx)
        finally:
            await ctx.aclose()

    return asyncio.run(main())


@app.command()
def serve(
    host: str = typer.Option("0.0.0.0", help="Interface to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    worker: bool = typer.Option(True, "--worker/--no-worker", help="Run the delivery worker in this process."),
) -> None:
    """Serve the app (manifest, install, webhooks, settings page); runs migrations first."""
    import uvicorn

    from saleor_app.app import create_app

    settings = _settings()
    uvicorn.run(create_app(settings, run_worker=worker), host=host, port=port, log_level=settings.log_level.lower(),
                access_log=False, timeout_graceful_shutdown=25, log_config=None)  # uvicorn's lines use our handler


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema."""
    settings = _settings()

    async def done(ctx) -> None:  # type: ignore[no-untyped-def]
        console.print("database is up to date")

    _with_context(settings, done)


@app.command("worker")
def worker_command(
    concurrency: Optional[int] = typer.Option(None, help="Deliveries in flight at once (default DELIVERY_CONCURRENCY)."),
    http_port: Optional[int] = typer.Option(None, help="Serve /healthz, /readyz and /metrics of this worker on this port."),
    host: str = typer.Option("0.0.0.0", help="Interface for --http-port."),
) -> None:
    """Run a delivery worker alone (scale-out on PostgreSQL: run as many as you like)."""
    from saleor_app.worker_runtime import build_worker

    settings = _settings()

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

    _with_context(settings, run)


def _worker_http_server(ctx, host: str, port: int):  # type: ignore[no-untyped-def]
    import uvicorn

    from saleor_app.observability import create_worker_http_app

    config = uvicorn.Config(create_worker_http_app(ctx), host=host, port=port, log_config=None, access_log=False, lifespan="off")
    # Served with `_serve()`, not `serve()`: the worker owns SIGTERM (finish in-flight deliveries, then stop).
    return uvicorn.Server(config)


async def _installation(ctx, saleor_api_url: str):  # type: ignore[no-untyped-def]
    from saleor_app.settings.service import ChannelSettingsService

    return await ChannelSettingsService(ctx).installation(saleor_api_url)


@channels_app.command("set")
def channels_set(
    saleor_api_url: str = typer.Option(..., help="The installation's Saleor API URL."),
    channel: str = typer.Option(..., help="Channel slug."),
    api_key: Optional[str] = typer.Option(None, help="VTmarketing API key (kept encrypted; omitted: unchanged)."),
    enabled: Optional[bool] = typer.Option(None, "--enabled/--disabled", help="Send this channel's orders."),
    item_id: Optional[str] = typer.Option(None, help="sku|variant-id|product-id|variant-external-reference|product-external-reference"),
    order_id: Optional[str] = typer.Option(None, help="number|id"),
) -> None:
    """Create or change a channel's settings."""
    from saleor_app.errors import AppError
    from saleor_app.settings.service import ChannelSettingsService

    settings = _settings()

    async def run(ctx):  # type: ignore[no-untyped-def]
        installation = await _installation(ctx, saleor_api_url)
        return await ChannelSettingsService(ctx).update(
            installation.id, channel, api_key=api_key, enabled=enabled, item_id=item_id, order_id=order_id
        )

    try:
        view = _with_context(settings, run)
    except AppError as exc:
        console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from None
    console.print(f"{view.channel}: enabled={view.enabled} key={view.api_key_hint or '-'} item-id={view.item_id} order-id={view.order_id}")


@channels_app.command("list")
def channels_list(saleor_api_url: Optional[str] = typer.Option(None, help="Only this installation.")) -> None:
    """Channel settings of every installation (keys masked)."""
    from saleor_app.settings.service import ChannelSettingsService
    from saleor_app.storage.repositories import InstallationRepository

    settings = _settings()

    async def run(ctx):  # type: ignore[no-untyped-def]
        async with ctx.db.session() as session:
            installations = await InstallationRepository(session).list()
        service = ChannelSettingsService(ctx)
        return [(i, await service.list(i.id)) for i in installations if not saleor_api_url or i.saleor_api_url == saleor_api_url]

    table = Table("Saleor API URL", "status", "channel", "enabled", "API key", "item id", "order id")
    for installation, views in _with_context(settings, run):
        if not views:
            table.add_row(installation.saleor_api_url, installation.status, "-", "", "", "", "")
        for v in views:
            table.add_row(installation.saleor_api_url, installation.status, v.channel, str(v.enabled), v.api_key_hint or "-", v.item_id, v.order_id)
    console.print(table)


@deliveries_app.command("list")
def deliveries_list(
    status: Optional[str] = typer.Option(None, help="pending|delivering|retrying|delivered|failed|skipped"),
    channel: Optional[str] = typer.Option(None, help="Channel slug."),
    limit: int = typer.Option(50, help="How many, newest first."),
) -> None:
    """The newest deliveries, with their state and reason."""
    from saleor_app.delivery.service import DeliveryService
    from saleor_app.errors import AppError

    settings = _settings()
    try:
        views, more = _with_context(settings, lambda ctx: DeliveryService(ctx).list(status=status, channel=channel, first=limit))
    except AppError as exc:
        console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from None
    table = Table("id", "order", "channel", "state", "attempts", "received", "reason")
    for v in views:
        table.add_row(str(v.id), v.order_number or "?", v.channel or "-", v.status, str(len(v.attempts)),
                      f"{v.received_at:%Y-%m-%d %H:%M:%S}", v.reason or "")
    console.print(table)
    if more:
        console.print("(more: raise --limit)")


@deliveries_app.command("retry")
def deliveries_retry(
    delivery_id: Optional[int] = typer.Argument(None, help="The delivery to resend."),
    all_failed: bool = typer.Option(False, "--all-failed", help="Resend every failed delivery."),
    channel: Optional[str] = typer.Option(None, help="With --all-failed: only this channel."),
) -> None:
    """Resend one delivery, or all failed ones."""
    from saleor_app.delivery.service import DeliveryService
    from saleor_app.errors import AppError

    if (delivery_id is None) == (not all_failed):
        console.print("[red]Give a delivery id or --all-failed.[/red]")
        raise typer.Exit(2)
    settings = _settings()
    try:
        if all_failed:
            count = _with_context(settings, lambda ctx: DeliveryService(ctx).retry_failed(channel=channel))
            console.print(f"{count} failed deliveries queued again")
        else:
            view = _with_context(settings, lambda ctx: DeliveryService(ctx).retry(delivery_id))
            console.print(f"delivery {view.id} (order {view.order_number}) queued again")
    except AppError as exc:
        console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from None


def _parse_date(value: str, name: str) -> str:
    from datetime import date

    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        console.print(f"[red]{name} must be a date like 2026-01-31, not {value!r}.[/red]")
        raise typer.Exit(2) from None


@app.command()
def backfill(
    saleor_api_url: str = typer.Option(..., help="The installation's Saleor API URL."),
    channel: str = typer.Option(..., help="Channel slug."),
    since: str = typer.Option(..., help="First creation date to include (YYYY-MM-DD)."),
    until: Optional[str] = typer.Option(None, help="Last creation date to include (YYYY-MM-DD)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Count what would be queued; store nothing."),
) -> None:
    """Queue a channel's past confirmed orders like live webhooks; resumable, never sends an order twice."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from saleor_app.delivery.recovery import backfill as run_backfill
    from saleor_app.errors import AppError
    from saleor_app.saleor.exceptions import SaleorError

    since_date = _parse_date(since, "--since")
    until_date = _parse_date(until, "--until") if until else ""
    settings = _settings()

    async def run(ctx):  # type: ignore[no-untyped-def]
        installation = await _installation(ctx, saleor_api_url)
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("queued {task.fields[queued]}"),
                      console=console, transient=False) as bar:
            task = bar.add_task(f"{channel} since {since_date}", total=None, queued=0)

            def on_page(progress) -> None:  # type: ignore[no-untyped-def]
                bar.update(task, completed=progress.seen, total=progress.total, queued=progress.queued)

            return await run_backfill(ctx, installation, channel, since=since_date, until=until_date, dry_run=dry_run, on_page=on_page)

    try:
        result = _with_context(settings, run)
    except (AppError, SaleorError) as exc:
        console.print(f"[red]{getattr(exc, 'message', exc)}[/red]")
        raise typer.Exit(1) from None
    verb = "would queue" if dry_run else "queued"
    console.print(f"{result.seen} orders looked at, {verb} {result.queued} (the others were already known or not confirmed)")


@app.command()
def reconcile() -> None:
    """Run one reconciliation pass now for every active installation (the worker does it every RECONCILE_INTERVAL)."""
    from saleor_app.delivery.recovery import Reconciler
    from saleor_app.storage.repositories import InstallationRepository

    settings = _settings()

    async def run(ctx):  # type: ignore[no-untyped-def]
        reconciler = Reconciler(ctx)
        async with ctx.db.session() as session:
            installations = await InstallationRepository(session).list(active_only=True)
        return [(i.saleor_api_url, await reconciler.reconcile(i)) for i in installations]

    for url, result in _with_context(settings, run):
        console.print(f"{url}: {result.checked} checked, {result.recovered} recovered" + (f", error: {result.error}" if result.error else ""))


@app.command()
def installations() -> None:
    """Installed Saleors, their state and the last reconciliation pass."""
    from saleor_app.storage.repositories import InstallationRepository

    settings = _settings()

    async def run(ctx):  # type: ignore[no-untyped-def]
        async with ctx.db.session() as session:
            return await InstallationRepository(session).list()

    table = Table("Saleor API URL", "status", "installed", "last reconcile", "checked", "recovered", "error")
    for i in _with_context(settings, run):
        table.add_row(i.saleor_api_url, i.status + (f" ({i.status_reason})" if i.status_reason else ""), f"{i.created_at:%Y-%m-%d %H:%M}",
                      f"{i.last_reconcile_at:%Y-%m-%d %H:%M:%S}" if i.last_reconcile_at else "never",
                      str(i.last_reconcile_checked), str(i.last_reconcile_recovered), i.last_reconcile_error or "")
    console.print(table)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
