"""`feeds build|url|list|rotate`: the VTmarketing product feed of each channel."""

from __future__ import annotations

from typing import Optional

import typer

from saleor_app.cli.common import console, fail, installation_by_url, load_checked_settings, run_with_context

feeds_app = typer.Typer(
    help="The VTmarketing product feed of each channel: build it now, print or renew its URL, list every feed.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

SALEOR_API_URL_HELP = "The Saleor API URL of the installation, as `installations` lists it."


@feeds_app.command("build")
def feeds_build(
    saleor_api_url: Optional[str] = typer.Option(None, metavar="URL", show_default=False,
                                                 help="Only this installation (default: every installed Saleor)."),
    channel: Optional[str] = typer.Option(None, metavar="SLUG", show_default=False,
                                          help="Only this channel (default: every feed that is on)."),
) -> None:
    """Build feeds now (every feed that is on, or the one chosen); prints rows and time. Exits 1 if one failed.

    A failed build keeps the previous feed served, and its error is shown on the page and by `feeds list`.

    \b
    Examples:
      saleor-vtmarketing feeds build
      saleor-vtmarketing feeds build --saleor-api-url https://shop.example.com/graphql/ --channel default-channel
    """
    from saleor_app.feed.service import FeedService
    from saleor_app.storage.feeds import FeedRepository
    from saleor_app.storage.repositories import InstallationRepository

    settings = load_checked_settings()

    async def run(ctx):  # type: ignore[no-untyped-def]
        service = FeedService(ctx)
        if saleor_api_url:
            installations = [await installation_by_url(ctx, saleor_api_url)]
        else:
            async with ctx.db.session() as session:
                installations = list(await InstallationRepository(session).list(active_only=True))
        targets = []
        for installation in installations:
            if channel:
                targets.append((installation, channel))
                continue
            async with ctx.db.session() as session:
                feeds = await FeedRepository(session).list(installation.id)
            targets += [(installation, feed.channel_slug) for feed in feeds if feed.enabled]
        results = []
        for installation, slug in targets:
            with console.status(f"building the feed of {slug}…"):
                results.append((installation.saleor_api_url, await service.build_now(installation, slug)))
        return results

    results = run_with_context(settings, run)
    if not results:
        fail("No feed is on: turn one on with `channels set … --feed --product-url-template URL`.")
    for url, result in results:
        if result.ok:
            note = f" ({result.skipped_products} products could not be read)" if result.skipped_products else ""
            console.print(f"{result.channel}: {result.rows} rows in {result.seconds:.1f} s{note}", soft_wrap=True)
        else:
            console.print(f"[red]{result.channel}: build failed: {result.error}[/red] (the previous feed is still "
                          "served)", soft_wrap=True)
    if not all(result.ok for _, result in results):
        raise typer.Exit(1)


@feeds_app.command("url")
def feeds_url(
    saleor_api_url: str = typer.Option(..., metavar="URL", help=SALEOR_API_URL_HELP),
    channel: str = typer.Option(..., metavar="SLUG", help="The sales channel's slug, e.g. default-channel."),
) -> None:
    """Print the feed's URL alone on one line (to give VTmarketing, or to pipe).

    \b
    Example:
      saleor-vtmarketing feeds url --saleor-api-url https://shop.example.com/graphql/ --channel default-channel
    """
    from saleor_app.feed.service import FeedService

    settings = load_checked_settings()

    async def run(ctx):  # type: ignore[no-untyped-def]
        installation = await installation_by_url(ctx, saleor_api_url)
        return await FeedService(ctx).view(installation, channel, with_consistency=False)

    view = run_with_context(settings, run)
    if not view.exists or not view.url:
        fail(f"Channel {channel} has no product feed yet: turn it on with `channels set … --feed "
              "--product-url-template URL`.")
    if not view.enabled:  # on stderr: stdout holds the URL alone
        typer.echo(f"The feed of {channel} is off: this URL answers 404 until it is turned on.", err=True)
    # Plain print, never rich: rich wraps long lines at the terminal's width, and a wrapped URL is a broken URL.
    print(view.url)


@feeds_app.command("list")
def feeds_list(
    saleor_api_url: Optional[str] = typer.Option(None, metavar="URL", show_default=False,
                                                 help="Only this installation (default: every installed Saleor)."),
) -> None:
    """Every feed: channel, URL, rows, when it was built, the last error, items of orders missing from it.

    \b
    Example:
      saleor-vtmarketing feeds list
    """
    from saleor_app.feed.service import FeedService
    from saleor_app.storage.repositories import InstallationRepository

    settings = load_checked_settings()

    async def run(ctx):  # type: ignore[no-untyped-def]
        async with ctx.db.session() as session:
            installations = await InstallationRepository(session).list()
        service = FeedService(ctx)
        return [(i, await service.views(i)) for i in installations
                if not saleor_api_url or i.saleor_api_url == saleor_api_url]

    found = run_with_context(settings, run)
    if not any(views for _, views in found):
        console.print("No feeds yet: turn one on with `channels set … --feed --product-url-template URL`.")
        return
    for installation, views in found:
        for v in views:
            # One block per feed rather than a table: URLs and messages are long, and must not be cut.
            console.print(f"[bold]{v.channel}[/bold] ({installation.saleor_api_url}): {'on' if v.enabled else 'off'}, "
                          f"{v.state_text}", soft_wrap=True)
            console.print(f"  url: {v.url or '-'}", soft_wrap=True, highlight=False)
            built = f"{v.built_at:%Y-%m-%d %H:%M:%S} UTC in {v.build_seconds:.1f} s" if v.built_at and v.build_seconds is not None else "never"
            console.print(f"  rows: {v.rows}; built: {built}; refresh every {v.refresh_minutes} min", soft_wrap=True)
            if v.last_error:
                console.print(f"  [red]last error: {v.last_error}[/red]", soft_wrap=True)
            if v.consistency is not None:
                console.print(f"  orders: {v.consistency.message}", soft_wrap=True)


@feeds_app.command("rotate")
def feeds_rotate(
    saleor_api_url: str = typer.Option(..., metavar="URL", help=SALEOR_API_URL_HELP),
    channel: str = typer.Option(..., metavar="SLUG", help="The sales channel's slug, e.g. default-channel."),
) -> None:
    """Give the feed a new secret URL (printed); the old one answers 404 from now on.

    Give the new URL to VTmarketing at once: until then it keeps fetching the old one, which is gone.

    \b
    Example:
      saleor-vtmarketing feeds rotate --saleor-api-url https://shop.example.com/graphql/ --channel default-channel
    """
    from saleor_app.feed.service import FeedService

    settings = load_checked_settings()

    async def run(ctx):  # type: ignore[no-untyped-def]
        installation = await installation_by_url(ctx, saleor_api_url)
        return await FeedService(ctx).rotate(installation, channel)

    view = run_with_context(settings, run)
    console.print("New feed URL (give it to VTmarketing; the old one no longer works):", soft_wrap=True)
    print(view.url)
