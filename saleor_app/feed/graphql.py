"""The feed's part of the settings API: strawberry types and the Query/Mutation fields merged into the settings
schema (saleor_app/settings/schema.py). Resolvers only translate; FeedService does the work.

Like the rest of the settings API, every field works for the one installation the dashboard token was verified
for (`info.context.installation`); problems the merchant can fix come back as `errors: [{field, code, message}]`.
"""

from __future__ import annotations

import logging
from datetime import datetime

import strawberry
from strawberry.types import Info

from saleor_app.errors import AppError
from saleor_app.feed.consistency import Consistency
from saleor_app.feed.exceptions import InvalidFeedSettings
from saleor_app.feed.service import FeedService, FeedView
from saleor_app.feed.url_template import PLACEHOLDERS
from saleor_app.saleor.exceptions import SaleorError
from saleor_app.secrets import SecretUnreadable
from saleor_app.settings.types import UserError

log = logging.getLogger(__name__)


@strawberry.type(description="A delivered order whose event named items the feed does not list.")
class FeedOrderMissingItems:
    order_number: str | None
    item_ids: list[str]


@strawberry.type(description="The channel's last delivered orders compared with the current feed.")
class FeedConsistency:
    checked_orders: int
    orders_with_missing_items: int
    message: str
    examples: list[FeedOrderMissingItems]

    @classmethod
    def of(cls, consistency: Consistency) -> "FeedConsistency":
        return cls(
            checked_orders=consistency.checked, orders_with_missing_items=consistency.with_missing,
            message=consistency.message,
            examples=[FeedOrderMissingItems(order_number=e.order_number, item_ids=list(e.item_ids))
                      for e in consistency.examples],
        )


@strawberry.type(description="A channel's VTmarketing product feed.")
class Feed:
    channel: str
    enabled: bool
    url: str | None = strawberry.field(description="The secret URL to give VTmarketing; null before the feed is set up.")
    product_url_template: str | None
    color_attribute: str | None
    brand_attribute: str | None
    refresh_minutes: int
    state: str = strawberry.field(description="off, waiting (never built), building, ready or error.")
    state_text: str
    rows: int
    built_at: datetime | None
    build_seconds: float | None
    last_error: str | None
    last_error_at: datetime | None
    next_build_at: datetime | None
    consistency: FeedConsistency | None

    @classmethod
    def of(cls, view: FeedView) -> "Feed":
        return cls(
            channel=view.channel, enabled=view.enabled, url=view.url, product_url_template=view.product_url_template,
            color_attribute=view.color_attribute, brand_attribute=view.brand_attribute,
            refresh_minutes=view.refresh_minutes, state=view.state, state_text=view.state_text, rows=view.rows,
            built_at=view.built_at, build_seconds=view.build_seconds, last_error=view.last_error,
            last_error_at=view.last_error_at, next_build_at=view.next_build_at,
            consistency=FeedConsistency.of(view.consistency) if view.consistency else None,
        )


@strawberry.type
class FeedAttribute:
    slug: str
    name: str


@strawberry.type(description="Saleor's product attributes, for the Color and Brand columns.")
class FeedAttributes:
    items: list[FeedAttribute]
    error: UserError | None


@strawberry.type
class FeedPlaceholder:
    name: str
    description: str


@strawberry.type(description="What a product URL template gives for one product of the channel.")
class FeedUrlPreview:
    url: str | None
    product_name: str | None = strawberry.field(description="Null: the URL was made from example values.")
    error: str | None


@strawberry.input
class FeedInput:
    channel: str
    enabled: bool | None = None
    product_url_template: str | None = strawberry.field(default=None, description='Omit to keep; "" clears.')
    color_attribute: str | None = strawberry.field(default=None, description='An attribute slug; "" clears.')
    brand_attribute: str | None = strawberry.field(default=None, description='An attribute slug; "" clears.')
    refresh_minutes: int | None = None


@strawberry.type
class FeedPayload:
    ok: bool
    feed: Feed | None
    errors: list[UserError]


def _service(info: Info) -> FeedService:
    return FeedService(info.context.ctx)


def _failed(exc: AppError) -> FeedPayload:
    return FeedPayload(ok=False, feed=None, errors=[UserError(code=exc.code, message=exc.message)])


@strawberry.type
class FeedQuery:
    @strawberry.field(description="The channel's product feed (off, with no URL, until it is turned on).")
    async def feed(self, info: Info, channel: str) -> Feed:
        return Feed.of(await _service(info).view(info.context.installation, channel.strip()))

    @strawberry.field(description="The placeholders a product URL template may use.")
    def feed_url_placeholders(self) -> list[FeedPlaceholder]:
        return [FeedPlaceholder(name=name, description=text) for name, text in PLACEHOLDERS.items()]

    @strawberry.field(description="The product attributes the Color and Brand columns can take their values from.")
    async def feed_attributes(self, info: Info, channel: str) -> FeedAttributes:
        try:
            choices = await _service(info).attributes(info.context.installation, channel.strip())
        except (SaleorError, SecretUnreadable) as exc:
            log.warning("product attributes could not be read: %s", exc)
            return FeedAttributes(items=[], error=UserError(
                code="SALEOR_UNREACHABLE", message="Saleor could not be asked for its product attributes; reload to try again."))
        return FeedAttributes(items=[FeedAttribute(slug=c.slug, name=c.name) for c in choices], error=None)

    @strawberry.field(description="The URL `template` gives for one of the channel's products.")
    async def feed_url_preview(self, info: Info, channel: str, template: str) -> FeedUrlPreview:
        preview = await _service(info).preview(info.context.installation, channel.strip(), template)
        return FeedUrlPreview(url=preview.url, product_name=preview.product_name, error=preview.error)


@strawberry.type
class FeedMutation:
    @strawberry.mutation(description="Change a channel's feed; omitted fields keep their stored values.")
    async def update_feed(self, info: Info, input: FeedInput) -> FeedPayload:  # noqa: A002
        context = info.context
        try:
            view = await _service(info).update(
                context.installation, input.channel.strip(), enabled=input.enabled,
                product_url_template=input.product_url_template, color_attribute=input.color_attribute,
                brand_attribute=input.brand_attribute, refresh_minutes=input.refresh_minutes,
            )
        except InvalidFeedSettings as exc:
            errors = [UserError(code="INVALID", field=field, message=message) for field, message in exc.fields.items()]
            return FeedPayload(ok=False, feed=None, errors=errors)
        log.info("feed settings of %s changed by %s", view.channel, context.user.user_id,
                 extra={"installation": context.installation.id, "channel": view.channel})
        return FeedPayload(ok=True, feed=Feed.of(view), errors=[])

    @strawberry.mutation(description="Build the channel's feed now (the worker picks it up within seconds).")
    async def rebuild_feed(self, info: Info, channel: str) -> FeedPayload:
        try:
            view = await _service(info).request_rebuild(info.context.installation, channel.strip())
        except AppError as exc:
            return _failed(exc)
        return FeedPayload(ok=True, feed=Feed.of(view), errors=[])

    @strawberry.mutation(description="Give the feed a new secret URL; the old one stops working at once.")
    async def rotate_feed_url(self, info: Info, channel: str) -> FeedPayload:
        try:
            view = await _service(info).rotate(info.context.installation, channel.strip())
        except AppError as exc:
            return _failed(exc)
        log.info("feed URL of %s replaced by %s", view.channel, info.context.user.user_id,
                 extra={"installation": info.context.installation.id, "channel": view.channel})
        return FeedPayload(ok=True, feed=Feed.of(view), errors=[])
