"""The settings API's resolvers: Query and Mutation over the settings and delivery services.

Every resolver works for the one installation the dashboard token was verified for (`info.context.installation`),
so an id of another installation's delivery is simply "not found". Problems a merchant can fix (a malformed key,
an unknown delivery, Saleor unreachable) come back as data (`errors: [{field, code, message}]`, `channelsError`)
for the page to show next to the field.
"""

from __future__ import annotations

import asyncio
import logging

import strawberry
from graphql import GraphQLError
from strawberry.fastapi import BaseContext
from strawberry.types import Info

from saleor_app.context import AppContext
from saleor_app.delivery.service import STATUS_VALUES, DeliveryService
from saleor_app.errors import AppError, TooManyRequests
from saleor_app.settings.auth import DashboardUser
from saleor_app.settings.exceptions import InvalidChannelSettings
from saleor_app.settings.service import ITEM_ID_VALUES, ORDER_ID_VALUES, ChannelSettingsService, ChannelSettingsView
from saleor_app.settings.test_event import TestEventService
from saleor_app.settings.types import (
    ITEM_ID_LABELS,
    ORDER_ID_LABELS,
    STATUS_LABELS,
    Channel,
    ChannelSettings,
    ChannelSettingsInput,
    ChannelSettingsPayload,
    Choice,
    Delivery,
    DeliveryConnection,
    DeliveryCounts,
    InstallationInfo,
    LoadedChannels,
    RetryDeliveryPayload,
    RetryFailedPayload,
    SettingsOptions,
    StoredChannel,
    TestEventPayload,
    UserError,
    Viewer,
    load_channels,
)
from saleor_app.storage.models import Installation

log = logging.getLogger(__name__)

DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 100


# --- context ----------------------------------------------------------------------------------------------------


class SettingsContext(BaseContext):
    """Per request: the process's AppContext and the verified dashboard user (hence the installation)."""

    def __init__(self, ctx: AppContext, user: DashboardUser) -> None:
        super().__init__()
        self.ctx = ctx
        self.user = user
        self._channels: asyncio.Future[LoadedChannels] | None = None
        # Set by a resolver that refuses the whole request with an HTTP status (429): the router answers it.
        self.refusal: AppError | None = None

    @property
    def installation(self) -> Installation:
        return self.user.installation

    def channel_overview(self) -> asyncio.Future["LoadedChannels"]:
        """Saleor's channels merged with the stored settings; asked once per request however many fields need it."""
        if self._channels is None:
            self._channels = asyncio.ensure_future(load_channels(self.ctx, self.installation))
        return self._channels


def _context(info: Info) -> SettingsContext:
    return info.context

def _delivery_id(value: str) -> int | None:
    value = str(value).strip()
    return int(value) if value.isascii() and value.isdigit() and len(value) < 19 else None  # "²".isdigit() too


def _graphql_error(exc: AppError) -> GraphQLError:
    return GraphQLError(exc.message, extensions={"code": exc.code})


# --- root types -------------------------------------------------------------------------------------------------


@strawberry.type
class Query:
    @strawberry.field(description="The Saleor installation the dashboard token belongs to.")
    def installation(self, info: Info) -> InstallationInfo:
        context = _context(info)
        inst = context.installation
        return InstallationInfo(
            saleor_api_url=inst.saleor_api_url,
            app_id=inst.app_id,
            status=inst.status,
            status_reason=inst.status_reason,
            installed_at=inst.created_at,
            last_reconcile_at=inst.last_reconcile_at,
            last_reconcile_checked=inst.last_reconcile_checked or 0,
            last_reconcile_recovered=inst.last_reconcile_recovered or 0,
            last_reconcile_error=inst.last_reconcile_error,
            retention_days=context.ctx.settings.retention_days,
        )

    @strawberry.field
    def viewer(self, info: Info) -> Viewer:
        user = _context(info).user
        return Viewer(email=user.email, user_id=user.user_id)

    @strawberry.field(description="Every channel of the Saleor instance (live) with its VTmarketing settings.")
    async def channels(self, info: Info) -> list[Channel]:
        return (await _context(info).channel_overview()).channels

    @strawberry.field(description="Why `channels` holds only stored settings (Saleor unreachable); null when live.")
    async def channels_error(self, info: Info) -> UserError | None:
        return (await _context(info).channel_overview()).error

    @strawberry.field(
        description="Every channel the app stores settings or deliveries for, with its key status and delivery "
        "counts, read from the app's database only (Saleor is not asked): what the page polls."
    )
    async def stored_channels(self, info: Info) -> list[StoredChannel]:
        context = _context(info)
        installation_id = context.installation.id
        service = ChannelSettingsService(context.ctx)
        settings = {view.channel: view for view in await service.list(installation_id)}
        counts = await DeliveryService(context.ctx).counts(installation_id)
        names = await service.channel_names(installation_id)
        slugs = sorted(set(settings) | {slug for slug in counts if slug})
        return [
            StoredChannel(
                slug=slug,
                name=names.get(slug),
                settings=ChannelSettings.of(settings.get(slug) or ChannelSettingsView.of(None, slug)),
                delivery_counts=DeliveryCounts.of(counts.get(slug)),
            )
            for slug in slugs
        ]

    @strawberry.field
    def settings_options(self, info: Info) -> SettingsOptions:
        return SettingsOptions(
            item_id_choices=[Choice(value=v, label=ITEM_ID_LABELS.get(v, v)) for v in ITEM_ID_VALUES],
            order_id_choices=[Choice(value=v, label=ORDER_ID_LABELS.get(v, v)) for v in ORDER_ID_VALUES],
            delivery_statuses=[Choice(value=v, label=STATUS_LABELS.get(v, v)) for v in STATUS_VALUES],
            retention_days=_context(info).ctx.settings.retention_days,
        )

    @strawberry.field(description="The delivery log, newest first.")
    async def deliveries(
        self,
        info: Info,
        status: str | None = None,
        channel: str | None = None,
        search: str | None = None,
        first: int | None = DEFAULT_PAGE_SIZE,
        after: str | None = None,
    ) -> DeliveryConnection:
        context = _context(info)
        after_id = None
        if after:
            after_id = _delivery_id(after)
            if after_id is None:
                raise GraphQLError("`after` must be an `endCursor` of a previous page.", extensions={"code": "BAD_CURSOR"})
        try:
            views, has_more = await DeliveryService(context.ctx).list(
                installation_id=context.installation.id,
                status=status or None,
                channel=channel or None,
                search=(search or "").strip() or None,
                first=max(1, min(first or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)),
                after=after_id,
            )
        except AppError as exc:
            raise _graphql_error(exc) from None
        retention = context.ctx.settings.retention_days
        names = await ChannelSettingsService(context.ctx).channel_names(context.installation.id)
        items = [Delivery.of(view, retention, names) for view in views]
        return DeliveryConnection(items=items, has_more=has_more, end_cursor=items[-1].id if items else None)

    @strawberry.field(description="One delivery of this installation; null when there is none with that id.")
    async def delivery(self, info: Info, id: strawberry.ID) -> Delivery | None:  # noqa: A002 - GraphQL argument
        context = _context(info)
        delivery_id = _delivery_id(id)
        if delivery_id is None:
            return None
        try:
            view = await DeliveryService(context.ctx).get(delivery_id, installation_id=context.installation.id)
        except AppError:
            return None
        names = await ChannelSettingsService(context.ctx).channel_names(context.installation.id)
        return Delivery.of(view, context.ctx.settings.retention_days, names)


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Change a channel's settings; omitted fields keep their stored values.")
    async def update_channel_settings(self, info: Info, input: ChannelSettingsInput) -> ChannelSettingsPayload:  # noqa: A002
        context = _context(info)
        try:
            result = await ChannelSettingsService(context.ctx).apply(
                context.installation.id,
                input.channel.strip(),
                api_key=input.api_key,
                enabled=input.enabled,
                item_id=input.item_id,
                order_id=input.order_id,
            )
        except InvalidChannelSettings as exc:
            errors = [UserError(code="INVALID", field=field, message=message) for field, message in exc.fields.items()]
            return ChannelSettingsPayload(ok=False, settings=None, changed=[], errors=errors)
        if result.changed:
            log.info(
                "channel settings of %s changed by %s (%s)",
                result.view.channel,
                context.user.user_id,
                ", ".join(result.changed),
                extra={"installation": context.installation.id, "channel": result.view.channel},
            )
        return ChannelSettingsPayload(
            ok=True, settings=ChannelSettings.of(result.view), changed=list(result.changed), errors=[]
        )

    @strawberry.mutation(description="Send a marked test event with the channel's key (or `apiKey`, unsaved).")
    async def send_test_event(
        self, info: Info, channel: str, api_key: str | None = None, currency: str | None = None
    ) -> TestEventPayload:
        context = _context(info)
        slug = channel.strip()
        wait = context.ctx.test_event_limit.hit(context.installation.id)
        if wait is not None:
            context.refusal = TooManyRequests(
                f"Too many test events: at most {context.ctx.test_event_limit.limit} a minute. "
                f"Try again in {max(1, round(wait))} s."
            )
            raise GraphQLError(context.refusal.message, extensions={"code": context.refusal.code})
        result = await TestEventService(context.ctx).send(context.installation.id, slug, api_key=api_key, currency=currency)
        errors = [] if result.ok else [UserError(code=result.code or "FAILED", field=result.field, message=result.message)]
        settings = None
        if result.code != "INVALID_INPUT":
            settings = ChannelSettings.of(await ChannelSettingsService(context.ctx).get(context.installation.id, slug))
        return TestEventPayload(
            ok=result.ok,
            http_status=result.http_status,
            message=result.message,
            code=result.code,
            order_id=result.order_id,
            duration_ms=result.duration_ms,
            settings=settings,
            errors=errors,
        )

    @strawberry.mutation(description="Send one failed or skipped delivery again.")
    async def retry_delivery(self, info: Info, id: strawberry.ID) -> RetryDeliveryPayload:  # noqa: A002
        context = _context(info)
        delivery_id = _delivery_id(id)
        if delivery_id is None:
            return RetryDeliveryPayload(
                ok=False, delivery=None, errors=[UserError(code="NOT_FOUND", message=f"No delivery {id}.")]
            )
        try:
            view = await DeliveryService(context.ctx).retry(delivery_id, installation_id=context.installation.id)
        except AppError as exc:
            return RetryDeliveryPayload(ok=False, delivery=None, errors=[UserError(code=exc.code, message=exc.message)])
        names = await ChannelSettingsService(context.ctx).channel_names(context.installation.id)
        return RetryDeliveryPayload(ok=True, delivery=Delivery.of(view, context.ctx.settings.retention_days, names), errors=[])

    @strawberry.mutation(description="Send every failed delivery (of one channel, or all) again.")
    async def retry_failed_deliveries(self, info: Info, channel: str | None = None) -> RetryFailedPayload:
        context = _context(info)
        count = await DeliveryService(context.ctx).retry_failed(
            installation_id=context.installation.id, channel=channel or None
        )
        where = f" of {channel}" if channel else ""
        message = (
            f"{count} failed deliver{'y' if count == 1 else 'ies'}{where} will be sent again."
            if count
            else f"There are no failed deliveries{where} to send again."
        )
        return RetryFailedPayload(ok=True, count=count, message=message)
