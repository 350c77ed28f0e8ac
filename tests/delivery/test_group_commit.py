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
