"""The database: one async engine per process, sessions, and migrations applied at start."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import AsyncIterator
from contextlib import asynccontextmanager

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from saleor_app.storage.files import create_private_file

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    # WAL lets the worker read while a webhook writes; FULL sync keeps an acknowledged webhook on disk
    # even if the machine loses power right after the 200.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Database:
    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict = {"echo": echo, "pool_pre_ping": not self.is_sqlite}
        if self.is_sqlite:
            path = url.split(":///", 1)[1] if ":///" in url else ""
            if path and path != ":memory:":
                create_private_file(Path(path))
        else:
            kwargs.update(pool_size=10, max_overflow=20)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
            # SQLite allows one writer; serialising our own writes in-process avoids "database is locked" churn.
            self.write_lock: asyncio.Lock | None = asyncio.Lock()
        else:
            self.write_lock = None
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessionmaker() as session:
            yield session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session in one committed transaction (serialised per process on SQLite)."""
        if self.write_lock is not None:
            async with self.write_lock:
                async with self.sessionmaker() as session, session.begin():
                    yield session
        else:
            async with self.sessionmaker() as session, session.begin():
                yield session

    async def dispose(self) -> None:
        await self.engine.dispose()

    # Migrations ---------------------------------------------------------------------------------------------

    def _alembic_config(self, connection: Connection) -> Config:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.attributes["connection"] = connection
        return cfg

    async def migrate(self) -> None:
        """Bring the schema to the newest migration (safe to run from several processes at once on PostgreSQL)."""

        def upgrade(connection: Connection) -> None:
            if connection.dialect.name == "postgresql":
                # Two processes starting together must not both create the tables.
                connection.execute(text("SELECT pg_advisory_xact_lock(7215001)"))
            command.upgrade(self._alembic_config(connection), "head")

        async with self.engine.begin() as conn:
            await conn.run_sync(upgrade)

    async def migrations_current(self) -> bool:
        def check(connection: Connection) -> bool:
            current = MigrationContext.configure(connection).get_current_heads()
            head = ScriptDirectory.from_config(self._alembic_config(connection)).get_heads()
            return set(current) == set(head)

        async with self.engine.connect() as conn:
            return await conn.run_sync(check)

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
