"""What every command shares: the console, settings checked at start, and running a job with an AppContext."""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable, TypeVar

import typer
from rich.console import Console

from saleor_app.config import ConfigError, Settings, load_settings
from saleor_app.logs import configure_logging

console = Console()
log = logging.getLogger("saleor_app")
T = TypeVar("T")


def load_checked_settings() -> Settings:
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


def run_with_context(settings: Settings, job: Callable[..., Awaitable[T]], *, migrate: bool = True) -> T:
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


async def installation_by_url(ctx, saleor_api_url: str):  # type: ignore[no-untyped-def]
    from saleor_app.settings.service import ChannelSettingsService

    return await ChannelSettingsService(ctx).installation(saleor_api_url)
