"""The product feed's repository: feeds, their builds, chunks and item ids (the only SQL of saleor_app/feed/).

A build is written under its own id while the previous file keeps being served; `finish_build` swaps it in, in one
transaction, only if the builder still holds the feed's claim. Claims are compare-and-set on `build_claims` plus a
lease, so on PostgreSQL with several workers a due feed is built once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Sequence

from sqlalchemy import and_, delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from saleor_app.storage.models import (
    ChannelSettings,
    Delivery,
    DeliveryStatus,
    Feed,
    FeedBuild,
    FeedBuildStatus,
    FeedChunk,
    FeedItem,
    Installation,
    InstallationStatus,
    ItemIdSource,
    utcnow,
)

MAX_ITEM_ID_LENGTH = 512  # FeedItem.item_id


@dataclass(frozen=True)
class DeliveredEvent:
    """A delivered order of a channel and the item ids its event sent."""

    order_number: str | None
    item_ids: tuple[str, ...]


class FeedRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- feeds ---------------------------------------------------------------------------------------------------

    async def get(self, installation_id: int, channel_slug: str) -> Feed | None:
        return await self.session.scalar(
            select(Feed).where(Feed.installation_id == installation_id, Feed.channel_slug == channel_slug)
        )

    async def get_by_id(self, feed_id: int) -> Feed | None:
        return await self.session.get(Feed, feed_id, populate_existing=True)

    async def list(self, installation_id: int | None = None) -> Sequence[Feed]:
        query = select(Feed).order_by(Feed.installation_id, Feed.channel_slug)
        if installation_id is not None:
            query = query.where(Feed.installation_id == installation_id)
        return (await self.session.scalars(query)).all()

    async def create(self, installation_id: int, channel_slug: str, *, token_hash: str, token_encrypted: str,
                     refresh_minutes: int) -> Feed:
        feed = Feed(installation_id=installation_id, channel_slug=channel_slug, token_hash=token_hash,
                    token_encrypted=token_encrypted, refresh_minutes=refresh_minutes)
        self.session.add(feed)
        await self.session.flush()
        return feed

    async def servable(self, token_hash: str) -> tuple[Feed, FeedBuild | None] | None:
        """The feed a URL token opens (with its current build, if any), when the app is still installed."""
        feed = await self.session.scalar(
            select(Feed)
            .join(Installation, Installation.id == Feed.installation_id)
            .where(Feed.token_hash == token_hash, Installation.status == InstallationStatus.ACTIVE.value)
        )
        if feed is None:
            return None
        return feed, await self.current_build(feed.id)

    async def scheduled(self) -> list[tuple[Feed, Installation, str]]:
        """Feeds that are on, of active installations, with the channel's item-id choice (default "sku"): the
        scheduler decides which of them are due."""
        rows = await self.session.execute(
            select(Feed, Installation, ChannelSettings.item_id)
            .join(Installation, Installation.id == Feed.installation_id)
            .outerjoin(ChannelSettings, and_(ChannelSettings.installation_id == Feed.installation_id,
                                             ChannelSettings.channel_slug == Feed.channel_slug))
            .where(Feed.enabled.is_(True), Feed.product_url_template.is_not(None),
                   Installation.status == InstallationStatus.ACTIVE.value)
            .order_by(Feed.id)
        )
        return [(feed, installation, item_id or ItemIdSource.SKU.value) for feed, installation, item_id in rows]

    # --- claims --------------------------------------------------------------------------------------------------

    async def claim(self, feed_id: int, *, seen_claims: int, worker_id: str, lease_seconds: float,
                    now: datetime | None = None) -> bool:
        """Take the feed for one build if nobody claimed it since `seen_claims` was read and no lease is running."""
        now = now or utcnow()
        result = await self.session.execute(
            update(Feed)
            .where(
                Feed.id == feed_id,
                Feed.build_claims == seen_claims,
                or_(Feed.build_lease_until.is_(None), Feed.build_lease_until < now),
            )
            .values(
                build_claims=Feed.build_claims + 1,
                build_claimed_by=worker_id,
                build_lease_until=now + timedelta(seconds=lease_seconds),
                last_attempt_at=now,
                rebuild_requested=False,
            )
        )
        return result.rowcount == 1

    async def renew(self, feed_id: int, *, worker_id: str, lease_seconds: float) -> bool:
        result = await self.session.execute(
            update(Feed)
            .where(Feed.id == feed_id, Feed.build_claimed_by == worker_id)
            .values(build_lease_until=utcnow() + timedelta(seconds=lease_seconds))
        )
        return result.rowcount == 1

    async def release_failed(self, feed_id: int, *, worker_id: str, error: str) -> None:
        """The build failed: keep the current file, say why, give the feed back."""
        await self.session.execute(
            update(Feed)
            .where(Feed.id == feed_id, Feed.build_claimed_by == worker_id)
            .values(build_claimed_by=None, build_lease_until=None, last_error=error, last_error_at=utcnow())
        )

    # --- builds --------------------------------------------------------------------------------------------------

    async def start_build(self, feed_id: int) -> int:
        """A new build; leftovers of builds that never finished (a killed worker) are removed first."""
        stale = list(await self.session.scalars(
            select(FeedBuild.id).where(FeedBuild.feed_id == feed_id, FeedBuild.status == FeedBuildStatus.BUILDING.value)
        ))
        await self._delete_builds(stale)
        return int(await self.session.scalar(
            insert(FeedBuild).values(feed_id=feed_id, status=FeedBuildStatus.BUILDING.value, started_at=utcnow())
            .returning(FeedBuild.id)
        ))

    async def add_items(self, build_id: int, item_ids: list[str]) -> set[str]:
        """Record ids (distinct) for a build; returns those it did not list yet (the rows to write). Only the
        builder holding the feed's claim writes a build, so a read then an insert cannot race."""
        if not item_ids:
            return set()
        listed = await self.listed(build_id, item_ids)
        new = [item_id for item_id in item_ids if item_id not in listed]
        if new:
            # Core executemany on the table: one cached statement, not a multi-row VALUES compiled per batch.
            await self.session.execute(insert(FeedItem.__table__), [{"build_id": build_id, "item_id": i} for i in new])
        return set(new)

    async def add_chunk(self, build_id: int, seq: int, data: bytes) -> None:
        await self.session.execute(insert(FeedChunk).values(build_id=build_id, seq=seq, data=data))

    async def finish_build(
        self, feed_id: int, build_id: int, *, worker_id: str, rows: int, chunks: int, csv_bytes: int,
        gzip_bytes: int, sha256: str, seconds: float, item_id_choice: str,
    ) -> bool:
        """Swap the build in as the served file, atomically, if this worker still holds the feed. The file it
        replaces stays (superseded, without its item ids) until the next swap, so downloads under way finish."""
        now = utcnow()
        held = await self.session.execute(
            update(Feed)
            .where(Feed.id == feed_id, Feed.build_claimed_by == worker_id)
            .values(build_claimed_by=None, build_lease_until=None, last_built_at=now, last_build_seconds=seconds,
                    rows=rows, built_item_id=item_id_choice, last_error=None, last_error_at=None)
        )
        if held.rowcount != 1:
            return False
        superseded = list(await self.session.scalars(
            select(FeedBuild.id).where(FeedBuild.feed_id == feed_id, FeedBuild.status == FeedBuildStatus.SUPERSEDED.value)
        ))
        await self._delete_builds(superseded)
        previous = list(await self.session.scalars(
            select(FeedBuild.id).where(FeedBuild.feed_id == feed_id, FeedBuild.status == FeedBuildStatus.CURRENT.value)
        ))
        if previous:
            await self.session.execute(delete(FeedItem).where(FeedItem.build_id.in_(previous)))
            await self.session.execute(
                update(FeedBuild).where(FeedBuild.id.in_(previous)).values(status=FeedBuildStatus.SUPERSEDED.value)
            )
        await self.session.execute(
            update(FeedBuild)
            .where(FeedBuild.id == build_id)
            .values(status=FeedBuildStatus.CURRENT.value, finished_at=now, rows=rows, chunks=chunks,
                    csv_bytes=csv_bytes, gzip_bytes=gzip_bytes, sha256=sha256)
        )
        return True

    async def discard_build(self, build_id: int) -> None:
        await self._delete_builds([build_id])

    async def _delete_builds(self, build_ids: list[int]) -> None:
        # Explicit, rather than trusting ON DELETE CASCADE, which SQLite applies only with foreign_keys=ON.
        if not build_ids:
            return
        await self.session.execute(delete(FeedItem).where(FeedItem.build_id.in_(build_ids)))
        await self.session.execute(delete(FeedChunk).where(FeedChunk.build_id.in_(build_ids)))
        await self.session.execute(delete(FeedBuild).where(FeedBuild.id.in_(build_ids)))

    async def current_build(self, feed_id: int) -> FeedBuild | None:
        return await self.session.scalar(
            select(FeedBuild).where(FeedBuild.feed_id == feed_id, FeedBuild.status == FeedBuildStatus.CURRENT.value)
        )

    async def chunk(self, build_id: int, seq: int) -> bytes | None:
        return await self.session.scalar(
            select(FeedChunk.data).where(FeedChunk.build_id == build_id, FeedChunk.seq == seq)
        )

    async def listed(self, build_id: int, item_ids: list[str]) -> set[str]:
        """Which of `item_ids` the build lists."""
        found: set[str] = set()
        for start in range(0, len(item_ids), 2000):
            batch = item_ids[start:start + 2000]
            found.update(await self.session.scalars(
                select(FeedItem.item_id).where(FeedItem.build_id == build_id, FeedItem.item_id.in_(batch))
            ))
        return found

    async def set_mismatch_streak(self, feed_id: int, streak: int) -> None:
        await self.session.execute(update(Feed).where(Feed.id == feed_id).values(mismatch_streak=streak))

    # --- the merchant's settings ----------------------------------------------------------------------------------

    async def request_rebuild(self, feed_id: int) -> None:
        await self.session.execute(update(Feed).where(Feed.id == feed_id).values(rebuild_requested=True))

    async def set_token_ciphertext(self, feed_id: int, token_encrypted: str) -> None:
        """The same token, encrypted again (rotate-secrets): the URL does not change."""
        await self.session.execute(update(Feed).where(Feed.id == feed_id).values(token_encrypted=token_encrypted))

    async def replace_token(self, feed_id: int, *, token_hash: str, token_encrypted: str) -> None:
        await self.session.execute(
            update(Feed).where(Feed.id == feed_id).values(token_hash=token_hash, token_encrypted=token_encrypted)
        )

    # --- consistency ---------------------------------------------------------------------------------------------

    async def recent_delivered(self, installation_id: int, channel_slug: str, limit: int) -> list[DeliveredEvent]:
        """The last `limit` delivered orders of a channel, newest first, with the item ids their event sent."""
        rows = await self.session.execute(
            select(Delivery.order_number, Delivery.event_body)
            .where(Delivery.installation_id == installation_id, Delivery.channel_slug == channel_slug,
                   Delivery.status == DeliveryStatus.DELIVERED.value, Delivery.event_body.is_not(None))
            .order_by(Delivery.finished_at.desc(), Delivery.id.desc())
            .limit(limit)
        )
        return [DeliveredEvent(number, _event_item_ids(body)) for number, body in rows]


def _event_item_ids(body: str | None) -> tuple[str, ...]:
    """`items[].id` of a stored confirmation event; nothing for a body that is not one."""
    try:
        items = json.loads(body or "")["event"]["confirmation"].get("items") or []
    except (ValueError, KeyError, TypeError, AttributeError):
        return ()
    return tuple(str(item["id"]) for item in items if isinstance(item, dict) and isinstance(item.get("id"), str))
