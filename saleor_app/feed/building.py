"""Building a channel's feed: claim it in the database, walk Saleor's products page by page, write rows into a
gzip stream stored in chunks, and swap the new file in only when every page came through.

Memory stays flat: a batch of rows and one compressed chunk are all a build holds. Duplicate ids are kept out by
the database (`feed_items`), which also serves the consistency check. Each batch is one short transaction (on
SQLite the writer is shared with webhooks, which must not wait for a whole build) that also renews the claim's
lease; a builder that lost its claim stops and its partial file is discarded.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import aclosing, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from saleor_app.feed.catalogue import PAGE_SIZE, SaleorCatalogue
from saleor_app.feed.csv_file import CHUNK_BYTES, FeedFileWriter
from saleor_app.feed.rows import FeedOptions, FeedRow, product_rows
from saleor_app.feed.url_template import InvalidTemplate, ProductUrlTemplate
from saleor_app.metrics import Metrics
from saleor_app.saleor.client import SaleorClient
from saleor_app.saleor.exceptions import SaleorError
from saleor_app.secrets import SecretBox, SecretUnreadable
from saleor_app.storage.db import Database
from saleor_app.storage.feeds import MAX_ITEM_ID_LENGTH, FeedRepository
from saleor_app.storage.models import Feed, Installation, utcnow

log = logging.getLogger(__name__)

LEASE_SECONDS = 120.0  # renewed with every batch; a dead builder's feed is taken up after it
BATCH_ROWS = 2000  # rows per transaction
RETRY_AFTER_FAILURE = timedelta(minutes=5)  # a failed build is tried again this soon (or at its interval if sooner)


# Allocations between two collections of young objects while a build runs. 50,000 was the fastest (app CPU 31 -> 12 s
# for 100,000 variants) but let cyclic garbage pile up between collections: once the Saleor client kept its gql
# sessions open, the build's RSS grew by 76-80 MB (target < 50). 20,000: 21 MB, at about 14 s of CPU.
YOUNG_COLLECTION_THRESHOLD = 20_000
_collections_relaxed = 0  # builds under way in this process (the default comes back when the last one ends)


@contextmanager
def fewer_young_collections() -> Iterator[None]:
    """A build parses a page of JSON (~20,000 objects) per Saleor answer and drops it a moment later. With CPython's
    default threshold (700 allocations) the cyclic GC traverses those objects several times before they die and a
    build spent most of its CPU there (measured: 3 times the CPU of the build itself). Collecting young objects less
    often while building lets them die first; memory freed by reference counting is unaffected."""
    global _collections_relaxed
    if _collections_relaxed == 0:
        default = gc.get_threshold()
        gc.set_threshold(max(default[0], YOUNG_COLLECTION_THRESHOLD), *default[1:])
        fewer_young_collections.default = default  # type: ignore[attr-defined]
    _collections_relaxed += 1
    try:
        yield
    finally:
        _collections_relaxed -= 1
        if _collections_relaxed == 0:
            gc.set_threshold(*fewer_young_collections.default)  # type: ignore[attr-defined]


class LostClaim(Exception):
    """Another worker took the feed over (our lease ran out): this build must not be swapped in."""


@dataclass(frozen=True)
class BuildResult:
    channel: str
    ok: bool
    rows: int
    seconds: float
    error: str | None = None
    skipped_products: int = 0


def builder_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def is_due(feed: Feed, item_id_choice: str, now: datetime) -> bool:
    """Whether the scheduler should build `feed` now."""
    if feed.build_lease_until is not None and feed.build_lease_until > now:
        return False  # being built
    if feed.rebuild_requested or feed.last_attempt_at is None:
        return True
    if feed.last_error:
        retry = min(RETRY_AFTER_FAILURE, timedelta(minutes=feed.refresh_minutes))
        return feed.last_attempt_at + retry <= now
    if feed.built_item_id is not None and feed.built_item_id != item_id_choice:
        return True  # the events send other ids now: the feed must follow at once
    return feed.last_attempt_at + timedelta(minutes=feed.refresh_minutes) <= now


class FeedBuilder:
    def __init__(
        self, db: Database, saleor: SaleorClient, secrets: SecretBox, metrics: Metrics, *,
        worker_id: str | None = None, lease_seconds: float = LEASE_SECONDS, batch_rows: int = BATCH_ROWS,
        chunk_bytes: int = CHUNK_BYTES, page_size: int = PAGE_SIZE,
    ) -> None:
        self.db, self.saleor, self.secrets, self.metrics = db, saleor, secrets, metrics
        self.worker_id = worker_id or builder_id()
        self.lease_seconds, self.batch_rows, self.chunk_bytes, self.page_size = lease_seconds, batch_rows, chunk_bytes, page_size

    async def build(self, feed: Feed, installation: Installation, item_id_choice: str) -> BuildResult | None:
        """Claim `feed` (as read, with its `build_claims`) and build it. None: another worker holds or just took it."""
        async with self.db.transaction() as session:
            claimed = await FeedRepository(session).claim(
                feed.id, seen_claims=feed.build_claims, worker_id=self.worker_id, lease_seconds=self.lease_seconds
            )
        if not claimed:
            return None
        extra = {"installation": installation.id, "channel": feed.channel_slug}
        log.info("building the product feed of channel %s", feed.channel_slug, extra=extra)
        started = time.perf_counter()
        build_id: int | None = None
        try:
            options = FeedOptions(
                channel=feed.channel_slug, item_id=item_id_choice,
                url_template=ProductUrlTemplate.parse(feed.product_url_template or ""),
                color_attribute=feed.color_attribute, brand_attribute=feed.brand_attribute,
            )
            token = self.secrets.decrypt(installation.token_encrypted)
            async with self.db.transaction() as session:
                build_id = await FeedRepository(session).start_build(feed.id)
            with fewer_young_collections():
                result = await self._write(feed, build_id,
                                           SaleorCatalogue(self.saleor, installation.saleor_api_url, token), options,
                                           started)
        except BaseException as exc:  # a cancelled build (worker stopping) also gives the feed back
            error = _failure(exc)
            await self._give_back(feed.id, build_id, error)
            self.metrics.feed_builds.labels("failed").inc()
            if not isinstance(exc, Exception):
                raise
            if error.startswith("internal error"):
                log.exception("feed build of channel %s crashed", feed.channel_slug, extra=extra)
            else:
                log.warning("feed build of channel %s failed: %s", feed.channel_slug, error, extra=extra)
            return BuildResult(feed.channel_slug, False, 0, time.perf_counter() - started, error)
        self.metrics.feed_builds.labels("ok").inc()
        self.metrics.feed_build_seconds.observe(result.seconds)
        self.metrics.feed_rows.labels(str(installation.id), feed.channel_slug).set(result.rows)
        log.info("built the product feed of channel %s: %d rows in %.1f s", feed.channel_slug, result.rows,
                 result.seconds, extra=extra)
        return result

    async def _write(self, feed: Feed, build_id: int, catalogue: SaleorCatalogue, options: FeedOptions,
                     started: float) -> BuildResult:
        writer = FeedFileWriter(self.chunk_bytes)
        pending: list[FeedRow] = []
        stored_chunks = 0
        skipped = 0

        async def flush(final: bool) -> None:
            nonlocal stored_chunks
            first_seen: dict[str, FeedRow] = {}
            for row in pending:
                if len(row.id) <= MAX_ITEM_ID_LENGTH:
                    first_seen.setdefault(row.id, row)
            pending.clear()
            async with self.db.transaction() as session:
                repo = FeedRepository(session)
                if not await repo.renew(feed.id, worker_id=self.worker_id, lease_seconds=self.lease_seconds):
                    raise LostClaim()
                new = await repo.add_items(build_id, list(first_seen))
                writer.write(row for key, row in first_seen.items() if key in new)
                for chunk in writer.finish() if final else writer.full_chunks():
                    await repo.add_chunk(build_id, stored_chunks, chunk)
                    stored_chunks += 1
                if final and not await repo.finish_build(
                    feed.id, build_id, worker_id=self.worker_id, rows=writer.rows, chunks=stored_chunks,
                    csv_bytes=writer.csv_bytes, gzip_bytes=writer.gzip_bytes, sha256=writer.sha256,
                    seconds=time.perf_counter() - started, item_id_choice=options.item_id,
                ):
                    raise LostClaim()

        async with aclosing(catalogue.products(options.channel, first=self.page_size)) as pages:
            async for page in pages:
                skipped += page.skipped
                for product in page.products:
                    pending.extend(product_rows(product, options))
                if len(pending) >= self.batch_rows:
                    await flush(final=False)
        await flush(final=True)
        return BuildResult(options.channel, True, writer.rows, time.perf_counter() - started, None, skipped)

    async def _give_back(self, feed_id: int, build_id: int | None, error: str) -> None:
        try:
            async with self.db.transaction() as session:
                repo = FeedRepository(session)
                if build_id is not None:
                    await repo.discard_build(build_id)
                await repo.release_failed(feed_id, worker_id=self.worker_id, error=error)
        except Exception:  # the lease runs out and the next build cleans up: never hide the build's own error
            log.exception("could not record the failed feed build")


def _failure(exc: BaseException) -> str:
    """What went wrong, in words the settings page shows."""
    if isinstance(exc, SaleorError):
        return f"Saleor: {exc}"
    if isinstance(exc, InvalidTemplate):
        return f"The product URL template is not valid: {exc}"
    if isinstance(exc, SecretUnreadable):
        return "The app's Saleor token cannot be read (SECRET_KEY changed): reinstall the app."
    if isinstance(exc, LostClaim):
        return "Another worker took the build over (this one was too slow to renew its claim)."
    if isinstance(exc, asyncio.CancelledError):
        return "The build was stopped (the worker shut down); it runs again shortly."
    return f"internal error: {type(exc).__name__}"


class FeedScheduler:
    """The worker's periodic job: build every feed that is due, one after the other."""

    def __init__(self, db: Database, builder: FeedBuilder, after_build=None) -> None:  # type: ignore[no-untyped-def]
        self.db, self.builder = db, builder
        self._after_build = after_build  # async (installation, feed_id, channel) -> None, e.g. the consistency check

    async def run_due(self) -> list[BuildResult]:
        async with self.db.session() as session:
            candidates = await FeedRepository(session).scheduled()
        results = []
        now = utcnow()
        for feed, installation, item_id_choice in candidates:
            if not is_due(feed, item_id_choice, now):
                continue
            result = await self.builder.build(feed, installation, item_id_choice)
            if result is None:
                continue
            results.append(result)
            if result.ok and self._after_build is not None:
                try:
                    await self._after_build(installation, feed.id, feed.channel_slug)
                except Exception:  # the consistency check must never cost a build
                    log.exception("checking the feed of channel %s against the orders failed", feed.channel_slug)
        return results
