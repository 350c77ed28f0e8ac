"""Finding confirmed orders that no webhook brought: scheduled reconciliation and the operator's backfill.

Both walk Saleor's `orders` with the same query and hand each confirmed order to `queue_found_orders`, the one way
an order found in Saleor becomes a queued delivery, stored in the same shape as a webhook's body. The unique
(installation, order) row makes every path idempotent: a late webhook after a reconciled order, a backfill over
orders already sent, or a pass that was killed half-way and runs again, store nothing twice.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from saleor_app.context import AppContext
from saleor_app.saleor.exceptions import SaleorError, SaleorPermissionDenied
from saleor_app.saleor.payloads import OrderSummary
from saleor_app.secrets import TOKEN_UNREADABLE, SecretUnreadable
from saleor_app.storage.models import DeliverySource, Installation, utcnow
from saleor_app.storage.repositories import (
    BackfillCursorRepository,
    ChannelSettingsRepository,
    DeliveryRepository,
    InstallationRepository,
    NewDelivery,
)

log = logging.getLogger(__name__)

# Statuses an order has only after it was confirmed. Drafts never appear in `orders`; UNCONFIRMED and EXPIRED
# orders were never confirmed; a CANCELED one may have been cancelled before confirmation, so it is left out.
CONFIRMED_STATUSES = frozenset({"UNFULFILLED", "PARTIALLY_FULFILLED", "FULFILLED", "PARTIALLY_RETURNED", "RETURNED"})
# Reconciliation looks this far behind its watermark, so a clock skew or a slow commit in Saleor loses nothing.
RECONCILE_OVERLAP = timedelta(minutes=5)
PAGE_SIZE = 100


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def is_confirmed(order: dict) -> bool:
    return order.get("status") in CONFIRMED_STATUSES


async def queue_found_orders(ctx: AppContext, installation: Installation, orders: list[dict], source: DeliverySource) -> int:
    """Queue confirmed orders found in Saleor exactly as if their webhook had come. Returns how many were new."""
    candidates = []
    for raw in orders:
        if not is_confirmed(raw):
            continue
        order = OrderSummary.model_validate(raw)
        body = json.dumps({"__typename": "OrderConfirmed", "issuedAt": None, "version": None, "order": raw})
        candidates.append(
            NewDelivery(
                installation_id=installation.id,
                order_id=order.id,
                order_number=order.number,
                channel_slug=order.channel.slug if order.channel else None,
                payload=body,
                source=source.value,
            )
        )
    if not candidates:
        return 0
    return sum(1 for new_id in await ctx.intake.store(candidates) if new_id)


async def _token(ctx: AppContext, installation: Installation) -> str:
    return ctx.secrets.decrypt(installation.token_encrypted)


# Reconciliation -------------------------------------------------------------------------------------------------


@dataclass
class ReconcileResult:
    checked: int
    recovered: int
    error: str | None = None


class Reconciler:
    """Runs a pass for every active installation; backs off per installation while Saleor answers errors."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self._not_before: dict[int, float] = {}
        self._failures: dict[int, int] = {}

    async def run_all(self) -> None:
        async with self.ctx.db.session() as session:
            installations = await InstallationRepository(session).list(active_only=True)
        for installation in installations:
            if time.monotonic() < self._not_before.get(installation.id, 0.0):
                continue
            result = await self.reconcile(installation)
            if result.error:
                failures = self._failures.get(installation.id, 0) + 1
                self._failures[installation.id] = failures
                self._not_before[installation.id] = time.monotonic() + min(3600.0, 30.0 * 2 ** (failures - 1))
            else:
                self._failures.pop(installation.id, None)
                self._not_before.pop(installation.id, None)

    async def reconcile(self, installation: Installation) -> ReconcileResult:
        """One pass: orders of the enabled channels changed since the watermark (minus the overlap) that were
        confirmed and never seen are queued; the watermark moves only once all of them are stored.

        Every time here is Saleor's: the window is compared with Saleor's `updatedAt`, the watermark is Saleor's
        clock when the pass began (the `Date` of its first answer), the install cut-off is Saleor's clock at the
        install. The app's own clock may be minutes off without hiding an order; and there is no upper bound, so an
        order confirmed a second ago is found too."""
        started = utcnow()
        async with self.ctx.db.session() as session:
            channels = await ChannelSettingsRepository(session).list(installation.id)
        enabled = {c.channel_slug for c in channels if c.enabled and c.api_key_encrypted}
        watermark = installation.reconcile_watermark or installation.saleor_installed_at or installation.created_at
        checked = recovered = 0
        error: str | None = None
        new_watermark: datetime | None = None
        if enabled:
            try:
                checked, recovered, new_watermark = await self._walk(installation, enabled, watermark - RECONCILE_OVERLAP)
            except SecretUnreadable:
                error = TOKEN_UNREADABLE
            except SaleorPermissionDenied as exc:
                error = str(exc)
            except SaleorError as exc:
                error = f"Saleor could not be asked: {exc}"
        async with self.ctx.db.transaction() as session:
            stored = await InstallationRepository(session).get(installation.id)
            if stored is not None:
                stored.last_reconcile_at = started
                stored.last_reconcile_checked = checked
                stored.last_reconcile_recovered = recovered
                stored.last_reconcile_error = error
                if error is None and new_watermark is not None:
                    stored.reconcile_watermark = new_watermark
        self.ctx.metrics.reconcile_last_pass.labels(str(installation.id)).set(utcnow().timestamp())
        self.ctx.metrics.reconcile_checked.inc(checked)
        self.ctx.metrics.reconcile_recovered.inc(recovered)
        if recovered or error:
            log.log(logging.WARNING if error else logging.INFO,
                    "reconciliation: %d checked, %d recovered%s", checked, recovered, f", error: {error}" if error else "",
                    extra={"installation": installation.id})
        return ReconcileResult(checked, recovered, error)

    async def _walk(self, installation: Installation, enabled: set[str], since: datetime) -> tuple[int, int, datetime | None]:
        """(checked, recovered, the next watermark): Saleor's clock at its first answer, or if it sent no `Date`,
        the newest `updatedAt` it listed (None: keep the watermark)."""
        token = await _token(self.ctx, installation)
        filter_ = {"updatedAt": {"gte": since.isoformat()}}
        sort = {"field": "LAST_MODIFIED_AT", "direction": "ASC"}
        # Orders from before the app was installed are the backfill's job, not reconciliation's.
        installed_at = installation.saleor_installed_at or installation.created_at
        checked = recovered = 0
        began: datetime | None = None
        newest_update: datetime | None = None
        after = None
        while True:
            page = await self.ctx.saleor.orders_page(
                installation.saleor_api_url, token, filter=filter_, sort_by=sort, first=PAGE_SIZE, after=after
            )
            began = began or page.saleor_time
            for order in page.orders:
                updated = _parse_time(order.get("updatedAt"))
                if updated is not None and (newest_update is None or updated > newest_update):
                    newest_update = updated
            wanted = [
                o for o in page.orders
                if (o.get("channel") or {}).get("slug") in enabled
                and (_parse_time(o.get("created")) or installed_at) >= installed_at
            ]
            checked += len(wanted)
            async with self.ctx.db.session() as session:
                known = await DeliveryRepository(session).known_order_ids(installation.id, [o["id"] for o in wanted])
            recovered += await queue_found_orders(
                self.ctx, installation, [o for o in wanted if o["id"] not in known], DeliverySource.RECONCILE
            )
            if not page.has_next_page or not page.end_cursor:
                return checked, recovered, began or newest_update
            after = page.end_cursor


# Backfill -------------------------------------------------------------------------------------------------------


@dataclass
class BackfillProgress:
    """This run's figures: orders looked at and queued by this run (not by an earlier run over the same dates)."""

    seen: int
    queued: int
    total: int | None
    done: bool
    resumed: bool = False  # this run continued one that had stopped half-way


async def backfill(
    ctx: AppContext,
    installation: Installation,
    channel_slug: str,
    *,
    since: str,
    until: str = "",
    dry_run: bool = False,
    on_page: Callable[[BackfillProgress], Awaitable[None] | None] | None = None,
) -> BackfillProgress:
    """Queue a channel's confirmed orders created in [since, until] (dates). The position is stored after each page,
    so a stopped backfill starts again where it was, without resending (dedupe) or skipping (stable order); one
    that had finished walks again from the start (queueing only what is new since). A dry run stores nothing and
    counts what a real run would queue now: confirmed orders the app does not know yet."""
    token = await _token(ctx, installation)
    channels = await ctx.saleor.channels(installation.saleor_api_url, token)
    channel = next((c for c in channels if c.get("slug") == channel_slug), None)
    if channel is None:
        raise SaleorError(f"Saleor has no channel {channel_slug!r}", retryable=False)
    created: dict = {"gte": since}
    if until:
        created["lte"] = until
    filter_ = {"created": created, "channels": [channel["id"]]}
    sort = {"field": "NUMBER", "direction": "ASC"}

    position: str | None = None
    resumed = False
    if not dry_run:
        async with ctx.db.transaction() as session:
            cursor = await BackfillCursorRepository(session).get_or_create(installation.id, channel_slug, since, until)
            if cursor.done:  # finished before: this is a new walk over the same dates
                cursor.cursor, cursor.seen, cursor.queued, cursor.done = None, 0, 0, False
            position, resumed = cursor.cursor, cursor.cursor is not None
            walked_before, queued_before = cursor.seen, cursor.queued
    progress = BackfillProgress(0, 0, None, False, resumed)
    while not progress.done:
        page = await ctx.saleor.orders_page(
            installation.saleor_api_url, token, filter=filter_, sort_by=sort, first=PAGE_SIZE, after=position
        )
        progress.total = page.total_count
        progress.seen += len(page.orders)
        if dry_run:
            confirmed = [o["id"] for o in page.orders if is_confirmed(o)]
            async with ctx.db.session() as session:
                known = await DeliveryRepository(session).known_order_ids(installation.id, confirmed)
            progress.queued += len(set(confirmed) - known)
        else:
            progress.queued += await queue_found_orders(ctx, installation, page.orders, DeliverySource.BACKFILL)
        progress.done = not page.has_next_page or not page.end_cursor
        position = page.end_cursor or position
        if not dry_run:
            async with ctx.db.transaction() as session:
                row = await BackfillCursorRepository(session).get_or_create(installation.id, channel_slug, since, until)
                row.cursor, row.done = position, progress.done
                row.seen, row.queued = walked_before + progress.seen, queued_before + progress.queued
        if on_page is not None:
            maybe = on_page(progress)
            if maybe is not None:
                await maybe
    return progress
