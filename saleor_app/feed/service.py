"""The feed's use cases for the settings API and the CLI: show a channel's feed, change its settings, rotate its
URL, rebuild it, preview a product URL template, list the attributes for Color and Brand."""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote

from saleor_app.context import AppContext
from saleor_app.feed.building import RETRY_AFTER_FAILURE, BuildResult, FeedBuilder
from saleor_app.feed.catalogue import AttributeChoice, SaleorCatalogue
from saleor_app.feed.consistency import Consistency, ConsistencyChecker, problem_key
from saleor_app.feed.exceptions import InvalidFeedSettings, NoFeed
from saleor_app.feed.rows import FeedOptions, product_rows
from saleor_app.feed.url_template import EXAMPLE_VALUES, InvalidTemplate, ProductUrlTemplate
from saleor_app.saleor.exceptions import SaleorError
from saleor_app.saleor.problems import ProblemReporter
from saleor_app.secrets import SecretUnreadable
from saleor_app.storage.feeds import FeedRepository
from saleor_app.storage.models import Feed, FeedBuild, Installation, ItemIdSource, utcnow
from saleor_app.storage.repositories import ChannelSettingsRepository

log = logging.getLogger(__name__)

MIN_REFRESH_MINUTES = 5
MAX_REFRESH_MINUTES = 7 * 24 * 60
TOKEN_BYTES = 24  # 192 bits of randomness in every feed URL


def valid_channel(channel: str) -> bool:
    """A slug we may look up: never stored otherwise (PostgreSQL refuses NUL even as a query parameter)."""
    return bool(channel) and len(channel) <= 255 and channel.isprintable()


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", errors="replace")).hexdigest()


def feed_path(token: str, channel: str) -> str:
    return f"/api/feeds/{token}/{quote(channel, safe='')}.csv"


@dataclass(frozen=True)
class FeedView:
    """A channel's feed as the merchant sees it. `url` holds the secret token: only for staff and the operator."""

    channel: str
    exists: bool
    enabled: bool
    url: str | None
    product_url_template: str | None
    color_attribute: str | None
    brand_attribute: str | None
    refresh_minutes: int
    state: str  # off | waiting (never built) | building | ready | error
    rows: int
    built_at: datetime | None
    build_seconds: float | None
    last_error: str | None
    last_error_at: datetime | None
    next_build_at: datetime | None
    consistency: Consistency | None

    @property
    def state_text(self) -> str:
        if self.state == "off":
            return "Off"
        if self.state == "building":
            return "Building now…"
        if self.state == "waiting":
            return "Waiting for its first build."
        if self.state == "error":
            kept = " The previous feed is still served." if self.built_at else ""
            return f"The last build failed: {self.last_error}{kept}"
        return f"{self.rows} rows."


@dataclass(frozen=True)
class UrlPreview:
    url: str | None
    error: str | None
    product_name: str | None  # the product of the channel the URL was made for; None: example values


class FeedService:
    def __init__(self, ctx: AppContext, builder: FeedBuilder | None = None) -> None:
        self.ctx = ctx
        self.db = ctx.db
        self.problems = ProblemReporter(ctx)
        self.builder = builder or FeedBuilder(ctx.db, ctx.saleor, ctx.secrets, ctx.metrics)
        self.consistency = ConsistencyChecker(ctx.db, self.problems)

    # --- reading ------------------------------------------------------------------------------------------------

    def url_of(self, feed: Feed) -> str:
        return self.ctx.settings.app_url.rstrip("/") + feed_path(self.ctx.secrets.decrypt(feed.token_encrypted),
                                                                  feed.channel_slug)

    async def view(self, installation: Installation, channel: str, *, with_consistency: bool = True) -> FeedView:
        if not valid_channel(channel):
            return await self._view(None, None, channel, with_consistency)  # no such channel, so no feed
        async with self.db.session() as session:
            repo = FeedRepository(session)
            feed = await repo.get(installation.id, channel)
            build = await repo.current_build(feed.id) if feed else None
        return await self._view(feed, build, channel, with_consistency)

    async def views(self, installation: Installation, *, with_consistency: bool = True) -> list[FeedView]:
        async with self.db.session() as session:
            repo = FeedRepository(session)
            feeds = [(feed, await repo.current_build(feed.id)) for feed in await repo.list(installation.id)]
        return [await self._view(feed, build, feed.channel_slug, with_consistency) for feed, build in feeds]

    async def _view(self, feed: Feed | None, build: FeedBuild | None, channel: str, with_consistency: bool) -> FeedView:
        if feed is None:
            return FeedView(channel, False, False, None, None, None, None, self.ctx.settings.feed_refresh_minutes,
                            "off", 0, None, None, None, None, None, None)
        try:
            url = self.url_of(feed)
        except SecretUnreadable:
            url = None
        now = utcnow()
        building = feed.build_lease_until is not None and feed.build_lease_until > now
        if not feed.enabled:
            state = "off"
        elif building:
            state = "building"
        elif feed.last_error:
            state = "error"
        elif build is None:
            state = "waiting"
        else:
            state = "ready"
        next_build = None
        if feed.enabled and feed.product_url_template:
            if feed.rebuild_requested or feed.last_attempt_at is None:
                next_build = now
            else:
                interval = timedelta(minutes=feed.refresh_minutes)
                next_build = feed.last_attempt_at + (min(interval, RETRY_AFTER_FAILURE) if feed.last_error else interval)
        consistency = await self.consistency.check(feed) if with_consistency and build is not None else None
        return FeedView(
            channel=feed.channel_slug, exists=True, enabled=feed.enabled, url=url,
            product_url_template=feed.product_url_template, color_attribute=feed.color_attribute,
            brand_attribute=feed.brand_attribute, refresh_minutes=feed.refresh_minutes, state=state,
            rows=build.rows if build else 0, built_at=feed.last_built_at if build else None,
            build_seconds=feed.last_build_seconds if build else None, last_error=feed.last_error,
            last_error_at=feed.last_error_at, next_build_at=next_build, consistency=consistency,
        )

    async def _feed(self, installation: Installation, channel: str) -> Feed:
        if not valid_channel(channel):
            raise NoFeed("Choose a channel.")
        async with self.db.session() as session:
            feed = await FeedRepository(session).get(installation.id, channel)
        if feed is None:
            raise NoFeed(f"Channel {channel} has no product feed yet: turn it on first "
                         "(channels set … --feed --product-url-template URL).")
        return feed

    # --- changing -----------------------------------------------------------------------------------------------

    async def update(
        self,
        installation: Installation,
        channel: str,
        *,
        enabled: bool | None = None,
        product_url_template: str | None = None,
        color_attribute: str | None = None,
        brand_attribute: str | None = None,
        refresh_minutes: int | None = None,
    ) -> FeedView:
        """Partial update: None keeps what is stored, "" clears a template or an attribute. The feed stays off
        until a product URL template is set (Saleor does not know storefront URLs)."""
        errors = validate_feed_input(channel=channel, product_url_template=product_url_template,
                                     refresh_minutes=refresh_minutes)
        if "channel" in errors:
            raise InvalidFeedSettings(errors)
        async with self.db.session() as session:
            feed = await FeedRepository(session).get(installation.id, channel)
            channel_row = await ChannelSettingsRepository(session).get(installation.id, channel)
        template = feed.product_url_template if feed and product_url_template is None else (product_url_template or "").strip() or None
        will_be_enabled = feed.enabled if feed and enabled is None else bool(enabled)
        if will_be_enabled and "productUrlTemplate" not in errors:
            if not template:
                errors["productUrlTemplate"] = ("Set the product URL template first: the feed needs each product's "
                                                "page address, which Saleor does not know.")
            if channel_row is None or not channel_row.api_key_encrypted:
                errors["enabled"] = ("Save this channel's VTmarketing API key first: the feed exists to value the "
                                     "events sent with it.")
        for field, slug in (("colorAttribute", color_attribute), ("brandAttribute", brand_attribute)):
            if slug is not None and slug.strip() and field not in errors:
                problem = await self._attribute_problem(installation, channel, slug.strip())
                if problem:
                    errors[field] = problem
        if errors:
            raise InvalidFeedSettings(errors)

        async with self.db.transaction() as session:
            repo = FeedRepository(session)
            feed = await repo.get(installation.id, channel)
            if feed is None:
                token = new_token()
                feed = await repo.create(installation.id, channel, token_hash=token_hash(token),
                                         token_encrypted=self.ctx.secrets.encrypt(token),
                                         refresh_minutes=self.ctx.settings.feed_refresh_minutes)
            before = (feed.enabled, feed.product_url_template, feed.color_attribute, feed.brand_attribute)
            if enabled is not None:
                feed.enabled = enabled
            if product_url_template is not None:
                feed.product_url_template = template
            if color_attribute is not None:
                feed.color_attribute = color_attribute.strip() or None
            if brand_attribute is not None:
                feed.brand_attribute = brand_attribute.strip() or None
            if refresh_minutes is not None:
                feed.refresh_minutes = refresh_minutes
            after = (feed.enabled, feed.product_url_template, feed.color_attribute, feed.brand_attribute)
            if feed.enabled and after != before:
                feed.rebuild_requested = True  # what the file holds changed: build it now rather than in an hour
            await session.flush()
        if enabled is False:
            await self.problems.dismiss(installation, [problem_key(channel)])
        return await self.view(installation, channel)

    async def _attribute_problem(self, installation: Installation, channel: str, slug: str) -> str | None:
        try:
            choices = await self.attributes(installation, channel)
        except (SaleorError, SecretUnreadable) as exc:
            log.warning("attributes of installation %s could not be read: %s", installation.id, exc)
            return "Saleor could not be asked for its product attributes; try again in a moment."
        if slug not in {choice.slug for choice in choices}:
            return f"Saleor has no product attribute {slug!r}. Choose one of the product attributes."
        return None

    async def rotate(self, installation: Installation, channel: str) -> FeedView:
        """A new secret URL; the old one answers 404 from now on."""
        feed = await self._feed(installation, channel)
        token = new_token()
        async with self.db.transaction() as session:
            await FeedRepository(session).replace_token(feed.id, token_hash=token_hash(token),
                                                        token_encrypted=self.ctx.secrets.encrypt(token))
        log.info("feed URL of channel %s replaced", channel, extra={"installation": installation.id})
        return await self.view(installation, channel)

    async def request_rebuild(self, installation: Installation, channel: str) -> FeedView:
        """Ask the worker to build now (it looks every FEED_SCHEDULE_SECONDS)."""
        feed = await self._feed(installation, channel)
        if not feed.enabled:
            raise NoFeed(f"The product feed of channel {channel} is off: turn it on to build it.")
        async with self.db.transaction() as session:
            await FeedRepository(session).request_rebuild(feed.id)
        return await self.view(installation, channel)

    async def build_now(self, installation: Installation, channel: str) -> BuildResult:
        """Build in this process now (the CLI); the claim keeps a worker from building it at the same time."""
        feed = await self._feed(installation, channel)
        if not feed.enabled or not feed.product_url_template:
            raise NoFeed(f"The product feed of channel {channel} is off: turn it on first (channels set … --feed).")
        async with self.db.session() as session:
            channel_row = await ChannelSettingsRepository(session).get(installation.id, channel)
        item_choice = channel_row.item_id if channel_row else ItemIdSource.SKU.value
        result = await self.builder.build(feed, installation, item_choice)
        if result is None:
            return BuildResult(channel, False, 0, 0.0, "A build of this feed is already running; see `feeds list`.")
        if result.ok:
            await self.consistency.after_build(installation, feed.id, channel)
        return result

    # --- Saleor's side ------------------------------------------------------------------------------------------

    def _catalogue(self, installation: Installation) -> SaleorCatalogue:
        return SaleorCatalogue(self.ctx.saleor, installation.saleor_api_url,
                               self.ctx.secrets.decrypt(installation.token_encrypted))

    async def attributes(self, installation: Installation, channel: str) -> list[AttributeChoice]:
        return await self._catalogue(installation).attributes(channel if valid_channel(channel) else "")

    async def preview(self, installation: Installation, channel: str, template: str) -> UrlPreview:
        """The URL the template gives for the channel's first product (example values when Saleor has none)."""
        try:
            parsed = ProductUrlTemplate.parse(template)
        except InvalidTemplate as exc:
            return UrlPreview(None, str(exc), None)
        if not valid_channel(channel):
            return UrlPreview(None, "Choose a channel.", None)
        async with self.db.session() as session:
            channel_row = await ChannelSettingsRepository(session).get(installation.id, channel)
        options = FeedOptions(channel=channel, item_id=channel_row.item_id if channel_row else ItemIdSource.SKU.value,
                              url_template=parsed)
        try:
            page = await self._catalogue(installation).product_page(channel, first=5)
            for product in page.products:
                rows = product_rows(product, options)
                if rows:
                    return UrlPreview(rows[0].url, None, rows[0].title)
        except (SaleorError, SecretUnreadable) as exc:
            log.info("feed preview without Saleor's products: %s", exc)
        return UrlPreview(parsed.render({**EXAMPLE_VALUES, "channel": channel}), None, None)


def validate_feed_input(*, channel: str, product_url_template: str | None, refresh_minutes: int | None) -> dict[str, str]:
    """Checks that need no database nor Saleor (the CLI runs them before changing anything)."""
    errors: dict[str, str] = {}
    if not valid_channel(channel):
        errors["channel"] = "Choose a channel."
    if product_url_template is not None and product_url_template.strip():
        try:
            ProductUrlTemplate.parse(product_url_template)
        except InvalidTemplate as exc:
            errors["productUrlTemplate"] = str(exc)
    if refresh_minutes is not None and not MIN_REFRESH_MINUTES <= refresh_minutes <= MAX_REFRESH_MINUTES:
        errors["refreshMinutes"] = (f"Rebuild every {MIN_REFRESH_MINUTES} minutes at the most often, "
                                    f"every {MAX_REFRESH_MINUTES // 1440} days at the least.")
    return errors
