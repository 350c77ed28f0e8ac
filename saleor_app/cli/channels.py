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
    feed: Optional[bool] = typer.Option(None, "--feed/--no-feed", show_default=False,
                                        help="Serve the channel's VTmarketing product feed, or stop serving it (needs "
                                             "an API key and a product URL template). Left out: unchanged."),
    product_url_template: Optional[str] = typer.Option(
        None, metavar="TEMPLATE", show_default=False,
        help="Product page URL for the feed, e.g. https://shop.example.com/products/{product_slug}; placeholders "
             "{product_slug} {product_id} {variant_id} {sku} {channel}; \"\" clears."),
    color_attribute: Optional[str] = typer.Option(None, metavar="SLUG", show_default=False,
                                                  help="Attribute slug for the feed's Color column (\"\" clears)."),
    brand_attribute: Optional[str] = typer.Option(None, metavar="SLUG", show_default=False,
                                                  help="Attribute slug for the feed's Brand column (\"\" clears)."),
    feed_refresh_minutes: Optional[int] = typer.Option(None, metavar="MINUTES", show_default=False,
                                                       help="Rebuild the feed every N minutes (default 60)."),
) -> None:
    """Create or change a channel's settings and its product feed; what you leave out stays as it is.

    The app must be installed in that Saleor first. The key is checked by VTmarketing on the first delivery
    (or with the page's "Send test event").

    \b
    Examples:
      saleor-vtmarketing channels set --saleor-api-url https://shop.example.com/graphql/ \\
          --channel default-channel --api-key KEY
      saleor-vtmarketing channels set --saleor-api-url https://shop.example.com/graphql/ \\
          --channel default-channel --disabled
      saleor-vtmarketing channels set --saleor-api-url https://shop.example.com/graphql/ \\
          --channel default-channel --feed --product-url-template 'https://shop.example.com/p/{product_slug}'
    """
    from saleor_app.feed.exceptions import InvalidFeedSettings
    from saleor_app.feed.service import FeedService, validate_feed_input
    from saleor_app.settings.service import ChannelSettingsService

    feed_fields = dict(enabled=feed, product_url_template=product_url_template, color_attribute=color_attribute,
                       brand_attribute=brand_attribute, refresh_minutes=feed_refresh_minutes)
    changes_feed = any(value is not None for value in feed_fields.values())
    changes_channel = any(value is not None for value in (api_key, enabled, item_id, order_id))
    # What needs neither the database nor Saleor is checked before anything is changed.
    problems = validate_feed_input(channel=channel, product_url_template=product_url_template,
                                   refresh_minutes=feed_refresh_minutes) if changes_feed else {}
    if problems:
        console.print(f"[red]{InvalidFeedSettings(problems).message}[/red]", soft_wrap=True)
        raise typer.Exit(1)
    settings = load_checked_settings()

    async def run(ctx):  # type: ignore[no-untyped-def]
        installation = await installation_by_url(ctx, saleor_api_url)
        service = ChannelSettingsService(ctx)
        if changes_channel or not changes_feed:
            view = await service.update(
                installation.id, channel, api_key=api_key, enabled=enabled, item_id=item_id, order_id=order_id
            )
        else:
            view = await service.get(installation.id, channel)
        feed_view = await FeedService(ctx).update(installation, channel, **feed_fields) if changes_feed else None
        return view, feed_view

    view, feed_view = run_with_context(settings, run)
    console.print(f"{view.channel}: enabled={view.enabled} key={view.api_key_hint or '-'} item-id={view.item_id} "
                  f"order-id={view.order_id}", highlight=False)
    if feed_view is not None:
        console.print(f"{view.channel} feed: {'on' if feed_view.enabled else 'off'} "
                      f"template={feed_view.product_url_template or '-'} color={feed_view.color_attribute or '-'} "
                      f"brand={feed_view.brand_attribute or '-'} every {feed_view.refresh_minutes} min",
                      soft_wrap=True, highlight=False)
        if feed_view.enabled:
            console.print("feed URL (`feeds url` prints it alone):", soft_wrap=True)
            print(feed_view.url)


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
    from saleor_app.secrets import api_key_unreadable
    from saleor_app.settings.service import ChannelSettingsService
    from saleor_app.storage.repositories import InstallationRepository

    settings = load_checked_settings()

    async def run(ctx):  # type: ignore[no-untyped-def]
        async with ctx.db.session() as session:
            installations = await InstallationRepository(session).list()
        service = ChannelSettingsService(ctx)
        return [(i, await service.list(i.id), set(await service.unreadable_keys(i.id)))
                for i in installations if not saleor_api_url or i.saleor_api_url == saleor_api_url]

    table = Table("Saleor API URL", "status", "channel", "enabled", "API key", "item id", "order id")
    unreadable_seen = False
    for installation, views, unreadable in run_with_context(settings, run):
        if not views:
            table.add_row(installation.saleor_api_url, installation.status, "-", "", "", "", "")
        for v in views:
            key = v.api_key_hint or "-"
            if v.channel in unreadable:
                key, unreadable_seen = f"{key} (unreadable)", True
            table.add_row(installation.saleor_api_url, installation.status, v.channel, str(v.enabled), key, v.item_id, v.order_id)
    console.print(table)
    if unreadable_seen:
        console.print(f"[red]{api_key_unreadable('the channels marked unreadable')}[/red]", soft_wrap=True)
