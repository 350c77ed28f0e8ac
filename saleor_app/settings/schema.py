"""The settings API the dashboard page talks to: a strawberry GraphQL schema over the settings and delivery services.

Every resolver works for the one installation the dashboard token was verified for (`info.context.installation`),
so an id of another installation's delivery is simply "not found". Problems a merchant can fix (a malformed key,
an unknown delivery, Saleor unreachable) come back as data (`errors: [{field, code, message}]`, `channelsError`)
for the page to show next to the field; unexpected failures are logged here and masked in the answer.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaskErrors
from strawberry.fastapi import BaseContext
from strawberry.types import Info

from saleor_app.context import AppContext
from saleor_app.delivery.service import STATUS_VALUES, DeliveryService, DeliveryView
from saleor_app.errors import AppError
from saleor_app.settings.auth import DashboardUser
from saleor_app.settings.exceptions import InvalidChannelSettings
from saleor_app.settings.service import (
    ITEM_ID_VALUES,
    ORDER_ID_VALUES,
    ChannelOverviewItem,
    ChannelSettingsService,
    ChannelSettingsView,
    channel_overview,
)
from saleor_app.settings.test_event import TestEventService
from saleor_app.storage.models import Installation

log = logging.getLogger(__name__)

DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 100

ITEM_ID_LABELS = {
    "sku": "SKU",
    "variant-id": "Variant ID",
    "product-id": "Product ID",
    "variant-external-reference": "Variant external reference",
    "product-external-reference": "Product external reference",
}
ORDER_ID_LABELS = {"number": "Order number", "id": "Saleor order ID"}
STATUS_LABELS = {
    "pending": "Pending",
    "delivering": "Sending",
    "retrying": "Retrying",
    "delivered": "Delivered",
    "failed": "Failed",
    "skipped": "Skipped",
}


# --- context ----------------------------------------------------------------------------------------------------


class SettingsContext(BaseContext):
    """Per request: the process's AppContext and the verified dashboard user (hence the installation)."""

    def __init__(self, ctx: AppContext, user: DashboardUser) -> None:
        super().__init__()
        self.ctx = ctx
        self.user = user
        self._channels: asyncio.Future[LoadedChannels] | None = None

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


# --- types ------------------------------------------------------------------------------------------------------


@strawberry.type(description="A problem the merchant can act on; `field` names the form field it belongs to.")
class UserError:
    code: str
    message: str
    field: str | None = None


@strawberry.type
class Choice:
    value: str
    label: str


@strawberry.type(description="How many deliveries of a channel are in each state.")
class DeliveryCounts:
    pending: int = 0
    delivering: int = 0
    retrying: int = 0
    delivered: int = 0
    failed: int = 0
    skipped: int = 0

    @strawberry.field
    def total(self) -> int:
        return self.pending + self.delivering + self.retrying + self.delivered + self.failed + self.skipped

    @classmethod
    def of(cls, counts: dict[str, int] | None) -> "DeliveryCounts":
        counts = counts or {}
        return cls(**{status: counts.get(status, 0) for status in STATUS_VALUES})


@strawberry.type(description="One sales channel of the Saleor instance and how it talks to VTmarketing.")
class Channel:
    id: strawberry.ID | None = strawberry.field(description="Saleor's channel id; null when Saleor was not asked.")
    slug: str
    name: str
    currency_code: str | None
    is_active: bool | None
    exists_in_saleor: bool | None = strawberry.field(
        description="False: settings are stored for a channel Saleor no longer has. Null: Saleor could not be asked."
    )
    enabled: bool
    api_key_hint: str | None = strawberry.field(description="The last characters of the stored key, never the key.")
    item_id: str
    order_id: str
    configured: bool = strawberry.field(description="An API key is stored for this channel.")
    delivery_counts: DeliveryCounts


@strawberry.type(description="The stored settings of one channel, as saved.")
class ChannelSettings:
    channel: str
    enabled: bool
    api_key_hint: str | None
    item_id: str
    order_id: str
    configured: bool

    @classmethod
    def of(cls, view: ChannelSettingsView) -> "ChannelSettings":
        return cls(
            channel=view.channel,
            enabled=view.enabled,
            api_key_hint=view.api_key_hint,
            item_id=view.item_id,
            order_id=view.order_id,
            configured=view.configured,
        )


@strawberry.type
class Attempt:
    started_at: datetime
    duration_ms: int
    target: str = strawberry.field(description="vtmarketing (the send) or saleor (reading the order's lines).")
    http_status: int | None
    outcome: str
    excerpt: str | None


@strawberry.type
class Delivery:
    id: strawberry.ID
    order_number: str | None
    order_id: str | None
    channel: str | None
    status: str
    status_label: str
    reason: str | None = strawberry.field(description="Why it is in this state, in plain words.")
    source: str
    received_at: datetime
    next_attempt_at: datetime | None
    finished_at: datetime | None
    expires_at: datetime | None = strawberry.field(description="When the log entry will be pruned (RETENTION_DAYS).")
    payload_warning: str | None
    can_retry: bool
    attempts: list[Attempt]

    @classmethod
    def of(cls, view: DeliveryView, retention_days: int) -> "Delivery":
        return cls(
            id=strawberry.ID(str(view.id)),
            order_number=view.order_number,
            order_id=view.order_id,
            channel=view.channel,
            status=view.status,
            status_label=STATUS_LABELS.get(view.status, view.status),
            reason=view.reason,
            source=view.source,
            received_at=view.received_at,
            next_attempt_at=view.next_attempt_at,
            finished_at=view.finished_at,
            expires_at=view.finished_at + timedelta(days=retention_days) if view.finished_at else None,
            payload_warning=view.payload_warning,
            can_retry=view.status in ("failed", "skipped") and view.order_id is not None,
            attempts=[
                Attempt(
                    started_at=a.started_at,
                    duration_ms=a.duration_ms,
                    target=a.target,
                    http_status=a.http_status,
                    outcome=a.outcome,
                    excerpt=a.excerpt,
                )
                for a in view.attempts
            ],
        )


@strawberry.type(description="A page of the delivery log, newest first. Pass `endCursor` as `after` for the next.")
class DeliveryConnection:
    items: list[Delivery]
    has_more: bool
    end_cursor: str | None


@strawberry.type
class InstallationInfo:
    saleor_api_url: str
    app_id: str
    status: str
    status_reason: str | None
    installed_at: datetime
    last_reconcile_at: datetime | None
    last_reconcile_checked: int
    last_reconcile_recovered: int
    last_reconcile_error: str | None
    retention_days: int


@strawberry.type(description="The staff user the dashboard token belongs to.")
class Viewer:
    email: str | None
    user_id: str | None


@strawberry.type
class SettingsOptions:
    item_id_choices: list[Choice]
    order_id_choices: list[Choice]
    delivery_statuses: list[Choice]
    retention_days: int


@strawberry.input
class ChannelSettingsInput:
    channel: str
    api_key: str | None = strawberry.field(default=None, description="Omit (or null) to keep the stored key.")
    enabled: bool | None = None
    item_id: str | None = None
    order_id: str | None = None


@strawberry.type
class ChannelSettingsPayload:
    ok: bool
    settings: ChannelSettings | None
    errors: list[UserError]


@strawberry.type
class TestEventPayload:
    ok: bool
    http_status: int | None
    message: str
    code: str | None
    order_id: str | None = strawberry.field(description="The test event's orderId, to find it in VTmarketing.")
    duration_ms: int | None
    errors: list[UserError]


@strawberry.type
class RetryDeliveryPayload:
    ok: bool
    delivery: Delivery | None
    errors: list[UserError]


@strawberry.type
class RetryFailedPayload:
    ok: bool
    count: int
    message: str


# --- the channel overview (Saleor's channels + stored settings + delivery counts) -------------------------------


@dataclass
class LoadedChannels:
    channels: list[Channel]
    error: UserError | None


async def load_channels(ctx: AppContext, installation: Installation) -> LoadedChannels:
    overview = await channel_overview(ctx, installation)
    error = UserError(code=overview.error_code, message=overview.error_message or "") if overview.error_code else None
    return LoadedChannels([_channel(item) for item in overview.channels], error)


def _channel(item: ChannelOverviewItem) -> Channel:
    view = item.settings
    return Channel(
        id=strawberry.ID(str(item.saleor_id)) if item.saleor_id else None,
        slug=view.channel,
        name=item.name,
        currency_code=item.currency_code,
        is_active=item.is_active,
        exists_in_saleor=item.exists_in_saleor,
        enabled=view.enabled,
        api_key_hint=view.api_key_hint,
        item_id=view.item_id,
        order_id=view.order_id,
        configured=view.configured,
        delivery_counts=DeliveryCounts.of(item.counts),
    )


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
        items = [Delivery.of(view, retention) for view in views]
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
        return Delivery.of(view, context.ctx.settings.retention_days)


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Change a channel's settings; omitted fields keep their stored values.")
    async def update_channel_settings(self, info: Info, input: ChannelSettingsInput) -> ChannelSettingsPayload:  # noqa: A002
        context = _context(info)
        try:
            view = await ChannelSettingsService(context.ctx).update(
                context.installation.id,
                input.channel.strip(),
                api_key=input.api_key,
                enabled=input.enabled,
                item_id=input.item_id,
                order_id=input.order_id,
            )
        except InvalidChannelSettings as exc:
            errors = [UserError(code="INVALID", field=field, message=message) for field, message in exc.fields.items()]
            return ChannelSettingsPayload(ok=False, settings=None, errors=errors)
        log.info(
            "channel settings of %s changed by %s (%s)",
            view.channel,
            context.user.user_id,
            ", ".join(name for name, value in vars(input).items() if value is not None and name != "channel"),
            extra={"installation": context.installation.id, "channel": view.channel},
        )
        return ChannelSettingsPayload(ok=True, settings=ChannelSettings.of(view), errors=[])

    @strawberry.mutation(description="Send a marked test event with the channel's key (or `apiKey`, unsaved).")
    async def send_test_event(
        self, info: Info, channel: str, api_key: str | None = None, currency: str | None = None
    ) -> TestEventPayload:
        context = _context(info)
        result = await TestEventService(context.ctx).send(
            context.installation.id, channel.strip(), api_key=api_key, currency=currency
        )
        errors = [] if result.ok else [UserError(code=result.code or "FAILED", field=result.field, message=result.message)]
        return TestEventPayload(
            ok=result.ok,
            http_status=result.http_status,
            message=result.message,
            code=result.code,
            order_id=result.order_id,
            duration_ms=result.duration_ms,
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
        return RetryDeliveryPayload(ok=True, delivery=Delivery.of(view, context.ctx.settings.retention_days), errors=[])

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


# --- the schema -------------------------------------------------------------------------------------------------


def _unexpected(error: GraphQLError) -> bool:
    """An exception our code did not mean to show (a bug, a database outage): masked in the answer."""
    return error.original_error is not None and not isinstance(error.original_error, GraphQLError)


class SettingsSchema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        for error in errors:
            if _unexpected(error):
                original = error.original_error
                log.error("settings API failed at %s", error.path, exc_info=(type(original), original, original.__traceback__))
            elif (error.extensions or {}).get("code"):
                log.info("settings API answered %s: %s", error.extensions["code"], error.message)
            else:  # a malformed query: its message may quote the request's values, so it is not logged
                log.debug("settings API refused a malformed query")


schema = SettingsSchema(
    query=Query,
    mutation=Mutation,
    extensions=[lambda: MaskErrors(should_mask_error=_unexpected, error_message="Unexpected error; see the app's logs.")],
)
