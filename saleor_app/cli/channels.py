"""`channels set` / `channels list`: per-channel VTmarketing settings."""

from __future__ import annotations

from typing import Optional

import typer
from rich.table import Table

from saleor_app.cli.common import console, installation_by_url, load_checked_settings, run_with_context

channels_app = typer.Typer(help="Per-channel VTmarketing settings.", no_args_is_help=True)

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

    settings = load_checked_settings()

    async def run(ctx):  # type: ignore[no-untyped-def]
        installation = await installation_by_url(ctx, saleor_api_url)
        return await ChannelSettingsService(ctx).update(
            installation.id, channel, api_key=api_key, enabled=enabled, item_id=item_id, order_id=order_id
        )

    try:
        view = run_with_context(settings, run)
    except AppError as exc:
        console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from None
    console.print(f"{view.channel}: enabled={view.enabled} key={view.api_key_hint or '-'} item-id={view.item_id} order-id={view.order_id}")


@channels_app.command("list")
def channels_list(saleor_api_url: Optional[str] = typer.Option(None, help="Only this installation.")) -> None:
    """Channel settings of every installation (keys masked)."""
    from saleor_app.settings.service import ChannelSettingsService
    from saleor_app.storage.repositories import InstallationRepository

    settings = load_checked_settings()

    async def run(ctx):  # type: ignore[no-untyped-def]
        async with ctx.db.session() as session:
            installations = await InstallationRepository(session).list()
        service = ChannelSettingsService(ctx)
        return [(i, await service.list(i.id)) for i in installations if not saleor_api_url or i.saleor_api_url == saleor_api_url]

    table = Table("Saleor API URL", "status", "channel", "enabled", "API key", "item id", "order id")
    for installation, views in run_with_context(settings, run):
        if not views:
            table.add_row(installation.saleor_api_url, installation.status, "-", "", "", "", "")
        for v in views:
            table.add_row(installation.saleor_api_url, installation.status, v.channel, str(v.enabled), v.api_key_hint or "-", v.item_id, v.order_id)
    console.print(table)
