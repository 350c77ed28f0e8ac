"""SQLAlchemy models. The same schema runs on SQLite and PostgreSQL; Alembic migrations create it."""

from __future__ import annotations

import enum
from datetime import datetime, timezone

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on both SQLite (which forgets the zone) and PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):  # type: ignore[no-untyped-def]
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime stored")
        return value.astimezone(timezone.utc) if value is not None else None

    def process_result_value(self, value, dialect):  # type: ignore[no-untyped-def]
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value


# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class InstallationStatus(str, enum.Enum):
    ACTIVE = "active"
    UNINSTALLED = "uninstalled"  # APP_DELETED received, or the token is refused for good


class Installation(Base):
    """One Saleor instance that installed the app (the SDK's "APL" record)."""

    __tablename__ = "installations"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    saleor_api_url: Mapped[str] = mapped_column(String(512), unique=True)
    app_id: Mapped[str] = mapped_column(String(256))
    token_encrypted: Mapped[str] = mapped_column(Text)
    jwks: Mapped[str] = mapped_column(Text)
    jwks_fetched_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status: Mapped[str] = mapped_column(String(32), default=InstallationStatus.ACTIVE.value)
    status_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    saleor_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # When Saleor says this app was installed (its clock, from its answer at register): reconciliation leaves orders
    # created before it to backfill. Null for installations made before this was kept (their created_at is used).
    saleor_installed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Reconciliation (see delivery/recovery.py): orders updated before the watermark (Saleor's clock) were looked at.
    reconcile_watermark: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_reconcile_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_reconcile_checked: Mapped[int] = mapped_column(Integer, default=0)
    last_reconcile_recovered: Mapped[int] = mapped_column(Integer, default=0)
    last_reconcile_error: Mapped[str | None] = mapped_column(Text, nullable=True)

    channels: Mapped[list[ChannelSettings]] = relationship(back_populates="installation", cascade="all, delete-orphan")

    @property
    def is_active(self) -> bool:
        return self.status == InstallationStatus.ACTIVE.value


class ItemIdSource(str, enum.Enum):
    SKU = "sku"
    VARIANT_ID = "variant-id"
    PRODUCT_ID = "product-id"
    VARIANT_EXTERNAL_REFERENCE = "variant-external-reference"
    PRODUCT_EXTERNAL_REFERENCE = "product-external-reference"


class OrderIdSource(str, enum.Enum):
    NUMBER = "number"
    ID = "id"


class ChannelSettings(Base):
    """How one sales channel of one installation talks to VTmarketing."""

    __tablename__ = "channel_settings"
    __table_args__ = (UniqueConstraint("installation_id", "channel_slug", name="uq_channel_settings_installation_channel"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    installation_id: Mapped[int] = mapped_column(ForeignKey("installations.id", ondelete="CASCADE"))
    channel_slug: Mapped[str] = mapped_column(String(255))
    api_key_encrypted: Mapped[str | None] = mapped_column(Text, nullable=True)
    api_key_hint: Mapped[str | None] = mapped_column(String(16), nullable=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    item_id: Mapped[str] = mapped_column(String(64), default=ItemIdSource.SKU.value)
    order_id: Mapped[str] = mapped_column(String(32), default=OrderIdSource.NUMBER.value)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # What VTmarketing last said of the stored key (settings/key_status.py): null until a delivery or a test event
    # with it got an answer that tells; reset when the key changes. `key_changed_at` lets a verdict reached with an
    # older key be ignored.
    key_status: Mapped[str | None] = mapped_column(String(16), nullable=True)  # accepted | refused
    key_status_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    key_status_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    key_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    installation: Mapped[Installation] = relationship(back_populates="channels")


class KeyStatus(str, enum.Enum):
    ACCEPTED = "accepted"
    REFUSED = "refused"


class ChannelName(Base):
    """A channel's name as Saleor last gave it, so places that only know the slug (the worker's dashboard problems,
    the delivery log) can name the channel as the merchant knows it. Refreshed whenever the page lists channels."""

    __tablename__ = "channel_names"
    __table_args__ = (UniqueConstraint("installation_id", "channel_slug", name="uq_channel_names_installation_channel"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    installation_id: Mapped[int] = mapped_column(ForeignKey("installations.id", ondelete="CASCADE"))
    channel_slug: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class DeliveryStatus(str, enum.Enum):
    PENDING = "pending"
    DELIVERING = "delivering"
    RETRYING = "retrying"
    DELIVERED = "delivered"
    FAILED = "failed"
    SKIPPED = "skipped"


# States the worker still has to act on.
OPEN_STATUSES = (DeliveryStatus.PENDING.value, DeliveryStatus.RETRYING.value, DeliveryStatus.DELIVERING.value)
# States that wait in the queue for their `next_attempt_at`.
QUEUED_STATUSES = (DeliveryStatus.PENDING.value, DeliveryStatus.RETRYING.value)
# The queue index's condition, spelled with literals: a partial index serves a query only when the planner can see
# that the query's condition implies it, which neither SQLite nor a generic PostgreSQL plan can see through a bound
# parameter. The claim repeats this exact text (storage/repositories.py).
QUEUED_CONDITION = "status IN ('pending', 'retrying')"


# The outcome and text of an attempt whose worker never saw its end (it died or was stopped mid-send), written when
# another worker or the next process takes the delivery up. Every send that may have reached VTmarketing twice has one.
INTERRUPTED_OUTCOME = "interrupted"
INTERRUPTED_NOTE = "the app stopped during this attempt; VTmarketing may have received it"


class DeliverySource(str, enum.Enum):
    WEBHOOK = "webhook"
    RECONCILE = "reconcile"
    BACKFILL = "backfill"


class Delivery(Base):
    """One confirmed order of one installation, and its way to VTmarketing. At most one per (installation, order)."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("installation_id", "order_id", name="uq_deliveries_installation_order"),
        Index("ix_deliveries_due", "status", "next_attempt_at"),
        # The queue in claim order: a claim reads its first `limit` entries and stops, however many are due.
        Index("ix_deliveries_queue", "next_attempt_at", sqlite_where=text(QUEUED_CONDITION),
              postgresql_where=text(QUEUED_CONDITION)),
        Index("ix_deliveries_installation_received", "installation_id", "received_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    installation_id: Mapped[int] = mapped_column(ForeignKey("installations.id", ondelete="CASCADE"))
    # Saleor's global order id. Null only for a signed body we could not read (kept to be shown, never sent).
    order_id: Mapped[str | None] = mapped_column(String(256), nullable=True)
    order_number: Mapped[str | None] = mapped_column(String(64), nullable=True)
    channel_slug: Mapped[str | None] = mapped_column(String(255), nullable=True)
    source: Mapped[str] = mapped_column(String(16), default=DeliverySource.WEBHOOK.value)
    payload: Mapped[str] = mapped_column(Text)  # the order as Saleor sent it (raw webhook body or query result)
    payload_warning: Mapped[str | None] = mapped_column(Text, nullable=True)  # Saleor `errors` in the payload
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING.value)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    claimed_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    event_body: Mapped[str | None] = mapped_column(Text, nullable=True)  # what was (last) sent to VTmarketing
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # When a resend restarted the retry window (null: never resent). `received_at` stays the order's arrival.
    retry_window_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    attempts: Mapped[list[DeliveryAttempt]] = relationship(
        back_populates="delivery", cascade="all, delete-orphan", order_by="DeliveryAttempt.id"
    )

    @property
    def retry_window_start(self) -> datetime:
        """Failures are retried for DELIVERY_MAX_AGE from here: the order's arrival, or its latest resend."""
        return self.retry_window_started_at or self.received_at


class DeliveryAttempt(Base):
    """One try to send (or enrich) a delivery: when, what came back, how long it took."""

    __tablename__ = "delivery_attempts"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id", ondelete="CASCADE"), index=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    target: Mapped[str] = mapped_column(String(16), default="vtmarketing")  # vtmarketing | saleor
    http_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    outcome: Mapped[str] = mapped_column(String(32))
    excerpt: Mapped[str | None] = mapped_column(Text, nullable=True)

    delivery: Mapped[Delivery] = relationship(back_populates="attempts")


class BackfillCursor(Base):
    """Where a backfill of one channel stopped, so it can resume without resending or skipping."""

    __tablename__ = "backfill_cursors"
    __table_args__ = (UniqueConstraint("installation_id", "channel_slug", "since", "until", name="uq_backfill_run"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    installation_id: Mapped[int] = mapped_column(ForeignKey("installations.id", ondelete="CASCADE"))
    channel_slug: Mapped[str] = mapped_column(String(255))
    since: Mapped[str] = mapped_column(String(32))
    until: Mapped[str] = mapped_column(String(32), default="")
    cursor: Mapped[str | None] = mapped_column(Text, nullable=True)
    seen: Mapped[int] = mapped_column(Integer, default=0)
    queued: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class AppProblem(Base):
    """A problem the app reported to the Saleor dashboard (appProblemCreate), so it can dismiss it later."""

    __tablename__ = "app_problems"
    __table_args__ = (UniqueConstraint("installation_id", "key", name="uq_app_problems_installation_key"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    installation_id: Mapped[int] = mapped_column(ForeignKey("installations.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(128))
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# --- the product feed (saleor_app/feed/) ---------------------------------------------------------------------------


class Feed(Base):
    """The VTmarketing product feed of one channel: the merchant's choices, the secret token of its URL, and the
    state of its builds (claimed in the database, so one worker builds it at a time)."""

    __tablename__ = "feeds"
    __table_args__ = (UniqueConstraint("installation_id", "channel_slug", name="uq_feeds_installation_channel"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    installation_id: Mapped[int] = mapped_column(ForeignKey("installations.id", ondelete="CASCADE"))
    channel_slug: Mapped[str] = mapped_column(String(255))
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    product_url_template: Mapped[str | None] = mapped_column(Text, nullable=True)
    color_attribute: Mapped[str | None] = mapped_column(String(255), nullable=True)
    brand_attribute: Mapped[str | None] = mapped_column(String(255), nullable=True)
    refresh_minutes: Mapped[int] = mapped_column(Integer, default=60)
    # The URL's token: looked up by its SHA-256, kept encrypted so the page and the CLI can show the URL again.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    token_encrypted: Mapped[str] = mapped_column(Text)
    rebuild_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    # Compare-and-set counter of build claims: a worker claims only if nobody claimed since it looked.
    build_claims: Mapped[int] = mapped_column(Integer, default=0)
    build_claimed_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    build_lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)  # last build started
    last_built_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)  # last build that succeeded
    last_build_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    rows: Mapped[int] = mapped_column(Integer, default=0)
    # The channel's item-id choice the current file was built with: a different choice now makes it due at once.
    built_item_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)  # the last build's failure (cleared by success)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    mismatch_streak: Mapped[int] = mapped_column(Integer, default=0)  # consecutive checks with items missing
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class FeedBuildStatus(str, enum.Enum):
    BUILDING = "building"  # being written; never served
    CURRENT = "current"  # the file served (one per feed)
    SUPERSEDED = "superseded"  # the previous file, kept until the next swap so downloads under way can finish


class FeedBuild(Base):
    """One build of a feed's file: written in chunks, swapped in as current only when it completed."""

    __tablename__ = "feed_builds"
    __table_args__ = (Index("ix_feed_builds_feed_status", "feed_id", "status"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    feed_id: Mapped[int] = mapped_column(ForeignKey("feeds.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default=FeedBuildStatus.BUILDING.value)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    rows: Mapped[int] = mapped_column(Integer, default=0)
    chunks: Mapped[int] = mapped_column(Integer, default=0)
    csv_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    gzip_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)  # of the CSV: the ETag


class FeedChunk(Base):
    """A piece of a build's gzip-compressed CSV; a file is its chunks in `seq` order."""

    __tablename__ = "feed_chunks"

    build_id: Mapped[int] = mapped_column(ForeignKey("feed_builds.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class FeedItem(Base):
    """An `ID` a build lists: keeps rows unique while building and answers "is this event's item in the feed?"."""

    __tablename__ = "feed_items"

    build_id: Mapped[int] = mapped_column(ForeignKey("feed_builds.id", ondelete="CASCADE"), primary_key=True)
    item_id: Mapped[str] = mapped_column(String(512), primary_key=True)


class WriteProbe(Base):
    """One row per database that /readyz rewrites when nothing else wrote lately: a database that refuses writes
    (full disk, read-only file or replica) is seen even while no order arrives."""

    __tablename__ = "write_probes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    written_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
