"""`deliveries list` / `deliveries retry`: the delivery log and resending."""

from __future__ import annotations

from datetime import datetime
from typing import Optional

import typer
from rich.table import Table

from saleor_app.cli.common import console, fail, load_checked_settings, run_with_context
from saleor_app.storage.models import DeliveryStatus

deliveries_app = typer.Typer(
    help="The delivery log (one row per order, with its state and the reason) and resending.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
STATUSES = "|".join(s.value for s in DeliveryStatus)



def _local_time(when: datetime | None) -> str:
    """In this machine's time zone, named, like the page shows times in the merchant's."""
    return when.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z") if when else ""


@deliveries_app.command("list")
def deliveries_list(
    status: Optional[str] = typer.Option(None, metavar=STATUSES, show_default=False,
                                         help="Only deliveries in this state. Default: all."),
    channel: Optional[str] = typer.Option(None, metavar="SLUG", show_default=False,
                                          help="Only this channel's deliveries. Default: all channels."),
    limit: int = typer.Option(50, metavar="N", min=1, help="How many to show, newest first."),
) -> None:
    """The newest deliveries: order, channel, state, attempts, when it arrived, and why it is in its state.

    \b
    Examples:
      saleor-vtmarketing deliveries list
      saleor-vtmarketing deliveries list --status failed --channel default-channel --limit 200
    """
    from saleor_app.delivery.service import DeliveryService

    settings = load_checked_settings()
    views, more = run_with_context(settings, lambda ctx: DeliveryService(ctx).list(status=status, channel=channel, first=limit))
    table = Table("id", "order", "channel", "state", "attempts", "received", "next try", "reason")
    for v in views:
        table.add_row(str(v.id), v.order_number or "?", v.channel or "-", v.status, str(len(v.attempts)),
                      _local_time(v.received_at), _local_time(v.next_attempt_at), v.reason or "")
    console.print(table)
    if more:
        console.print("(more: raise --limit)")


@deliveries_app.command("retry")
def deliveries_retry(
    # Out of the Arguments list (typer prints a type tag, `<int>`, there); the usage line and docstring name it.
    delivery_id: Optional[int] = typer.Argument(None, metavar="ID", show_default=False, hidden=True),
    all_failed: bool = typer.Option(False, "--all-failed", help="Resend every failed delivery instead of one."),
    channel: Optional[str] = typer.Option(None, metavar="SLUG", show_default=False,
                                          help="With --all-failed: only this channel's failed deliveries."),
) -> None:
    """Queue a finished delivery (delivered, failed or skipped) again, or every failed one; sent at once.

    ID is the delivery's id, the first column of `deliveries list`. Resending a delivered order sends it to VTmarketing a second time, with the same orderId.

    \b
    Examples:
      saleor-vtmarketing deliveries retry 42
      saleor-vtmarketing deliveries retry --all-failed --channel default-channel
    """
    from saleor_app.delivery.service import DeliveryService

    if (delivery_id is None) == (not all_failed):
        fail("Give a delivery id or --all-failed.", code=2)
    settings = load_checked_settings()
    if all_failed:
        count = run_with_context(settings, lambda ctx: DeliveryService(ctx).retry_failed(channel=channel))
        console.print(f"{count} failed deliveries queued again")
    else:
        view = run_with_context(settings, lambda ctx: DeliveryService(ctx).retry(delivery_id))
        console.print(f"delivery {view.id} (order {view.order_number}) queued again")
