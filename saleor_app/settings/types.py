"""The settings API's GraphQL types (strawberry) and the labels the page shows for stored values.

Each type that mirrors a service view has an `of()` that builds it from that view; resolvers live in resolvers.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import strawberry

from saleor_app.context import AppContext
from saleor_app.delivery.service import STATUS_VALUES, DeliveryView
from saleor_app.settings.service import ChannelOverviewItem, ChannelSettingsView, channel_overview
from saleor_app.storage.models import Installation

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
    key_status: str | None = strawberry.field(
        description="What VTmarketing last said of the stored key: accepted, refused, or null (not known yet)."
    )
    key_status_message: str | None
    key_status_at: datetime | None
    delivery_counts: DeliveryCounts


ENABLED_DESCRIPTION = "Orders of this channel are sent; always false for a channel without a key."


@strawberry.type(description="The stored settings of one channel, as saved.")
class ChannelSettings:
    channel: str
    enabled: bool = strawberry.field(description=ENABLED_DESCRIPTION)
    api_key_hint: str | None
    item_id: str
    order_id: str
    configured: bool
    key_status: str | None
    key_status_message: str | None
    key_status_at: datetime | None

    @classmethod
    def of(cls, view: ChannelSettingsView) -> "ChannelSettings":
        return cls(
            channel=view.channel,
            enabled=view.enabled,
            api_key_hint=view.api_key_hint,
            item_id=view.item_id,
            order_id=view.order_id,
            configured=view.configured,
            key_status=view.key_status,
            key_status_message=view.key_status_message,
            key_status_at=view.key_status_at,
        )


@strawberry.type(description="A channel as stored by the app (no call to Saleor): cheap enough to poll.")
class StoredChannel:
    slug: str
    name: str | None = strawberry.field(description="The name Saleor last gave; null if the page never listed it.")
    settings: ChannelSettings
    delivery_counts: DeliveryCounts


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
    channel_name: str | None = strawberry.field(description="The channel's name as Saleor last gave it.")
    status: str
    status_label: str
    reason: str | None = strawberry.field(description="Why it is in this state, in plain words.")
    source: str
    received_at: datetime = strawberry.field(description="When the order arrived; a resend does not change it.")
    resent_at: datetime | None = strawberry.field(description="The latest resend, which restarted the retry window.")
    next_attempt_at: datetime | None
    finished_at: datetime | None
    expires_at: datetime | None = strawberry.field(description="When the log entry will be pruned (RETENTION_DAYS).")
    payload_warning: str | None
    can_retry: bool
    attempts: list[Attempt]

    @classmethod
    def of(cls, view: DeliveryView, retention_days: int, channel_names: dict[str, str] | None = None) -> "Delivery":
        return cls(
            id=strawberry.ID(str(view.id)),
            order_number=view.order_number,
            order_id=view.order_id,
            channel=view.channel,
            channel_name=(channel_names or {}).get(view.channel or ""),
            status=view.status,
            status_label=STATUS_LABELS.get(view.status, view.status),
            reason=view.reason,
            source=view.source,
            received_at=view.received_at,
            resent_at=view.resent_at,
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
    changed: list[str] = strawberry.field(description="The fields this update really changed; empty: nothing to save.")
    errors: list[UserError]


@strawberry.type
class TestEventPayload:
    ok: bool
    http_status: int | None
    message: str
    code: str | None
    order_id: str | None = strawberry.field(description="The test event's orderId, to find it in VTmarketing.")
    duration_ms: int | None
    settings: ChannelSettings | None = strawberry.field(description="The channel's settings after the test (key status).")
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
        key_status=view.key_status,
        key_status_message=view.key_status_message,
        key_status_at=view.key_status_at,
        delivery_counts=DeliveryCounts.of(item.counts),
    )
