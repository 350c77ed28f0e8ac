"""Repositories: the only code that writes SQL. Each wraps one AsyncSession owned by the caller."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Sequence

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from saleor_app.storage.models import (
    OPEN_STATUSES,
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
    utcnow,
)


def _insert(session: AsyncSession, model):  # type: ignore[no-untyped-def]
    """INSERT with the dialect's ON CONFLICT support (SQLite and PostgreSQL both have it)."""
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model)


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

    async def save_registration(self, *, saleor_api_url: str, app_id: str, token_encrypted: str, jwks: str) -> Installation:
        """Create the installation, or replace the credentials of a re-install (history and settings stay)."""
        installation = await self.by_api_url(saleor_api_url)
        now = utcnow()
        if installation is None:
            installation = Installation(saleor_api_url=saleor_api_url, created_at=now, reconcile_watermark=now)
            self.session.add(installation)
        elif installation.app_id != app_id:
            # A new app in Saleor (removed and installed again): its orders start now.
            installation.reconcile_watermark = now
        installation.app_id = app_id
        installation.token_encrypted = token_encrypted
        installation.jwks = jwks
        installation.jwks_fetched_at = now
        installation.status = InstallationStatus.ACTIVE.value
        installation.status_reason = None
        await self.session.flush()
        return installation

    async def update_jwks(self, installation_id: int, jwks: str) -> None:
        await self.session.execute(
            update(Installation).where(Installation.id == installation_id).values(jwks=jwks, jwks_fetched_at=utcnow())
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


class DeliveryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add_if_new(self, new: NewDelivery) -> int | None:
        """Store a confirmed order once per (installation, order). Returns the new id, or None if already known."""
        now = utcnow()
        values = dict(
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
        statement = (
            _insert(self.session, Delivery)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["installation_id", "order_id"])
            .returning(Delivery.id)
        )
        return await self.session.scalar(statement)

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

    async def claim_due(self, *, worker_id: str, limit: int, lease_seconds: float, now: datetime | None = None) -> list[Delivery]:
        """Take up to `limit` deliveries that are due, or whose worker's lease ran out, for this worker.

        On PostgreSQL the row locks are skipped by concurrent claimers (FOR UPDATE SKIP LOCKED), so two workers never
        hold the same delivery; on SQLite one process claims, serialised by the database's single writer.
        """
        now = now or utcnow()
        due = (
            select(Delivery.id)
            .where(
                or_(
                    and_(
                        Delivery.status.in_((DeliveryStatus.PENDING.value, DeliveryStatus.RETRYING.value)),
                        Delivery.next_attempt_at <= now,
                    ),
                    and_(Delivery.status == DeliveryStatus.DELIVERING.value, Delivery.lease_until < now),
                )
            )
            .order_by(Delivery.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        ids = list(await self.session.scalars(due))
        if not ids:
            return []
        await self.session.execute(
            update(Delivery)
            .where(Delivery.id.in_(ids))
            .values(
                status=DeliveryStatus.DELIVERING.value,
                claimed_by=worker_id,
                lease_until=now + timedelta(seconds=lease_seconds),
                updated_at=now,
            )
        )
        rows = await self.session.scalars(select(Delivery).where(Delivery.id.in_(ids)).execution_options(populate_existing=True))
        return list(rows)

    async def next_due_at(self) -> datetime | None:
        return await self.session.scalar(
            select(func.min(Delivery.next_attempt_at)).where(
                Delivery.status.in_((DeliveryStatus.PENDING.value, DeliveryStatus.RETRYING.value))
            )
        )

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

    async def settle(
        self,
        delivery_id: int,
        *,
        worker_id: str,
        status: str,
        reason: str | None,
        next_attempt_at: datetime | None = None,
        event_body: str | None = None,
    ) -> bool:
        """Move a claimed delivery to its next state. False if this worker no longer holds it (lease lost)."""
        now = utcnow()
        values: dict = dict(
            status=status,
            reason=reason,
            next_attempt_at=next_attempt_at,
            lease_until=None,
            claimed_by=None,
            updated_at=now,
            finished_at=None if status in OPEN_STATUSES else now,
        )
        if event_body is not None:
            values["event_body"] = event_body
        result = await self.session.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id, Delivery.claimed_by == worker_id, Delivery.status == DeliveryStatus.DELIVERING.value)
            .values(**values)
        )
        return result.rowcount == 1

    async def release_claims(self, worker_id: str) -> int:
        """Give back what a stopping worker holds, so another takes it up at once."""
        result = await self.session.execute(
            update(Delivery)
            .where(Delivery.claimed_by == worker_id, Delivery.status == DeliveryStatus.DELIVERING.value)
            .values(status=DeliveryStatus.PENDING.value, claimed_by=None, lease_until=None, next_attempt_at=utcnow())
        )
        return result.rowcount

    async def release_claims_of_others(self, worker_id: str) -> int:
        result = await self.session.execute(
            update(Delivery)
            .where(Delivery.claimed_by != worker_id, Delivery.status == DeliveryStatus.DELIVERING.value)
            .values(status=DeliveryStatus.PENDING.value, claimed_by=None, lease_until=None, next_attempt_at=utcnow())
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

    async def present(self, installation_id: int, keys: list[str]) -> list[str]:
        """Which of `keys` are recorded for this installation, in one query."""
        if not keys:
            return []
        found = set(await self.session.scalars(
            select(AppProblem.key).where(AppProblem.installation_id == installation_id, AppProblem.key.in_(keys))
        ))
        return [key for key in keys if key in found]
