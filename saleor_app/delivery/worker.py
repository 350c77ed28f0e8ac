"""DeliveryWorker: claims stored orders, enriches each with one Saleor query, maps it, sends it to VTmarketing,
and records every attempt and outcome. Runs inside `serve` or alone as `saleor-vtmarketing worker`.

Its steps run under a WorkerSupervisor (supervisor.py: no exception ends the loop; failures are logged, counted,
retried with backoff, and shown by /readyz) and its claims under leases (lease.py: renewed on PostgreSQL, held by the
one process on SQLite), so a delivery is sent again only when nobody can know whether its send arrived."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import DBAPIError

from saleor_app.context import AppContext
from saleor_app.delivery.channel_config import ChannelConfig
from saleor_app.delivery.orders import to_order_data
from saleor_app.delivery.settling import SettleBatch
from saleor_app.delivery.retry import next_attempt_or_none
from saleor_app.delivery.lease import LeaseKeeper
from saleor_app.delivery.outage import PROBE_SECONDS, OutageGate
from saleor_app.delivery.signal import PostgresListener
from saleor_app.delivery.supervisor import StepFailed, WorkerSupervisor
from saleor_app.metrics import status_class
from saleor_app.saleor import problems
from saleor_app.saleor.exceptions import SaleorError, SaleorPermissionDenied
from saleor_app.saleor.problems import ProblemReporter
from saleor_app.saleor.payloads import OrderLineDetail, PayloadError, parse_order_confirmed
from saleor_app.secrets import API_KEY_UNREADABLE, TOKEN_UNREADABLE
from saleor_app.settings.key_status import record_delivery_verdict
from saleor_app.storage.db import DatabaseFileGone, describe_database_error
from saleor_app.storage.models import Delivery, DeliverySource, DeliveryStatus, utcnow
from saleor_app.storage.repositories import (
    AppProblemRepository,
    DeliveryRepository,
    InstallationRepository,
    Settlement,
)
from saleor_app.vtmarketing.mapping import MappingError, build_confirmation_event, encode_event
from saleor_app.vtmarketing.models import MappingOptions

log = logging.getLogger(__name__)

# A token that Saleor refuses, or a lost permission, will not heal in seconds: do not hammer Saleor.
PERMISSION_RETRY_SECONDS = 3600.0
# A worker whose loop completed no step for this long is not working (hung), whatever its last step said.
MIN_STALL_SECONDS = 30.0


def stall_bound(poll_seconds: float) -> float:
    """The loop completes a step at least every poll (it wakes to look for due work): a few polls without one is
    a stall."""
    return max(MIN_STALL_SECONDS, 4 * poll_seconds)


# Orders that did not come by webhook say how they were found, whatever became of them.
SOURCE_NOTES = {
    DeliverySource.RECONCILE.value: "Recovered by reconciliation (no webhook arrived).",
    DeliverySource.BACKFILL.value: "Queued by backfill.",
}


@dataclass
class Verdict:
    """Where one processing of a delivery ends: the state, the merchant-readable reason, maybe a next attempt."""

    status: str
    reason: str
    next_attempt_at: datetime | None = None
    event_body: str | None = None
    # For the dashboard's problem list (Saleor 3.22+): what to report, and which reported problems this ends.
    problem: tuple[str, str] | None = None
    resolves: tuple[str, ...] = ()
    attempt: dict | None = None  # the VTmarketing attempt to record with the new state
    channel: ChannelConfig | None = None  # the channel's settings it was reached with (for the key's status)


class DeliveryWorker:
    def __init__(self, ctx: AppContext, *, worker_id: str | None = None, concurrency: int | None = None) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.concurrency = concurrency or ctx.settings.delivery_concurrency
        self._in_flight: set[asyncio.Task] = set()
        # A finished delivery wakes the loop to claim only once this many slots are free: under a backlog a claim
        # then takes several at once instead of one transaction per finished send. New orders wake it at once.
        self.claim_batch = max(1, self.concurrency // 8)
        # Deliveries that finish together are settled in one transaction (settling.py).
        self._settles = SettleBatch(self._settle_all)
        # VTmarketing down: one order at a time tells when it is back, instead of every due one failing (outage.py).
        self.outage = OutageGate(ctx.metrics, probe_every=min(PROBE_SECONDS, self.settings.delivery_retry_max_seconds),
                                 wake=ctx.signal.wake)
        self._held: set[int] = set()  # ids of the deliveries this worker claimed and has not settled yet
        self._stopping = asyncio.Event()
        self.sleeping = asyncio.Event()  # set while the loop waits for a wake-up or its poll (tests, health)
        self.problems = ProblemReporter(ctx)
        # [interval seconds, coroutine function, last start (monotonic), running task, step name]: reconcile, prune
        self._periodic: list = []
        self.supervisor = WorkerSupervisor(ctx.metrics, stall_after=stall_bound(self.settings.delivery_poll_seconds))
        self.leases = None if ctx.db.is_sqlite else LeaseKeeper(
            ctx.db, self.worker_id, self.settings.delivery_lease_seconds, self.supervisor, holding=lambda: bool(self._held)
        )

    # Loop ---------------------------------------------------------------------------------------------------

    def add_periodic(self, interval: float, job, *, name: str | None = None) -> None:  # type: ignore[no-untyped-def]
        """Run `job` every `interval` seconds between claims (0: never); due at start, to catch up after downtime.
        A failing run is retried with backoff rather than a whole interval later."""
        if interval > 0:
            self._periodic.append([interval, job, float("-inf"), None, name or getattr(job, "__name__", "periodic")])

    def stop(self) -> None:
        self._stopping.set()
        self.ctx.signal.wake()

    async def run(self, *, grace_seconds: float = 20.0) -> None:
        """Work until stop(): claim what is due, keep up to `concurrency` deliveries in flight, sleep until woken.
        Supervised: a failing step (the database refusing writes, say) is retried with backoff, never the end."""
        listener = None if self.ctx.db.is_sqlite else PostgresListener(
            self.settings.resolved_database_url, self.ctx.signal, on_config_changed=self.ctx.channel_configs.invalidate
        )
        if listener:
            await listener.start()
        lease_task = asyncio.create_task(self.leases.run()) if self.leases else None
        self.ctx.worker_health = self.supervisor  # /readyz of this process reports it
        try:
            if self.ctx.db.is_sqlite and not await self._until_done_or_stopped("start", self._hand_back_interrupted):
                return
            log.info("delivery worker %s started (concurrency %d)", self.worker_id, self.concurrency)
            while not self._stopping.is_set():
                try:
                    budget = await self._turn()
                except StepFailed as failed:
                    await self._pause(failed.retry_in)
                    continue
                if budget is None:
                    continue  # there may be more due right now
                self.sleeping.set()
                await self.ctx.signal.wait(budget)
                self.sleeping.clear()
        finally:
            await self._drain(grace_seconds)
            if lease_task is not None:
                lease_task.cancel()
                await asyncio.gather(lease_task, return_exceptions=True)
            if listener:
                await listener.stop()
            if self.ctx.worker_health is self.supervisor:
                self.ctx.worker_health = None
            log.info("delivery worker %s stopped", self.worker_id)

    async def _turn(self) -> float | None:
        """One turn of the loop: claim and start what is due, start due periodic jobs; then how long to sleep
        (None: claim again at once)."""
        claimed = await self.supervisor.step("claim", self._claim_and_start)
        self._run_periodic()
        if claimed and self._may_start():
            return None
        return await self.supervisor.step("schedule", self._sleep_budget)

    async def _pause(self, seconds: float) -> None:
        """Back off after a failed step; only stop() (not a new order's wake-up) cuts it short."""
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except asyncio.TimeoutError:
            pass

    async def _until_done_or_stopped(self, step: str, operation) -> bool:  # type: ignore[no-untyped-def]
        while not self._stopping.is_set():
            try:
                await self.supervisor.step(step, operation)
                return True
            except StepFailed as failed:
                await self._pause(failed.retry_in)
        return False

    async def _hand_back_interrupted(self) -> None:
        """SQLite: the process lock makes this the only worker, so whatever is marked in flight was left by a
        previous process that died mid-send: back to the queue, its log saying the send may have happened."""
        async with self.ctx.db.transaction() as session:
            handed_back = await DeliveryRepository(session).hand_back_interrupted()
        if handed_back:
            log.warning("%d deliveries were in flight when the app last stopped: sending them again "
                        "(VTmarketing may have received them already)", handed_back)

    async def run_until_idle(self, *, timeout: float = 30.0) -> None:
        """Process everything due now and what that produces, then return (tests, CLI one-shots)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            claimed = await self._claim_and_start()
            if not claimed and not self._in_flight:
                return
            if self._in_flight:
                await asyncio.wait(self._in_flight, return_when=asyncio.FIRST_COMPLETED)
        raise TimeoutError("deliveries still in flight")

    def _may_start(self) -> int:
        return self.outage.may_start(len(self._in_flight), self.concurrency)

    async def _claim_and_start(self) -> int:
        free = self._may_start()
        if free <= 0:
            return 0
        async with self.ctx.db.transaction() as session:
            deliveries = await DeliveryRepository(session).claim_due(
                worker_id=self.worker_id, limit=free, lease_seconds=self.settings.delivery_lease_seconds,
                reclaim_expired=not self.ctx.db.is_sqlite,
            )
        if deliveries:
            self.outage.probe_started()
        for delivery in deliveries:
            self._held.add(delivery.id)
            task = asyncio.create_task(self._process_safely(delivery))
            self._in_flight.add(task)
            task.add_done_callback(self._task_done)
        return len(deliveries)

    def _task_done(self, task: asyncio.Task) -> None:
        self._in_flight.discard(task)
        if self.concurrency - len(self._in_flight) >= self.claim_batch:
            self.ctx.signal.wake()  # enough slots are free: claim more

    async def _sleep_budget(self) -> float:
        budget = self.settings.delivery_poll_seconds
        if len(self._in_flight) >= self.concurrency:
            return budget  # every slot is busy: a finishing delivery wakes the loop
        to_probe = self.outage.seconds_to_probe()
        if to_probe is None or (to_probe == 0 and not self._in_flight):  # sending, or a probe may start now
            async with self.ctx.db.session() as session:
                next_due = await DeliveryRepository(session).next_due_at()
            if next_due is not None:
                budget = min(budget, max(0.0, (next_due - utcnow()).total_seconds()))
        elif not self._in_flight:
            # Held back (outage.py): what is due waits for the next probe. Sends still in flight wake the loop as
            # they end, and a good answer wakes it at once.
            budget = min(budget, to_probe)
        for interval, _job, last, _running, _name in self._periodic:
            budget = min(budget, max(0.0, last + interval - time.monotonic()))
        return max(budget, 0.005)

    def _run_periodic(self) -> None:
        """Start due periodic jobs in the background, so a slow Saleor during reconciliation never delays sending."""
        for entry in self._periodic:
            interval, job, last, running, name = entry
            if running is not None and not running.done():
                continue
            if time.monotonic() - last >= interval:
                entry[2] = time.monotonic()
                entry[3] = asyncio.create_task(self._run_job(entry))

    async def _run_job(self, entry: list) -> None:
        interval, job, _last, _running, name = entry
        try:
            await self.supervisor.step(name, job)
        except StepFailed as failed:
            entry[2] = time.monotonic() + failed.retry_in - interval  # due again after the backoff, not an interval

    async def _drain(self, grace_seconds: float) -> None:
        """Graceful stop: let in-flight deliveries finish for a bounded time, then give back what we still hold."""
        for entry in self._periodic:
            if entry[3] is not None and not entry[3].done():
                entry[3].cancel()
        if self._in_flight:
            done, pending = await asyncio.wait(self._in_flight, timeout=grace_seconds)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5)
        try:
            async with self.ctx.db.transaction() as session:
                released = await DeliveryRepository(session).release_claims(self.worker_id)
        except Exception as exc:  # noqa: BLE001 - stopping anyway: the next start (SQLite) or lease expiry takes them
            log.error("could not give back the claimed deliveries at stop (%s): they are taken up after a restart "
                      "or when their lease runs out", describe_database_error(exc))
            return
        if released:
            log.warning("released %d deliveries whose sends were cut short by the stop; they will be sent again", released)

    # One delivery ---------------------------------------------------------------------------------------------

    async def _process_safely(self, delivery: Delivery) -> None:
        log_extra = {"installation": delivery.installation_id, "channel": delivery.channel_slug,
                     "order_number": delivery.order_number, "delivery_id": delivery.id}
        try:
            verdict = await self.process(delivery)
        except asyncio.CancelledError:
            raise
        except (DBAPIError, OSError, DatabaseFileGone) as exc:  # nothing was sent: try again once it heals
            log.error("delivery %s: the app's database failed: %s", delivery.id, describe_database_error(exc), extra=log_extra)
            verdict = self._retry_or_fail(delivery, f"the app's database failed ({describe_database_error(exc)})", None)
        except Exception as exc:  # a bug must not lose the order: keep it retrying and say what happened
            log.exception("delivery %s crashed", delivery.id, extra=log_extra)
            verdict = self._retry_or_fail(delivery, f"internal error: {type(exc).__name__}", None)
        if verdict.status == DeliveryStatus.FAILED.value and verdict.problem is None and delivery.channel_slug:
            verdict.problem = (
                problems.deliveries_failed(delivery.channel_slug),
                f"Orders of channel {delivery.channel_slug} could not be sent to VTmarketing (latest, order "
                f"{delivery.order_number}: {verdict.reason}). Open the VTmarketing app to see them and resend.",
            )
        if delivery.source in SOURCE_NOTES:
            verdict.reason = f"{SOURCE_NOTES[delivery.source]} {verdict.reason}"
        try:
            # Retried until the database takes it: the send happened, so it is never sent again for a failed write.
            settled = await self.supervisor.until_done("settle", lambda: self._settles.settle(delivery, verdict))
        finally:
            self._held.discard(delivery.id)
        if not settled:
            log.warning("delivery %s: lease lost before settling (%s)", delivery.id, verdict.status, extra=log_extra)
            return
        if verdict.problem or verdict.resolves:
            await self._update_problems(delivery.installation_id, verdict)
        if verdict.status in (DeliveryStatus.DELIVERED.value, DeliveryStatus.FAILED.value, DeliveryStatus.SKIPPED.value):
            self.ctx.metrics.deliveries_finished.labels(verdict.status).inc()
        if verdict.status == DeliveryStatus.DELIVERED.value:
            self.ctx.metrics.webhook_to_delivery_seconds.observe((utcnow() - delivery.retry_window_start).total_seconds())
        log.info("order %s %s: %s", delivery.order_number, verdict.status, verdict.reason, extra=log_extra)

    async def _settle_all(self, finished: list[tuple[Delivery, Verdict]]) -> set[int]:
        """Settle deliveries that finished together, in one transaction; returns the ids this worker still held."""
        async with self.ctx.db.transaction() as session:
            settled = await DeliveryRepository(session).settle_many(self.worker_id, [
                Settlement(delivery.id, verdict.status, verdict.reason, verdict.next_attempt_at, verdict.event_body,
                           verdict.attempt)
                for delivery, verdict in finished
            ])
            told_accepted = []
            for delivery, verdict in finished:  # what the verdict says of the channel's key, shown on its card
                if delivery.id in settled and self._tells_of_key(verdict):
                    assert verdict.channel is not None
                    await record_delivery_verdict(session, delivery, verdict, key_read_at=verdict.channel.read_at)
                    if verdict.status == DeliveryStatus.DELIVERED.value:
                        told_accepted.append(verdict.channel)
        for channel in told_accepted:
            self.ctx.channel_configs.key_accepted(channel)
        return settled

    @staticmethod
    def _tells_of_key(verdict: Verdict) -> bool:
        """A refusal of the key always; an acceptance only when the key was not known to work yet (usually it is)."""
        if verdict.channel is None:
            return False
        return verdict.problem is not None or (
            verdict.status == DeliveryStatus.DELIVERED.value and not verdict.channel.key_accepted
        )

    async def _update_problems(self, installation_id: int, verdict: Verdict) -> None:
        try:
            if not verdict.problem:
                # Every delivered order resolves its channel's problems: usually none was reported. The channel's
                # settings say so (read with them, delivery/channel_config.py); else one query, without loading
                # the installation or asking per key.
                if verdict.channel is not None and not verdict.channel.reported_problems.intersection(verdict.resolves):
                    return
                async with self.ctx.db.session() as session:
                    if not await AppProblemRepository(session).present(installation_id, list(verdict.resolves)):
                        return
            async with self.ctx.db.session() as session:
                installation = await InstallationRepository(session).get(installation_id)
            if installation is None or not installation.is_active:
                return
            if verdict.resolves:
                await self.problems.dismiss(installation, list(verdict.resolves))
            if verdict.problem:
                await self.problems.report(installation, *verdict.problem)
        except Exception:  # the dashboard's problem list must never cost an order
            log.exception("updating dashboard problems failed", extra={"installation": installation_id})

    async def process(self, delivery: Delivery) -> Verdict:
        channel = await self.ctx.channel_configs.get(delivery.installation_id, delivery.channel_slug or "")
        verdict = await self._process(delivery, channel)
        verdict.channel = channel
        return verdict

    async def _process(self, delivery: Delivery, channel: ChannelConfig) -> Verdict:
        if not channel.installed:
            return Verdict(DeliveryStatus.SKIPPED.value, "the app is no longer installed in this Saleor")
        if not channel.has_key:
            return Verdict(DeliveryStatus.SKIPPED.value, f"channel {delivery.channel_slug!r} has no VTmarketing API key")
        if not channel.enabled:
            return Verdict(DeliveryStatus.SKIPPED.value, f"sending is turned off for channel {delivery.channel_slug!r}")
        api_key, token = channel.api_key, channel.token
        if api_key is None or token is None:
            advice = [text for text, secret in ((TOKEN_UNREADABLE, token), (API_KEY_UNREADABLE, api_key)) if secret is None]
            return Verdict(DeliveryStatus.FAILED.value, " ".join(advice) + " Then resend this order.")
        try:
            payload = parse_order_confirmed(delivery.payload.encode())
        except PayloadError as exc:
            return Verdict(DeliveryStatus.FAILED.value, f"the stored order cannot be read: {exc}")
        assert payload.order is not None

        lines_or_verdict = await self._enrich(delivery, channel)
        if isinstance(lines_or_verdict, Verdict):
            return lines_or_verdict
        try:
            event = build_confirmation_event(
                to_order_data(payload.order, lines_or_verdict),
                MappingOptions(item_id=channel.item_id, order_id=channel.order_id),
            )
        except MappingError as exc:
            return Verdict(DeliveryStatus.SKIPPED.value, exc.reason)
        body = encode_event(event)
        return await self._send(delivery, api_key, body)

    async def _enrich(self, delivery: Delivery, channel: ChannelConfig, *, fresh: bool = False) -> list[OrderLineDetail] | Verdict:
        """The one OrderLines query for this order."""
        assert channel.saleor_api_url is not None and channel.token is not None
        started_at, started = utcnow(), time.perf_counter()
        try:
            details = await self.ctx.saleor.order_lines(channel.saleor_api_url, channel.token, delivery.order_id or "")
        except SaleorPermissionDenied as exc:
            await self._record(delivery, started_at, started, "permission_denied", None, str(exc), target="saleor")
            if not fresh:  # the token may have been replaced (a re-install) since it was cached: judge the latest
                latest = await self.ctx.channel_configs.fresh(delivery.installation_id, delivery.channel_slug or "")
                if latest.token != channel.token or not latest.installed:
                    return await self._process_again(delivery, latest)
            return await self._permission_denied(delivery, channel, str(exc))
        except SaleorError as exc:
            await self._record(delivery, started_at, started, "error", exc.status, str(exc), target="saleor")
            if not exc.retryable:
                return Verdict(DeliveryStatus.FAILED.value, f"Saleor: {exc}")
            return self._retry_or_fail(delivery, f"Saleor could not give the order's lines: {exc}", None)
        return [OrderLineDetail.model_validate(line) for line in details.lines]

    async def _process_again(self, delivery: Delivery, latest: ChannelConfig) -> list[OrderLineDetail] | Verdict:
        if not latest.installed:
            return Verdict(DeliveryStatus.SKIPPED.value, "the app is no longer installed in this Saleor")
        if latest.token is None:
            return Verdict(DeliveryStatus.FAILED.value, f"{TOKEN_UNREADABLE} Then resend this order.")
        return await self._enrich(delivery, latest, fresh=True)

    async def _permission_denied(self, delivery: Delivery, channel: ChannelConfig, message: str) -> Verdict:
        """Tell a removed app (token refused again) from a lost permission (token fine, MANAGE_ORDERS gone)."""
        assert channel.saleor_api_url is not None and channel.token is not None
        try:
            await self.ctx.saleor.app_id(channel.saleor_api_url, channel.token)
        except SaleorPermissionDenied:
            async with self.ctx.db.session() as session:
                installation = await InstallationRepository(session).get(delivery.installation_id)
            if installation is not None:
                await self.ctx.installations.mark_uninstalled(installation, "Saleor refuses the app token: the app was removed")
            return Verdict(DeliveryStatus.FAILED.value, "Saleor refuses the app token: the app was removed from Saleor")
        except SaleorError:
            pass  # could not tell; treat as the lost permission below, which retries slowly
        verdict = self._retry_or_fail(delivery, f"{message}; waiting for it to be given back", PERMISSION_RETRY_SECONDS)
        verdict.problem = (
            problems.MANAGE_ORDERS_LOST,
            "The VTmarketing app lost the MANAGE_ORDERS permission: confirmed orders cannot be read or sent. "
            "Give the permission back in Apps → VTmarketing → permissions.",
        )
        return verdict

    async def _send(self, delivery: Delivery, api_key: str, body: bytes) -> Verdict:
        started_at = utcnow()
        result = await self.ctx.vtmarketing.send(api_key, body)
        self.outage.sent(result.outcome)
        self.ctx.metrics.attempts.labels(status_class(result.http_status)).inc()
        self.ctx.metrics.vtmarketing_request_seconds.observe(result.duration_ms / 1000)
        delivery.attempt_count += 1
        # Recorded in the same transaction that settles the delivery (see _process_safely): one write, not two.
        attempt = dict(started_at=started_at, duration_ms=result.duration_ms, outcome=result.outcome,
                       http_status=result.http_status, excerpt=result.excerpt)
        verdict = self._verdict_for(delivery, result, body)
        verdict.attempt = attempt
        return verdict

    def _verdict_for(self, delivery: Delivery, result, body: bytes) -> Verdict:  # type: ignore[no-untyped-def]
        event_body = body.decode()
        message = result.message
        if result.http_status and str(result.http_status) not in message:
            message = f"HTTP {result.http_status}: {message}"
        channel = delivery.channel_slug or ""
        if result.outcome == "delivered":
            return Verdict(
                DeliveryStatus.DELIVERED.value, f"VTmarketing accepted the event ({result.message})", event_body=event_body,
                resolves=(problems.key_rejected(channel), problems.deliveries_failed(channel), problems.MANAGE_ORDERS_LOST),
            )
        if result.outcome == "failed":
            verdict = Verdict(DeliveryStatus.FAILED.value, f"VTmarketing refused the event ({message})", event_body=event_body)
            if result.rejected_key:
                verdict.problem = (
                    problems.key_rejected(channel),
                    f"VTmarketing refuses the API key of channel {channel} ({message}). "
                    "Paste a valid key in the VTmarketing app's settings, then resend the failed orders.",
                )
            return verdict
        verdict = self._retry_or_fail(delivery, f"VTmarketing could not take the event ({message})", result.retry_after)
        verdict.event_body = event_body
        return verdict

    def _retry_or_fail(self, delivery: Delivery, message: str, retry_after: float | None) -> Verdict:
        attempt = max(1, delivery.attempt_count)  # attempts recorded so far, this one included
        when = next_attempt_or_none(
            now=utcnow(), window_started_at=delivery.retry_window_start, attempt=attempt,
            base=self.settings.delivery_retry_base_seconds, cap=self.settings.delivery_retry_max_seconds,
            max_age=self.settings.delivery_max_age_seconds, retry_after=retry_after,
        )
        if when is None:
            hours = self.settings.delivery_max_age_seconds / 3600
            return Verdict(DeliveryStatus.FAILED.value, f"gave up after {hours:g} h of retries; last error: {message}")
        return Verdict(DeliveryStatus.RETRYING.value, message, next_attempt_at=when)  # readers show the time in their zone

    async def _record(self, delivery: Delivery, started_at: datetime, started: float, outcome: str,
                      http_status: int | None, excerpt: str | None, *, target: str) -> None:
        async with self.ctx.db.transaction() as session:
            await DeliveryRepository(session).record_attempt(
                delivery.id, started_at=started_at, duration_ms=int((time.perf_counter() - started) * 1000),
                outcome=outcome, http_status=http_status, excerpt=(excerpt or "")[:300], target=target,
            )
        delivery.attempt_count += 1
