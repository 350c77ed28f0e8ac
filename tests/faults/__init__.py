"""Fault injection: VTmarketing, Saleor and the app itself misbehave; every order ends delivered exactly once or
visibly failed with its reason, never pending forever. Shared helpers for the tests of this package."""

from __future__ import annotations

from sqlalchemy import select, update

from saleor_app.storage.models import Delivery, DeliveryAttempt, utcnow

OPEN = ("pending", "retrying", "delivering")


async def all_deliveries(running_app) -> list[Delivery]:  # type: ignore[no-untyped-def]
    async with running_app.ctx.db.session() as session:
        return list(await session.scalars(select(Delivery).order_by(Delivery.id)))


async def one_delivery(running_app) -> Delivery:  # type: ignore[no-untyped-def]
    (delivery,) = await all_deliveries(running_app)
    return delivery


async def attempts_of(running_app, delivery_id: int | None = None, *, target: str | None = None) -> list[DeliveryAttempt]:  # type: ignore[no-untyped-def]
    query = select(DeliveryAttempt).order_by(DeliveryAttempt.id)
    if delivery_id is not None:
        query = query.where(DeliveryAttempt.delivery_id == delivery_id)
    if target is not None:
        query = query.where(DeliveryAttempt.target == target)
    async with running_app.ctx.db.session() as session:
        return list(await session.scalars(query))


async def make_due_now(running_app) -> None:  # type: ignore[no-untyped-def]
    """Time travel for the retry schedule: every waiting delivery is due now (no sleeping in tests)."""
    async with running_app.ctx.db.transaction() as session:
        await session.execute(
            update(Delivery).where(Delivery.status.in_(("pending", "retrying"))).values(next_attempt_at=utcnow())
        )


async def drive_until_settled(running_app, worker, *, rounds: int = 12) -> list[Delivery]:  # type: ignore[no-untyped-def]
    """Run the worker, make retries due, again, until nothing is open (bounded); return the deliveries."""
    for _ in range(rounds):
        await worker.run_until_idle()
        deliveries = await all_deliveries(running_app)
        if not any(d.status in OPEN for d in deliveries):
            return deliveries
        await make_due_now(running_app)
    raise AssertionError(f"still open after {rounds} rounds: {[(d.id, d.status, d.reason) for d in deliveries]}")


def assert_nothing_open(deliveries: list[Delivery]) -> None:
    still_open = [(d.id, d.status, d.reason) for d in deliveries if d.status in OPEN]
    assert not still_open, f"pending forever: {still_open}"
    assert all(d.reason for d in deliveries), "every final state says why"
