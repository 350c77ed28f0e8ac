"""Is the feed in step with what the events sent? For the channel's last delivered orders, the item ids their
confirmation event carried that the current feed does not list: VTmarketing does not count those items.

Shown on the settings page and by `feeds list`; after each build the result is kept as a streak, and a mismatch
seen after two builds in a row (so not a product added minutes ago) becomes a dashboard problem (Saleor 3.22+).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from saleor_app.saleor.problems import ProblemReporter
from saleor_app.storage.db import Database
from saleor_app.storage.feeds import FeedRepository
from saleor_app.storage.models import Feed, Installation
from saleor_app.vtmarketing.item_ids import normalise_id

log = logging.getLogger(__name__)

RECENT_ORDERS = 200
EXAMPLES = 3
PERSISTENT_CHECKS = 2


def problem_key(channel: str) -> str:
    return f"feed-missing-items:{channel}"[:128]


@dataclass(frozen=True)
class OrderMissingItems:
    order_number: str | None
    item_ids: tuple[str, ...]


@dataclass(frozen=True)
class Consistency:
    checked: int  # delivered orders looked at (at most RECENT_ORDERS)
    with_missing: int
    examples: list[OrderMissingItems] = field(default_factory=list)

    @property
    def message(self) -> str:
        if not self.checked:
            return "No delivered orders to compare with the feed yet."
        last = f"the last {self.checked} delivered orders" if self.checked > 1 else "the last delivered order"
        if not self.with_missing:
            return f"Every item of {last} is in the feed."
        shown = ", ".join(
            f"#{example.order_number or '?'} ({', '.join(example.item_ids)})" for example in self.examples
        )
        more = "" if self.with_missing <= len(self.examples) else ", …"
        return f"{self.with_missing} of {last} had items missing from the feed: {shown}{more}"


class ConsistencyChecker:
    def __init__(self, db: Database, problems: ProblemReporter | None = None) -> None:
        self.db, self.problems = db, problems

    async def check(self, feed: Feed) -> Consistency | None:
        """None while the feed has no file to compare with."""
        async with self.db.session() as session:
            repo = FeedRepository(session)
            build = await repo.current_build(feed.id)
            if build is None:
                return None
            orders = await repo.recent_delivered(feed.installation_id, feed.channel_slug, RECENT_ORDERS)
            # Events sent before ids were normalised carry them as they were: compare them as VTmarketing would.
            wanted = {normalise_id(i) for order in orders for i in order.item_ids} - {None}
            listed = await repo.listed(build.id, sorted(wanted))  # type: ignore[arg-type]
        missing = []
        for order in orders:
            ids = [i for i in dict.fromkeys(normalise_id(i) for i in order.item_ids) if i and i not in listed]
            if ids:
                missing.append(OrderMissingItems(order.order_number, tuple(ids)))
        return Consistency(len(orders), len(missing), missing[:EXAMPLES])

    async def after_build(self, installation: Installation, feed_id: int, channel: str) -> Consistency | None:
        async with self.db.session() as session:
            feed = await FeedRepository(session).get_by_id(feed_id)
        if feed is None:
            return None
        result = await self.check(feed)
        if result is None:
            return None
        streak = feed.mismatch_streak + 1 if result.with_missing else 0
        async with self.db.transaction() as session:
            await FeedRepository(session).set_mismatch_streak(feed_id, streak)
        if self.problems is None:
            return result
        if streak >= PERSISTENT_CHECKS:
            await self.problems.report(
                installation, problem_key(channel),
                f"The VTmarketing product feed of channel {channel} lacks items that orders were sent with "
                f"({result.message}). VTmarketing does not count those items: check the channel's item ID "
                "choice and which products are published and available.",
            )
        elif not result.with_missing:
            await self.problems.dismiss(installation, [problem_key(channel)])
        return result
