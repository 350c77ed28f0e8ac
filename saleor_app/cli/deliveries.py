"""`deliveries list` / `deliveries retry`: the delivery log and resending."""

from __future__ import annotations

from datetime import datetime
from typing import Optional

import typer
from rich.table import Table

from saleor_app.cli.common import console, load_checked_settings, run_with_context

deliveries_app = typer.Typer(help="The delivery log: list and resend.", no_args_is_help=True)


def _local_time(when: datetime | None) -> str:
    """In this machine's time zone, named, like the page shows times in the merchant's."""
    return when.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z") if when else ""


@deliveries_app.command("list")
def deliveries_list(
    status: Optional[str] = typer.Option(None, help="pending|delivering|retrying|delivered|failed|skipped"),
    channel: Optional[str] = typer.Option(None, help="Channel slug."),
    limit: int = typer.Option(50, help="How many, newest first."),
) -> None:
    """The newest deliveries, with their state and reason."""
    from saleor_app.delivery.service import DeliveryService
    from saleor_app.errors import AppError

    settings = load_checked_settings()
    try:
        views, more = run_with_context(settings, lambda ctx: DeliveryService(ctx).list(status=status, channel=channel, first=limit))
    except AppError as exc:
        console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from None
    table = Table("id", "order", "channel", "state", "attempts", "received", "next try", "reason")
    for v in views:
        table.add_row(str(v.id), v.order_number or "?", v.channel or "-", v.status, str(len(v.attempts)),
                      _local_time(v.received_at), _local_time(v.next_attempt_at), v.reason or "")
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
    settings = load_checked_settings()
    try:
        if all_failed:
            count = run_with_context(settings, lambda ctx: DeliveryService(ctx).retry_failed(channel=channel))
            console.print(f"{count} failed deliveries queued again")
        else:
            view = run_with_context(settings, lambda ctx: DeliveryService(ctx).retry(delivery_id))
            console.print(f"delivery {view.id} (order {view.order_number}) queued again")
    except AppError as exc:
        console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from None
