"""The claim's cost with few or many orders due: the worker's claim statement (DeliveryRepository.claim_due) run
in-process against a database holding N due deliveries, each claim rolled back so every one sees the same queue.
Also the plan the database chose for the statement the repository sent (EXPLAIN of the captured SQL)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy import event, insert

from saleor_app.storage.db import Database
from saleor_app.storage.models import Delivery, Installation, utcnow
from saleor_app.storage.repositories import DeliveryRepository

CLAIM_LIMIT = 8  # what a claim takes when an eighth of 64 slots is free (worker.py, claim_batch)


@dataclass
class ClaimCost:
    due: int
    wall_ms: float  # per claim, sequential
    cpu_ms: float  # this process, all threads (SQLite's work runs in aiosqlite's thread): per claim
    claimed: int  # rows one claim took
    plan: str  # the database's plan of the claim statement, one line


async def _fill(db: Database, due: int) -> None:
    now = utcnow()
    async with db.transaction() as session:
        installation_id = await session.scalar(insert(Installation).values(
            saleor_api_url="http://127.0.0.1:9/graphql/", app_id="bench", token_encrypted="x", jwks="{}",
        ).returning(Installation.id))
        rows = [dict(installation_id=installation_id, order_id=f"order-{i}", order_number=str(i), channel_slug="c",
                     payload="{}", source="webhook", status="pending", attempt_count=0,
                     next_attempt_at=now - timedelta(seconds=due - i), received_at=now, updated_at=now)
                for i in range(due)]
        for start in range(0, len(rows), 1000):
            await session.execute(insert(Delivery), rows[start:start + 1000])
    if not db.is_sqlite:
        async with db.engine.begin() as conn:
            await conn.exec_driver_sql("ANALYZE deliveries")  # what autovacuum does on a live table


async def _plan(db: Database, statement: str, parameters) -> str:  # type: ignore[no-untyped-def]
    async with db.engine.connect() as conn:
        prefix = "EXPLAIN QUERY PLAN " if db.is_sqlite else "EXPLAIN "
        rows = (await conn.exec_driver_sql(prefix + statement, parameters)).all()
    lines = [str(row[-1]) for row in rows] if db.is_sqlite else [str(row[0]).strip() for row in rows]
    return "; ".join(lines)


async def measure(url: str, due: int, claims: int, *, reclaim_expired: bool) -> ClaimCost:
    db = Database(url)
    try:
        await db.migrate()
        await _fill(db, due)
        captured: list[tuple[str, object]] = []

        def capture(_conn, _cursor, statement, parameters, _context, _many):  # type: ignore[no-untyped-def]
            if statement.lstrip().upper().startswith("UPDATE DELIVERIES SET STATUS"):
                captured.append((statement, parameters))

        async def one_claim() -> int:
            async with db.session() as session:
                rows = await DeliveryRepository(session).claim_due(
                    worker_id="bench", limit=CLAIM_LIMIT, lease_seconds=120, reclaim_expired=reclaim_expired)
                await session.rollback()  # the queue stays as it was for the next claim
            return len(rows)

        event.listen(db.engine.sync_engine, "before_cursor_execute", capture)
        claimed = await one_claim()  # warm: statement caches, connection
        event.remove(db.engine.sync_engine, "before_cursor_execute", capture)
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(claims):
            await one_claim()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        plan = await _plan(db, *captured[-1]) if captured else "(no claim statement seen)"
        return ClaimCost(due, 1000 * wall / claims, 1000 * cpu / claims, claimed, plan)
    finally:
        await db.dispose()


def sqlite_costs(folder: Path, dues: list[int], claims: int) -> list[ClaimCost]:
    out = []
    for due in dues:
        path = folder / f"claim-{due}.db"
        out.append(asyncio.run(measure(f"sqlite+aiosqlite:///{path}", due, claims, reclaim_expired=False)))
    return out


def postgres_costs(url: str, dues: list[int], claims: int, reset) -> list[ClaimCost]:  # type: ignore[no-untyped-def]
    out = []
    for due in dues:
        asyncio.run(reset(url))
        out.append(asyncio.run(measure(url, due, claims, reclaim_expired=True)))
    return out
