"""Repositories: the only code that writes SQL. Each wraps one AsyncSession owned by the caller."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Sequence

from sqlalchemy import Integer, Interval, and_, bindparam, delete, func, insert, literal, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from saleor_app.storage.models import (
    INTERRUPTED_NOTE,
    INTERRUPTED_OUTCOME,
    OPEN_STATUSES,
    QUEUED_CONDITION,
    UTCDateTime,
    AppProblem,
    BackfillCursor,
    ChannelName,
    ChannelSettings,
    Delivery,
    DeliveryAttempt,
    DeliveryStatus,
    Installation,
    InstallationStatus,
    KeyStatus,
    WriteProbe,
    utcnow,
)


def _insert(session: AsyncSession, model):  # type: ignore[no-untyped-def]
    """INSERT with the dialect's ON CONFLICT support (SQLite and PostgreSQL both have it)."""
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model)


def _is_postgres(session: AsyncSession) -> bool:
    return session.bind is not None and session.bind.dialect.name == "postgresql"


def _has_nul(*values: str | None) -> bool:
    """PostgreSQL text never holds NUL and refuses it as a query parameter: a filter with one matches nothing."""
    return any(value and "\x00" in value for value in values)


class InstallationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, installation_id: int) -> Installation | None:
        return await self.session.get(Installation, installation_id)

    async def by_api_url(self, saleor_api_url: str) -> Installation | None:
        return await self.session.scalar(select(Installation).where(Installation.saleor_api_url == saleor_api_url))

    async def list(self, *, active_only: bool = False) -> Sequence[Installation]:
        query = select(Installation).order_by(Installation.id)
        if active_only:
            query = query.where(Installation.status == InstallationStatus.ACTIVE.value)
        return (await self.session.scalars(query)).all()

    async def save_registration(self, *, saleor_api_url: str, app_id: str, token_encrypted: str, jwks: str,
                                saleor_time: datetime | None = None) -> Installation:
        """Create the installation, or replace the credentials of a re-install (history and settings stay).
        `saleor_time`: Saleor's clock at the handshake, where reconciliation starts (the app's clock if unknown)."""
        installation = await self.by_api_url(saleor_api_url)
        now = utcnow()
        starts = saleor_time or now
        if installation is None:
            installation = Installation(saleor_api_url=saleor_api_url, created_at=now, reconcile_watermark=starts,
                                        saleor_installed_at=saleor_time)
            self.session.add(installation)
        elif installation.app_id != app_id:
            # A new app in Saleor (removed and installed again): its orders start now.
            installation.reconcile_watermark = starts
            installation.saleor_installed_at = saleor_time
        installation.app_id = app_id
        installation.token_encrypted = token_encrypted
        installation.jwks = jwks
        installation.jwks_fetched_at = now
        installation.status = InstallationStatus.ACTIVE.value
        installation.status_reason = None
        await self.session.flush()
        return installation

    async def channel_config(self, installation_id: int, channel_slug: str):  # type: ignore[no-untyped-def]
        """What delivering an order of this channel needs, in one query: the installation's URL, status and token
        ciphertext, and the channel's settings (None where the channel has none). None: no such installation."""
        channel = ChannelSettings
        query = (
            select(Installation.saleor_api_url, Installation.status, Installation.token_encrypted,
                   channel.id.label("channel_id"), channel.api_key_encrypted, channel.enabled, channel.item_id,
                   channel.order_id, channel.key_status)
            .outerjoin(channel, and_(channel.installation_id == Installation.id, channel.channel_slug == channel_slug))
            .where(Installation.id == installation_id)
        )
        return (await self.session.execute(query)).first()

    async def update_jwks(self, installation_id: int, jwks: str) -> None:
        await self.session.execute(
            update(Installation).where(Installation.id == installation_id).values(jwks=jwks, jwks_fetched_at=utcnow())
        )

    async def set_token_ciphertext(self, installation_id: int, token_encrypted: str) -> None:
        await self.session.execute(
            update(Installation).where(Installation.id == installation_id).values(token_encrypted=token_encrypted)
        )

    async def mark_uninstalled(self, installation_id: int, reason: str) -> None:
        await self.session.execute(
            update(Installation)
            .where(Installation.id == installation_id)
            .values(status=InstallationStatus.UNINSTALLED.value, status_reason=reason, updated_at=utcnow())
        )


class ChannelSettingsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, installation_id: int, channel_slug: str) -> ChannelSettings | None:
        return await self.session.scalar(
            select(ChannelSettings).where(
                ChannelSettings.installation_id == installation_id, ChannelSettings.channel_slug == channel_slug
            )
        )

    async def list(self, installation_id: int) -> Sequence[ChannelSettings]:
        return (
            await self.session.scalars(
                select(ChannelSettings)
                .where(ChannelSettings.installation_id == installation_id)
                .order_by(ChannelSettings.channel_slug)
            )
        ).all()

    async def with_api_keys(self) -> Sequence[ChannelSettings]:
        """Every channel of every installation that has a stored API key."""
        return (
            await self.session.scalars(
                select(ChannelSettings)
                .where(ChannelSettings.api_key_encrypted.is_not(None))
                .order_by(ChannelSettings.installation_id, ChannelSettings.channel_slug)
            )
        ).all()

    async def set_api_key_ciphertext(self, channel_settings_id: int, api_key_encrypted: str) -> None:
        await self.session.execute(
            update(ChannelSettings).where(ChannelSettings.id == channel_settings_id).values(api_key_encrypted=api_key_encrypted)
        )

    async def get_or_create(self, installation_id: int, channel_slug: str) -> ChannelSettings:
        settings = await self.get(installation_id, channel_slug)
        if settings is None:
            settings = ChannelSettings(installation_id=installation_id, channel_slug=channel_slug)
            self.session.add(settings)
            await self.session.flush()
        return settings

    async def record_key_verdict(
        self, installation_id: int, channel_slug: str, *, status: str, message: str, at: datetime, key_read_at: datetime
    ) -> bool:
        """Store what VTmarketing said of the channel's stored key, unless the key changed after `key_read_at` (the
        verdict was about an older key). An acceptance of a key already known to work writes nothing."""
        conditions = [
            ChannelSettings.installation_id == installation_id,
            ChannelSettings.channel_slug == channel_slug,
            ChannelSettings.api_key_encrypted.is_not(None),
            or_(ChannelSettings.key_changed_at.is_(None), ChannelSettings.key_changed_at <= key_read_at),
        ]
        if status == KeyStatus.ACCEPTED.value:
            conditions.append(
                or_(ChannelSettings.key_status.is_(None), ChannelSettings.key_status != KeyStatus.ACCEPTED.value)
            )
        result = await self.session.execute(
            update(ChannelSettings)
            .where(*conditions)
            .values(key_status=status, key_status_message=message, key_status_at=at)
            .execution_options(synchronize_session=False)
        )
        return result.rowcount == 1


class ChannelNameRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def names(self, installation_id: int) -> dict[str, str]:
        rows = await self.session.execute(
            select(ChannelName.channel_slug, ChannelName.name).where(ChannelName.installation_id == installation_id)
        )
        return {slug: name for slug, name in rows}

    async def save(self, installation_id: int, names: dict[str, str]) -> int:
        """Store the names that are new or changed (usually none); returns how many were written."""
        stored = await self.names(installation_id)
        changed = {slug: name for slug, name in names.items() if stored.get(slug) != name}
        now = utcnow()
        for slug, name in changed.items():
            statement = (
                _insert(self.session, ChannelName)
                .values(installation_id=installation_id, channel_slug=slug, name=name, updated_at=now)
                .on_conflict_do_update(index_elements=["installation_id", "channel_slug"], set_={"name": name, "updated_at": now})
            )
            await self.session.execute(statement)
        return len(changed)


@dataclass(frozen=True)
class NewDelivery:
    installation_id: int
    order_id: str | None
    order_number: str | None
    channel_slug: str | None
    payload: str
    source: str
    status: str = DeliveryStatus.PENDING.value
    reason: str | None = None
    payload_warning: str | None = None


@dataclass(frozen=True)
class Settlement:
    """Where one claimed delivery goes next (see DeliveryRepository.settle_many)."""

    delivery_id: int
    status: str
    reason: str | None
    next_attempt_at: datetime | None = None
    event_body: str | None = None  # None: keep what was last sent
    attempt: dict | None = None  # the VTmarketing attempt that led here (started_at, duration_ms, outcome, …)


# One statement for a batch of settlements (a Core executemany: compiled once, every row with its own values; an
# ORM update() with a list would be the ORM's bulk update by primary key instead).
_deliveries = Delivery.__table__
_SETTLE = (
    update(_deliveries)
    .where(_deliveries.c.id == bindparam("b_id"))
    .values(
        status=bindparam("b_status"), reason=bindparam("b_reason"), next_attempt_at=bindparam("b_next"),
        lease_until=None, claimed_by=None, updated_at=bindparam("b_now"), finished_at=bindparam("b_finished"),
        event_body=func.coalesce(bindparam("b_body", type_=_deliveries.c.event_body.type), _deliveries.c.event_body),
        attempt_count=_deliveries.c.attempt_count + bindparam("b_attempted", type_=Integer()),
    )
)


class DeliveryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add_all_if_new(self, news: Sequence[NewDelivery]) -> list[int | None]:
        """Store confirmed orders once per (installation, order): one INSERT .. ON CONFLICT DO NOTHING RETURNING for
        all of them, through the session's connection (Core, not the unit of work: one statement and one trip to
        the driver whatever their number). Returns each one's new id, None where the order was already known or
        comes again earlier in `news`."""
        now = utcnow()
        keyed = [new for new in news if new.order_id is not None]
        ids: dict[tuple[int, str], int] = {}
        connection = await self.session.connection()
        if keyed:
            statement = (
                _insert(self.session, Delivery)
                .on_conflict_do_nothing(index_elements=["installation_id", "order_id"])
                .returning(Delivery.id, Delivery.installation_id, Delivery.order_id)
            )
            # RETURNING lists only the rows inserted, in no promised order: matched back by their key.
            ids = {(installation_id, order_id): new_id
                   for new_id, installation_id, order_id in await connection.execute(
                       statement, [self._row(new, now) for new in keyed])}
        result: list[int | None] = []
        for new in news:
            if new.order_id is None:  # no key to match by (an unreadable payload, rare): a statement of its own
                statement = _insert(self.session, Delivery).values(self._row(new, now)).returning(Delivery.id)
                result.append((await connection.execute(statement)).scalar_one())
            else:
                result.append(ids.pop((new.installation_id, new.order_id), None))  # a repeat finds it gone: None
        return result

    @staticmethod
    def _row(new: NewDelivery, now: datetime) -> dict:
        return dict(
            installation_id=new.installation_id,
            order_id=new.order_id,
            order_number=new.order_number,
            channel_slug=new.channel_slug,
            payload=new.payload,
            payload_warning=new.payload_warning,
            source=new.source,
            status=new.status,
            reason=new.reason,
            attempt_count=0,
            next_attempt_at=now if new.status == DeliveryStatus.PENDING.value else None,
            received_at=now,
            updated_at=now,
            finished_at=None if new.status in OPEN_STATUSES else now,
        )

    async def known_order_ids(self, installation_id: int, order_ids: list[str]) -> set[str]:
        if not order_ids:
            return set()
        rows = await self.session.scalars(
            select(Delivery.order_id).where(Delivery.installation_id == installation_id, Delivery.order_id.in_(order_ids))
        )
        return {r for r in rows if r}

    async def get(self, delivery_id: int, *, with_attempts: bool = False) -> Delivery | None:
        options = [selectinload(Delivery.attempts)] if with_attempts else []
        return await self.session.get(Delivery, delivery_id, options=options)

    async def claim_due(self, *, worker_id: str, limit: int, lease_seconds: float, reclaim_expired: bool,
                        now: datetime | None = None) -> list[Delivery]:
        """Take up to `limit` deliveries that are due for this worker (see delivery/lease.py), oldest due first.

        One UPDATE … WHERE id IN (the first `limit` entries of the queue index) RETURNING: the claim reads `limit`
        index entries and stops, so it costs the same with 10 or 10,000 orders due. On PostgreSQL the rows are
        locked with FOR UPDATE SKIP LOCKED, so concurrent claimers never wait for each other nor take the same row.

        With `reclaim_expired` (PostgreSQL), also deliveries whose holder's lease ran out by the database's clock,
        never this worker's own; such a take-over is written in the delivery's log as an interrupted attempt.
        Without it (SQLite: one process), a delivery in flight is never taken again.
        """
        now = now or utcnow()
        claimed: list[Delivery] = []
        if reclaim_expired:
            claimed = await self._take_over_expired(worker_id, limit, lease_seconds, now)
        if len(claimed) < limit:
            claimed += await self._take(self._queue_head(limit - len(claimed), now), worker_id, lease_seconds, now)
        return claimed

    def _queue_head(self, limit: int, now: datetime):  # type: ignore[no-untyped-def]
        """The ids of the first `limit` due deliveries, read in order from the queue index (no sort)."""
        return self._queue_read("id", "AND next_attempt_at <= :now", limit).bindparams(
            bindparam("now", now, type_=UTCDateTime())
        ).columns(Delivery.id)

    def _queue_read(self, column: str, condition: str, limit: int):  # type: ignore[no-untyped-def]
        """A read of the queue index in order. Written out: the index's condition must appear with its literals
        (QUEUED_CONDITION), and SQLite, whose planner without statistics would read ix_deliveries_due and sort
        every due row, is told the index (SQLAlchemy has no index hint for SQLite). PostgreSQL's rows are locked
        and skipped by concurrent claimers."""
        postgres = _is_postgres(self.session)
        index = "" if postgres else " INDEXED BY ix_deliveries_queue"
        lock = " FOR UPDATE SKIP LOCKED" if postgres and column == "id" else ""
        return text(
            f"SELECT {column} FROM deliveries{index} WHERE {QUEUED_CONDITION} {condition} "
            f"ORDER BY next_attempt_at LIMIT {int(limit)}{lock}"
        )

    async def _take_over_expired(self, worker_id: str, limit: int, lease_seconds: float, now: datetime) -> list[Delivery]:
        """Rare: a worker died (or lost the database for a whole lease) holding these. Few rows are ever in flight,
        so this reads a short range of the status index."""
        expired = (
            select(Delivery.id)
            .where(Delivery.status == DeliveryStatus.DELIVERING.value, Delivery.lease_until < self._database_now(),
                   Delivery.claimed_by != worker_id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        ids = list(await self.session.scalars(expired))
        if not ids:
            return []
        await self._record_interrupted(Delivery.id.in_(ids))
        return await self._take(ids, worker_id, lease_seconds, now)

    async def _take(self, which, worker_id: str, lease_seconds: float, now: datetime) -> list[Delivery]:  # type: ignore[no-untyped-def]
        statement = (
            update(Delivery)
            .where(Delivery.id.in_(which))
            .values(status=DeliveryStatus.DELIVERING.value, claimed_by=worker_id,
                    lease_until=self._lease_end(lease_seconds, now), updated_at=now)
            .returning(Delivery)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        rows = list(await self.session.scalars(statement))
        rows.sort(key=lambda d: (d.next_attempt_at is None, d.next_attempt_at or now))  # RETURNING has no order
        return rows

    def _database_now(self):  # type: ignore[no-untyped-def]
        """The database's clock on PostgreSQL (leases are judged by it, never by a worker's own clock)."""
        return func.clock_timestamp() if _is_postgres(self.session) else utcnow()

    def _lease_end(self, lease_seconds: float, now: datetime):  # type: ignore[no-untyped-def]
        if _is_postgres(self.session):
            return func.clock_timestamp() + literal(timedelta(seconds=lease_seconds), Interval())
        return now + timedelta(seconds=lease_seconds)  # informational on SQLite: the process is the lease

    async def renew_leases(self, worker_id: str, *, lease_seconds: float) -> int:
        """Extend every lease `worker_id` holds, in one statement (PostgreSQL's clock)."""
        result = await self.session.execute(
            update(Delivery)
            .where(Delivery.claimed_by == worker_id, Delivery.status == DeliveryStatus.DELIVERING.value)
            .values(lease_until=self._lease_end(lease_seconds, utcnow()))
        )
        return result.rowcount

    async def _record_interrupted(self, which) -> None:  # type: ignore[no-untyped-def]
        """An "interrupted" attempt for each delivery matching `which`: its holder may have sent it, nobody knows."""
        await self.session.execute(
            insert(DeliveryAttempt).from_select(
                ["delivery_id", "started_at", "duration_ms", "target", "outcome", "excerpt"],
                select(Delivery.id, Delivery.updated_at, literal(0), literal("vtmarketing"), literal(INTERRUPTED_OUTCOME),
                       literal(INTERRUPTED_NOTE)).where(which),
            )
        )
        await self.session.execute(update(Delivery).where(which).values(attempt_count=Delivery.attempt_count + 1))

    async def next_due_at(self) -> datetime | None:
        """When the queue's first delivery is due: the first entry of the queue index."""
        query = self._queue_read("next_attempt_at", "AND next_attempt_at IS NOT NULL", 1)
        return await self.session.scalar(query.columns(Delivery.next_attempt_at))

    async def record_attempt(
        self,
        delivery_id: int,
        *,
        started_at: datetime,
        duration_ms: int,
        outcome: str,
        http_status: int | None,
        excerpt: str | None,
        target: str = "vtmarketing",
    ) -> None:
        # A Core INSERT: the ORM's unit of work costs several times more CPU for a row nobody reads back here.
        await self.session.execute(
            insert(DeliveryAttempt).values(
                delivery_id=delivery_id,
                started_at=started_at,
                duration_ms=duration_ms,
                outcome=outcome,
                http_status=http_status,
                excerpt=excerpt,
                target=target,
            )
        )
        await self.session.execute(
            update(Delivery).where(Delivery.id == delivery_id).values(attempt_count=Delivery.attempt_count + 1)
        )

    async def settle_many(self, worker_id: str, settlements: Sequence[Settlement]) -> set[int]:
        """Move claimed deliveries to their next states, each with the attempt that led there: one SELECT (locking
        the rows this worker still holds), one UPDATE and one INSERT, each run once for the whole batch. Returns the
        ids settled; one this worker no longer holds (lease lost) is left untouched, so a settle that is tried
        again after an uncertain commit never records its attempt twice."""
        if not settlements:
            return set()
        held = set(await self.session.scalars(
            select(Delivery.id)
            .where(Delivery.id.in_([s.delivery_id for s in settlements]), Delivery.claimed_by == worker_id,
                   Delivery.status == DeliveryStatus.DELIVERING.value)
            .with_for_update()
        ))
        mine = [s for s in settlements if s.delivery_id in held]
        if not mine:
            return held
        now = utcnow()
        await self.session.execute(
            _SETTLE,
            [dict(b_id=s.delivery_id, b_status=s.status, b_reason=s.reason, b_next=s.next_attempt_at, b_now=now,
                  b_finished=None if s.status in OPEN_STATUSES else now, b_body=s.event_body,
                  b_attempted=0 if s.attempt is None else 1) for s in mine],
        )
        attempts = [dict(delivery_id=s.delivery_id, target="vtmarketing", **s.attempt) for s in mine if s.attempt]
        if attempts:
            await self.session.execute(insert(DeliveryAttempt), attempts)
        return held

    async def release_claims(self, worker_id: str) -> int:
        """Give back what a stopping worker still holds (sends cut short by the end of the grace period), so another
        takes it up at once; each is marked interrupted, as its send may have reached VTmarketing."""
        which = and_(Delivery.claimed_by == worker_id, Delivery.status == DeliveryStatus.DELIVERING.value)
        return await self._hand_back(which)

    async def hand_back_interrupted(self) -> int:
        """SQLite, at a worker's start: everything left `delivering` belongs to a process that is gone (only one
        process may work the file): back to the queue at once, marked interrupted."""
        return await self._hand_back(Delivery.status == DeliveryStatus.DELIVERING.value)

    async def _hand_back(self, which) -> int:  # type: ignore[no-untyped-def]
        await self._record_interrupted(which)
        result = await self.session.execute(
            update(Delivery)
            .where(which)
            .values(status=DeliveryStatus.PENDING.value, claimed_by=None, lease_until=None, next_attempt_at=utcnow(),
                    reason=f"{INTERRUPTED_NOTE[0].upper()}{INTERRUPTED_NOTE[1:]}; it will be sent again.")
        )
        return result.rowcount

    async def requeue(self, delivery_ids: list[int], *, reason: str) -> int:
        """Send again on demand: failed, skipped or delivered deliveries go back to pending. The retry window starts
        again; `received_at` keeps the order's arrival."""
        now = utcnow()
        result = await self.session.execute(
            update(Delivery)
            .where(Delivery.id.in_(delivery_ids), Delivery.status.notin_(OPEN_STATUSES), Delivery.order_id.is_not(None))
            .values(
                status=DeliveryStatus.PENDING.value,
                reason=reason,
                next_attempt_at=now,
                retry_window_started_at=now,
                finished_at=None,
                updated_at=now,
            )
        )
        return result.rowcount

    async def ids(self, *, installation_id: int | None = None, status: str | None = None, channel: str | None = None) -> list[int]:
        if _has_nul(status, channel):
            return []
        query = select(Delivery.id)
        if installation_id is not None:
            query = query.where(Delivery.installation_id == installation_id)
        if status:
            query = query.where(Delivery.status == status)
        if channel:
            query = query.where(Delivery.channel_slug == channel)
        return list(await self.session.scalars(query))

    async def search(
        self,
        *,
        installation_id: int | None = None,
        status: str | None = None,
        channel: str | None = None,
        search: str | None = None,
        before_id: int | None = None,
        limit: int = 50,
    ) -> list[Delivery]:
        """Newest first, keyset-paginated by id."""
        if _has_nul(status, channel, search):
            return []
        query = select(Delivery).options(selectinload(Delivery.attempts)).order_by(Delivery.id.desc()).limit(limit)
        if installation_id is not None:
            query = query.where(Delivery.installation_id == installation_id)
        if status:
            query = query.where(Delivery.status == status)
        if channel:
            query = query.where(Delivery.channel_slug == channel)
        if search:
            term = search.strip().lstrip("#")
            query = query.where(or_(Delivery.order_number == term, Delivery.order_id == term))
        if before_id is not None:
            query = query.where(Delivery.id < before_id)
        return list(await self.session.scalars(query))

    async def counts_by_status(self, installation_id: int) -> dict[tuple[str | None, str], int]:
        rows = await self.session.execute(
            select(Delivery.channel_slug, Delivery.status, func.count())
            .where(Delivery.installation_id == installation_id)
            .group_by(Delivery.channel_slug, Delivery.status)
        )
        return {(channel, status): count for channel, status, count in rows}

    async def queue_stats(self) -> tuple[int, datetime | None]:
        """How many deliveries wait, and since when the oldest of them waits (its arrival, or its resend)."""
        waiting_since = func.coalesce(Delivery.retry_window_started_at, Delivery.received_at)
        row = (
            await self.session.execute(
                select(func.count(), func.min(waiting_since)).where(Delivery.status.in_(OPEN_STATUSES))
            )
        ).one()
        return int(row[0]), row[1]

    async def prune_finished(self, older_than: datetime) -> int:
        result = await self.session.execute(
            delete(Delivery).where(Delivery.status.notin_(OPEN_STATUSES), Delivery.finished_at < older_than)
        )
        return result.rowcount


class BackfillCursorRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get_or_create(self, installation_id: int, channel_slug: str, since: str, until: str) -> BackfillCursor:
        cursor = await self.session.scalar(
            select(BackfillCursor).where(
                BackfillCursor.installation_id == installation_id,
                BackfillCursor.channel_slug == channel_slug,
                BackfillCursor.since == since,
                BackfillCursor.until == until,
            )
        )
        if cursor is None:
            cursor = BackfillCursor(installation_id=installation_id, channel_slug=channel_slug, since=since, until=until)
            self.session.add(cursor)
            await self.session.flush()
        return cursor


class AppProblemRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, installation_id: int, key: str) -> AppProblem | None:
        return await self.session.scalar(
            select(AppProblem).where(AppProblem.installation_id == installation_id, AppProblem.key == key)
        )

    async def claim(self, installation_id: int, key: str, message: str) -> bool:
        """Record a problem unless it is already recorded; True if this caller is the one to report it."""
        statement = (
            _insert(self.session, AppProblem)
            .values(installation_id=installation_id, key=key, message=message, created_at=utcnow())
            .on_conflict_do_nothing(index_elements=["installation_id", "key"])
            .returning(AppProblem.id)
        )
        return await self.session.scalar(statement) is not None

    async def remove(self, installation_id: int, key: str) -> None:
        await self.session.execute(
            delete(AppProblem).where(AppProblem.installation_id == installation_id, AppProblem.key == key)
        )

    async def keys(self, installation_id: int) -> set[str]:
        """Every problem recorded for this installation (usually none)."""
        return set(await self.session.scalars(select(AppProblem.key).where(AppProblem.installation_id == installation_id)))

    async def present(self, installation_id: int, keys: list[str]) -> list[str]:
        """Which of `keys` are recorded for this installation, in one query."""
        if not keys:
            return []
        found = set(await self.session.scalars(
            select(AppProblem.key).where(AppProblem.installation_id == installation_id, AppProblem.key.in_(keys))
        ))
        return [key for key in keys if key in found]


class WriteProbeRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def touch(self) -> None:
        """Rewrite the probe row: a real write, so a full disk or a read-only database shows."""
        statement = _insert(self.session, WriteProbe).values(id=1, written_at=utcnow())
        await self.session.execute(statement.on_conflict_do_update(index_elements=["id"], set_={"written_at": utcnow()}))
