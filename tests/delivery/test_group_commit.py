"""Concurrent webhooks share commits: each still answers 200 only once its own row is committed, exactly once."""

from __future__ import annotations

import asyncio

from sqlalchemy import event, func, select

from saleor_app.storage.models import Delivery


async def test_concurrent_webhooks_share_commits_and_each_is_stored_once(running_app, installed) -> None:  # type: ignore[no-untyped-def]
    commits = []
    event.listen(running_app.ctx.db.engine.sync_engine, "commit", lambda conn: commits.append(1))
    orders = [installed.make_order() for _ in range(40)]
    orders.append(orders[0])  # Saleor's retry of the first one arrives in the same burst
    answers = await asyncio.gather(*(running_app.send_webhook(installed, order) for order in orders))
    assert [a.status_code for a in answers] == [200] * len(orders)
    outcomes = [a.json()["outcome"] for a in answers]
    assert outcomes.count("stored") == 40 and outcomes.count("duplicate") == 1
    async with running_app.ctx.db.session() as session:
        assert await session.scalar(select(func.count(Delivery.id))) == 40
    assert len(commits) < 40  # grouped


async def test_a_failed_group_answers_every_webhook_in_it_with_503(running_app, installed, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from saleor_app.errors import ServiceUnavailable

    async def database_down(deliveries):  # type: ignore[no-untyped-def]
        raise ServiceUnavailable("The app cannot store the order right now; Saleor will retry.")

    monkeypatch.setattr(running_app.ctx.intake._group, "_store_all", database_down)
    answers = await asyncio.gather(*(running_app.send_webhook(installed, installed.make_order()) for _ in range(5)))
    assert {a.status_code for a in answers} == {503}
    monkeypatch.undo()
    assert (await running_app.send_webhook(installed, installed.make_order())).status_code == 200


async def test_a_group_is_written_with_one_insert_statement(running_app, installed) -> None:  # type: ignore[no-untyped-def]
    commits, inserts = [], []
    engine = running_app.ctx.db.engine.sync_engine
    event.listen(engine, "commit", lambda conn: commits.append(1))
    event.listen(engine, "before_cursor_execute",
                 lambda conn, cursor, statement, *args: inserts.append(1) if statement.startswith("INSERT INTO deliveries") else None)
    answers = await asyncio.gather(*(running_app.send_webhook(installed, installed.make_order()) for _ in range(30)))
    assert {a.status_code for a in answers} == {200}
    assert 0 < len(inserts) <= len(commits) < 30  # one statement per group, whatever its size


async def test_stored_ids_match_their_orders_whatever_is_known_or_repeated(running_app, installed) -> None:  # type: ignore[no-untyped-def]
    from saleor_app.storage.repositories import DeliveryRepository, NewDelivery

    def new(order_id: str | None) -> NewDelivery:
        return NewDelivery(installation_id=1, order_id=order_id, order_number=order_id, channel_slug="default-channel",
                           payload="{}", source="webhook", status="pending" if order_id else "failed")

    async with running_app.ctx.db.transaction() as session:
        first = await DeliveryRepository(session).add_all_if_new([new("a"), new("b")])
    async with running_app.ctx.db.transaction() as session:
        second = await DeliveryRepository(session).add_all_if_new([new("c"), new("a"), new(None), new("c"), new("d")])
    assert None not in first and first[0] != first[1]
    assert second[1] is None and second[3] is None  # known before, and repeated within the batch
    async with running_app.ctx.db.session() as session:
        rows = dict((await session.execute(select(Delivery.id, Delivery.order_id))).all())
    assert rows[first[0]] == "a" and rows[first[1]] == "b"
    assert rows[second[0]] == "c" and rows[second[2]] is None and rows[second[4]] == "d"
    assert len(rows) == 5


async def test_a_webhooks_commit_goes_before_the_workers_waiting_writes() -> None:
    from saleor_app.storage.db import WriteLock

    lock, order = WriteLock(), []

    async def write(name: str, urgent: bool) -> None:
        async with lock.hold(urgent=urgent):
            order.append(name)

    async with lock.hold():
        waiting = [asyncio.create_task(write("settle-1", False)), asyncio.create_task(write("settle-2", False))]
        await asyncio.sleep(0)
        waiting.append(asyncio.create_task(write("webhooks", True)))
        await asyncio.sleep(0)
        assert order == []  # nobody writes while the lock is held
    await asyncio.gather(*waiting)
    assert order == ["webhooks", "settle-1", "settle-2"]


async def test_a_waiter_cancelled_while_the_lock_is_held_leaves_the_queue() -> None:
    from saleor_app.storage.db import WriteLock

    lock = WriteLock()
    async with lock.hold():
        waiter = asyncio.create_task(lock.hold().__aenter__())
        await asyncio.sleep(0)
        waiter.cancel()
        results = await asyncio.gather(waiter, return_exceptions=True)  # it runs its cancellation while held
        assert isinstance(results[0], asyncio.CancelledError)
    async with asyncio.timeout(5):
        async with lock.hold(urgent=True):
            pass


async def test_a_waiter_cancelled_after_the_holder_left_neither_breaks_nor_keeps_the_lock() -> None:
    from saleor_app.storage.db import WriteLock

    lock = WriteLock()
    async with lock.hold():
        waiter = asyncio.create_task(lock.hold().__aenter__())
        await asyncio.sleep(0)
        waiter.cancel()  # its turn is cancelled now; the holder leaves before the waiter runs again
    results = await asyncio.wait_for(asyncio.gather(waiter, return_exceptions=True), 5)
    assert isinstance(results[0], asyncio.CancelledError)
    async with asyncio.timeout(5):
        async with lock.hold():
            pass
