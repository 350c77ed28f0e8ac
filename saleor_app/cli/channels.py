"""`channels set` / `channels list`: per-channel VTmarketing settings."""

from __future__ import annotations

from typing import Optional

import typer
from rich.table import Table

from saleor_app.cli.common import console, installation_by_url, load_checked_settings, run_with_context
from saleor_app.vtmarketing.models import ITEM_ID_CHOICES, ORDER_ID_CHOICES

channels_app = typer.Typer(
    help="Per-channel VTmarketing settings: the API key, on/off, and which ids are sent. The same settings as the "
         "app's page in the Saleor dashboard.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@channels_app.command("set")
def channels_set(
    saleor_api_url: str = typer.Option(..., metavar="URL",
                                       help="The Saleor API URL of the installation, as `installations` lists it, "
                                            "e.g. https://shop.example.com/graphql/."),
    channel: str = typer.Option(..., metavar="SLUG", help="The sales channel's slug, e.g. default-channel."),
    api_key: Optional[str] = typer.Option(None, metavar="KEY", show_default=False,
                                          help="The VTmarketing API key of the account this channel sends to (from "
                                               "the VTmarketing account settings). Stored encrypted; left out: kept."),
    enabled: Optional[bool] = typer.Option(None, "--enabled/--disabled", show_default=False,
                                           help="Send this channel's confirmed orders, or stop sending them. Left "
                                                "out: unchanged."),
    item_id: Optional[str] = typer.Option(None, metavar="|".join(ITEM_ID_CHOICES), show_default=False,
                                          help="Which product id goes into items[].id: the one your VTmarketing "
                                               "product feed uses (default sku)."),
    order_id: Optional[str] = typer.Option(None, metavar="|".join(ORDER_ID_CHOICES), show_default=False,
                                           help="What goes into generic.orderId: the order number (default) or "
                                                "Saleor's order id."),
) -> None:
    """Create or change a channel's settings; what you leave out stays as it is.

    The app must be installed in that Saleor first. The key is checked by VTmarketing on the first delivery
    (or with the page's "Send test event").

    \b
    Examples:
      saleor-vtmarketing channels set --saleor-api-url https://shop.example.com/graphql/ \\
          --channel default-channel --api-key KEY
      saleor-vtmarketing channels set --saleor-api-url https://shop.example.com/graphql/ \\
          --channel default-channel --disabled
    """
    from saleor_app.settings.service import ChannelSettingsService

    settings = load_checked_settings()

    async def run(ctx):  # type: ignore[no-untyped-def]
        installation = await installation_by_url(ctx, saleor_api_url)
        return await ChannelSettingsService(ctx).update(
            installation.id, channel, api_key=api_key, enabled=enabled, item_id=item_id, order_id=order_id
        )

    view = run_with_context(settings, run)
    console.print(f"{view.channel}: enabled={view.enabled} key={view.api_key_hint or '-'} item-id={view.item_id} "
                  f"order-id={view.order_id}", highlight=False)


@channels_app.command("list")
def channels_list(
    saleor_api_url: Optional[str] = typer.Option(None, metavar="URL", show_default=False,
                                                 help="Only this installation. Default: every installation."),
) -> None:
    """Channel settings of every installation; API keys show their last four characters only.

    \b
    Example:
      saleor-vtmarketing channels list
    """
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
