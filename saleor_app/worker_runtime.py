"""Builds a DeliveryWorker with its periodic jobs (pruning; reconciliation when configured; product feeds)."""

from __future__ import annotations

import logging
from datetime import timedelta

from saleor_app.context import AppContext
from saleor_app.delivery.recovery import Reconciler
from saleor_app.delivery.worker import DeliveryWorker
from saleor_app.storage.models import utcnow
from saleor_app.storage.repositories import DeliveryRepository

log = logging.getLogger(__name__)

PRUNE_INTERVAL_SECONDS = 3600.0


async def prune_finished_deliveries(ctx: AppContext) -> int:
    """Delete deliveries that finished (delivered, failed, skipped) more than RETENTION_DAYS ago; open ones stay."""
    cutoff = utcnow() - timedelta(days=ctx.settings.retention_days)
    async with ctx.db.transaction() as session:
        removed = await DeliveryRepository(session).prune_finished(cutoff)
    if removed:
        log.info("pruned %d deliveries finished before %s", removed, cutoff.isoformat())
    return removed


def build_worker(ctx: AppContext, **kwargs) -> DeliveryWorker:  # type: ignore[no-untyped-def]
    worker = DeliveryWorker(ctx, **kwargs)

    async def prune() -> None:
        await prune_finished_deliveries(ctx)

    worker.add_periodic(PRUNE_INTERVAL_SECONDS, prune, name="prune")
    # Saleor gives up on a webhook after ~5 minutes (and at once on a 4xx): look for what it never delivered.
    worker.add_periodic(ctx.settings.reconcile_interval_seconds, Reconciler(ctx).run_all, name="reconcile")
    worker.add_periodic(ctx.settings.feed_schedule_seconds, feed_scheduler(ctx).run_due, name="feeds")
    return worker


def feed_scheduler(ctx: AppContext):  # type: ignore[no-untyped-def]
    """Builds the product feeds that are due; a feed is claimed in the database, so several workers build it once."""
    from saleor_app.feed.building import FeedBuilder, FeedScheduler
    from saleor_app.feed.consistency import ConsistencyChecker
    from saleor_app.saleor.problems import ProblemReporter

    consistency = ConsistencyChecker(ctx.db, ProblemReporter(ctx))
    return FeedScheduler(ctx.db, FeedBuilder(ctx.db, ctx.saleor, ctx.secrets, ctx.metrics), consistency.after_build)
