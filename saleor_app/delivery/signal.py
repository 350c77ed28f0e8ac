"""Wakes the worker the moment an order is stored: an asyncio event in-process, LISTEN/NOTIFY across processes
on PostgreSQL. Polling stays only as a fallback (a lost notification delays, never loses, an order)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

log = logging.getLogger(__name__)

CHANNEL = "saleor_vtmarketing_deliveries"
CONFIG_CHANNEL = "saleor_vtmarketing_config"  # delivery/channel_config.py sends it


class DeliverySignal:
    def __init__(self) -> None:
        self._event = asyncio.Event()

    def wake(self) -> None:
        self._event.set()

    async def notify_in(self, session: AsyncSession) -> None:
        """Called inside the storing transaction; PostgreSQL delivers the notification at commit."""
        if session.bind is not None and session.bind.dialect.name == "postgresql":
            await session.execute(text(f"NOTIFY {CHANNEL}"))

    async def wait(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except asyncio.TimeoutError:
            pass
        self._event.clear()


class PostgresListener:
    """Holds one asyncpg connection that LISTENs: wakes the local signal on every new order, and calls
    `on_config_changed` when another process changed an installation or a channel (delivery/channel_config.py)."""

    def __init__(self, database_url: str, signal: DeliverySignal, *,
                 on_config_changed: Callable[[], None] | None = None) -> None:
        self._dsn = database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
        self._signal = signal
        self._on_config_changed = on_config_changed
        self._conn = None

    async def start(self) -> None:
        import asyncpg

        try:
            self._conn = await asyncpg.connect(self._dsn)
            await self._conn.add_listener(CHANNEL, lambda *_: self._signal.wake())
            if self._on_config_changed is not None:
                on_config_changed = self._on_config_changed
                await self._conn.add_listener(CONFIG_CHANNEL, lambda *_: on_config_changed())
        except Exception as exc:  # the worker still polls; say so, do not stop
            log.warning("LISTEN/NOTIFY unavailable, falling back to polling: %s", exc)
            self._conn = None

    async def stop(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
