"""Orders no webhook brought, and the installations: `backfill`, `reconcile`, `installations`."""

from __future__ import annotations

from datetime import date
from typing import Optional

import typer
from rich.table import Table

from saleor_app.cli.common import console, fail, installation_by_url, load_checked_settings, run_with_context


def _parse_date(value: str, name: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        fail(f"{name} must be a date like 2026-01-31, not {value!r}.", code=2)


def backfill(
    saleor_api_url: str = typer.Option(..., metavar="URL",
                                       help="The Saleor API URL of the installation, e.g. "
                                            "https://shop.example.com/graphql/."),
    channel: str = typer.Option(..., metavar="SLUG", help="The sales channel whose orders to queue."),
    since: str = typer.Option(..., metavar="YYYY-MM-DD", help="First creation date to include."),
    until: Optional[str] = typer.Option(None, metavar="YYYY-MM-DD", show_default=False,
                                        help="Last creation date to include. Default: up to now."),
    dry_run: bool = typer.Option(False, "--dry-run",
                                 help="Only count what would be queued (confirmed orders the app does not know "
                                      "yet); store nothing."),
) -> None:
    """Queue a channel's past confirmed orders, as if their webhooks had come; the worker sends them.

    An order the app already knows (sent live, or by an earlier backfill) is never queued twice. The position is
    stored after each page: a stopped backfill, started again with the same dates, resumes where it stopped.
    Figures are this run's.

    \b
    Examples:
      saleor-vtmarketing backfill --saleor-api-url https://shop.example.com/graphql/ \\
          --channel default-channel --since 2026-01-01 --dry-run
      saleor-vtmarketing backfill --saleor-api-url https://shop.example.com/graphql/ \\
          --channel default-channel --since 2026-01-01 --until 2026-01-31
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from saleor_app.delivery.recovery import backfill as run_backfill
    from saleor_app.saleor.exceptions import SaleorError
    from saleor_app.secrets import TOKEN_UNREADABLE, SecretUnreadable

    since_date = _parse_date(since, "--since")
    until_date = _parse_date(until, "--until") if until else None
    if until_date is not None and until_date < since_date:
        fail(f"--until ({until_date}) is before --since ({since_date}): no order can match.", code=2)
    settings = load_checked_settings()

    async def run(ctx):  # type: ignore[no-untyped-def]
        installation = await installation_by_url(ctx, saleor_api_url)
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("queued {task.fields[queued]}"),
                      console=console, transient=False) as bar:
            task = bar.add_task(f"{channel} since {since_date}", total=None, queued=0)

            def on_page(progress) -> None:  # type: ignore[no-untyped-def]
                bar.update(task, completed=progress.seen, total=progress.total, queued=progress.queued)

            try:
                return await run_backfill(ctx, installation, channel, since=since_date.isoformat(),
                                          until=until_date.isoformat() if until_date else "", dry_run=dry_run,
                                          on_page=on_page)
            except SaleorError as exc:
                fail(f"Saleor could not be asked: {exc}")
            except SecretUnreadable:
                fail(TOKEN_UNREADABLE)

    result = run_with_context(settings, run)
    verb = "would queue" if dry_run else "queued"
    resumed = "resumed where the last run stopped: " if result.resumed else ""
    console.print(f"{resumed}{result.seen} orders looked at, {verb} {result.queued} "
                  "(the others were already known or not confirmed)")


def reconcile() -> None:
    """Run one reconciliation pass now, for every active installation.

    It asks Saleor for orders changed since the last pass and queues the confirmed ones no webhook brought.
    The worker does this every RECONCILE_INTERVAL seconds anyway.

    \b
    Example:
      saleor-vtmarketing reconcile
    """
    from saleor_app.delivery.recovery import Reconciler
    from saleor_app.storage.repositories import InstallationRepository

    settings = load_checked_settings()

    async def run(ctx):  # type: ignore[no-untyped-def]
        reconciler = Reconciler(ctx)
        async with ctx.db.session() as session:
            installations = await InstallationRepository(session).list(active_only=True)
        return [(i.saleor_api_url, await reconciler.reconcile(i)) for i in installations]

    for url, result in run_with_context(settings, run):
        console.print(f"{url}: {result.checked} checked, {result.recovered} recovered" + (f", error: {result.error}" if result.error else ""),
                      soft_wrap=True)


def installations() -> None:
    """The Saleors that installed the app: their state, and their last reconciliation pass.

    \b
    Example:
      saleor-vtmarketing installations
    """
    from saleor_app.secrets import TOKEN_UNREADABLE
    from saleor_app.storage.repositories import InstallationRepository

    settings = load_checked_settings()

    async def run(ctx):  # type: ignore[no-untyped-def]
        async with ctx.db.session() as session:
            installations = await InstallationRepository(session).list()
        return [(i, ctx.secrets.readable(i.token_encrypted)) for i in installations]

    table = Table("Saleor API URL", "status", "installed", "last reconcile", "checked", "recovered", "error")
    unreadable = []
    for i, token_readable in run_with_context(settings, run):
        status = i.status + (f" ({i.status_reason})" if i.status_reason else "")
        if not token_readable:
            status += "; Saleor token unreadable"
            unreadable.append(i.saleor_api_url)
        table.add_row(i.saleor_api_url, status, f"{i.created_at:%Y-%m-%d %H:%M}",
                      f"{i.last_reconcile_at:%Y-%m-%d %H:%M:%S}" if i.last_reconcile_at else "never",
                      str(i.last_reconcile_checked), str(i.last_reconcile_recovered), i.last_reconcile_error or "")
    console.print(table)
    for url in unreadable:
        console.print(f"[red]{url}: {TOKEN_UNREADABLE}[/red]", soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command()(backfill)
    app.command()(reconcile)
    app.command()(installations)
