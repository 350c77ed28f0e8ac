"""Orders no webhook brought, and the installations: `backfill`, `reconcile`, `installations`."""

from __future__ import annotations

from typing import Optional

import typer
from rich.table import Table

from saleor_app.cli.common import console, installation_by_url, load_checked_settings, run_with_context

def _parse_date(value: str, name: str) -> str:
    from datetime import date

    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        console.print(f"[red]{name} must be a date like 2026-01-31, not {value!r}.[/red]")
        raise typer.Exit(2) from None


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
    settings = load_checked_settings()

    async def run(ctx):  # type: ignore[no-untyped-def]
        installation = await installation_by_url(ctx, saleor_api_url)
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("queued {task.fields[queued]}"),
                      console=console, transient=False) as bar:
            task = bar.add_task(f"{channel} since {since_date}", total=None, queued=0)

            def on_page(progress) -> None:  # type: ignore[no-untyped-def]
                bar.update(task, completed=progress.seen, total=progress.total, queued=progress.queued)

            return await run_backfill(ctx, installation, channel, since=since_date, until=until_date, dry_run=dry_run, on_page=on_page)

    try:
        result = run_with_context(settings, run)
    except (AppError, SaleorError) as exc:
        console.print(f"[red]{getattr(exc, 'message', exc)}[/red]")
        raise typer.Exit(1) from None
    verb = "would queue" if dry_run else "queued"
    console.print(f"{result.seen} orders looked at, {verb} {result.queued} (the others were already known or not confirmed)")


def reconcile() -> None:
    """Run one reconciliation pass now for every active installation (the worker does it every RECONCILE_INTERVAL)."""
    from saleor_app.delivery.recovery import Reconciler
    from saleor_app.storage.repositories import InstallationRepository

    settings = load_checked_settings()

    async def run(ctx):  # type: ignore[no-untyped-def]
        reconciler = Reconciler(ctx)
        async with ctx.db.session() as session:
            installations = await InstallationRepository(session).list(active_only=True)
        return [(i.saleor_api_url, await reconciler.reconcile(i)) for i in installations]

    for url, result in run_with_context(settings, run):
        console.print(f"{url}: {result.checked} checked, {result.recovered} recovered" + (f", error: {result.error}" if result.error else ""))


def installations() -> None:
    """Installed Saleors, their state and the last reconciliation pass."""
    from saleor_app.storage.repositories import InstallationRepository

    settings = load_checked_settings()

    async def run(ctx):  # type: ignore[no-untyped-def]
        async with ctx.db.session() as session:
            return await InstallationRepository(session).list()

    table = Table("Saleor API URL", "status", "installed", "last reconcile", "checked", "recovered", "error")
    for i in run_with_context(settings, run):
        table.add_row(i.saleor_api_url, i.status + (f" ({i.status_reason})" if i.status_reason else ""), f"{i.created_at:%Y-%m-%d %H:%M}",
                      f"{i.last_reconcile_at:%Y-%m-%d %H:%M:%S}" if i.last_reconcile_at else "never",
                      str(i.last_reconcile_checked), str(i.last_reconcile_recovered), i.last_reconcile_error or "")
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command()(backfill)
    app.command()(reconcile)
    app.command()(installations)
