"""The database: one async engine per process, sessions, and migrations applied at start."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from contextlib import asynccontextmanager, nullcontext
from pathlib import Path
from typing import AsyncIterator

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from saleor_app.errors import AppError, ServiceUnavailable
from saleor_app.storage.files import create_private_file
from saleor_app.storage.lock import sqlite_file_of

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


class DatabaseFileGone(ServiceUnavailable):
    """The SQLite file the app opened was deleted or replaced while it ran: nothing may be acknowledged into it."""

    code = "DATABASE_FILE_GONE"


def describe_database_error(exc: BaseException) -> str:
    """A database failure in one line, without the statement's parameters (they hold order data)."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        lines = str(exc.orig).strip().splitlines()
        return f"{type(exc.orig).__name__}: {lines[0]}"[:300] if lines else type(exc.orig).__name__
    if isinstance(exc, AppError):
        return exc.message[:300]
    if isinstance(exc, OSError):
        return f"{type(exc).__name__}: {exc.strerror or exc}"[:300]
    return type(exc).__name__


class WriteHealth:
    """Whether the database took this process's latest writes. Every write transaction reports here, so knowing
    costs no statement; /readyz probes only when nothing wrote lately."""

    def __init__(self) -> None:
        self.last_ok: float | None = None  # time.monotonic()
        self.last_failure: tuple[float, str] | None = None

    def ok(self) -> None:
        self.last_ok = time.monotonic()

    def failed(self, cause: str) -> None:
        self.last_failure = (time.monotonic(), cause)

    def failing(self) -> str | None:
        """The cause of the latest write failure, if no write succeeded since."""
        if self.last_failure is not None and (self.last_ok is None or self.last_failure[0] >= self.last_ok):
            return self.last_failure[1]
        return None

    def seconds_since_ok(self) -> float | None:
        return None if self.last_ok is None else time.monotonic() - self.last_ok


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    # WAL lets the worker read while a webhook writes; FULL sync keeps an acknowledged webhook on disk
    # even if the machine loses power right after the 200.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class WriteLock:
    """SQLite's one writer, taken in turn by this process's writes; an urgent write (a webhook's commit, which
    Saleor waits for) goes before every ordinary one waiting (the worker's claims and settles), so a busy worker
    adds at most one write to a webhook's wait, not all it has queued."""

    def __init__(self) -> None:
        self._held = False
        self._waiting: dict[bool, deque[asyncio.Future[None]]] = {True: deque(), False: deque()}

    @asynccontextmanager
    async def hold(self, *, urgent: bool = False) -> AsyncIterator[None]:
        if self._held or self._waiting[True] or self._waiting[False]:
            turn = asyncio.get_running_loop().create_future()
            self._waiting[urgent].append(turn)
            try:
                await turn
            except asyncio.CancelledError:
                if not turn.cancelled():
                    self._pass_on()  # it was our turn already: give it to the next
                elif turn in self._waiting[urgent]:  # (_pass_on may have skipped it already)
                    self._waiting[urgent].remove(turn)
                raise
        else:
            self._held = True
        try:
            yield
        finally:
            self._pass_on()

    def _pass_on(self) -> None:
        for queue in (self._waiting[True], self._waiting[False]):
            while queue:
                turn = queue.popleft()
                if not turn.done():
                    turn.set_result(None)  # held on: the lock goes straight to the next writer
                    return
        self._held = False


class Database:
    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.write_health = WriteHealth()
        # SQLite: the file this process opened, by (device, inode), to notice it deleted or replaced under us.
        self.file = sqlite_file_of(url)
        self._file_identity: tuple[int, int] | None = None
        self._file_problem_logged = 0.0
        kwargs: dict = {"echo": echo, "pool_pre_ping": not self.is_sqlite}
        if self.is_sqlite:
            if self.file is not None:
                create_private_file(self.file)
            # No rollback when a connection goes back to the pool: every use already ends its transaction (session
            # and connection context managers roll back on error), and on SQLite that rollback was one more hand-off
            # to aiosqlite's thread after every commit, a loop turn when the loop is busy.
            kwargs["pool_reset_on_return"] = None
        else:
            kwargs.update(pool_size=10, max_overflow=20)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
            event.listen(self.engine.sync_engine, "connect", self._remember_file)
            # SQLite allows one writer; serialising our own writes in-process avoids "database is locked" churn.
            self.write_lock: WriteLock | None = WriteLock()
        else:
            self.write_lock = None
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessionmaker() as session:
            yield session

    @asynccontextmanager
    async def transaction(self, *, urgent: bool = False) -> AsyncIterator[AsyncSession]:
        """A session in one committed transaction (serialised per process on SQLite, `urgent` ones first: see
        WriteLock). On SQLite the file is checked before and after (one os.stat each): a commit into a file that is
        gone raises DatabaseFileGone, so the caller never acknowledges it. Every outcome is reported to
        `write_health`."""
        async with self.write_lock.hold(urgent=urgent) if self.write_lock is not None else nullcontext():
            try:
                self.check_file()
                async with self.sessionmaker() as session, session.begin():
                    yield session
                self.check_file()
            except IntegrityError:
                raise  # a constraint said no: the database itself works
            except (DBAPIError, OSError, DatabaseFileGone) as exc:
                self.write_health.failed(describe_database_error(exc))
                raise
            self.write_health.ok()

    # The SQLite file ---------------------------------------------------------------------------------------

    def _remember_file(self, _dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        if self.file is not None and self._file_identity is None:
            stat = os.stat(self.file)  # the connection just opened (or created) it
            self._file_identity = (stat.st_dev, stat.st_ino)

    def file_problem(self) -> str | None:
        """Why the SQLite file this process opened is no longer the one at its path, or None."""
        if self.file is None or self._file_identity is None:
            return None
        try:
            stat = os.stat(self.file)
        except FileNotFoundError:
            return f"the database file {self.file} was deleted while the app was running"
        except OSError as exc:
            return f"the database file {self.file} cannot be checked ({exc.strerror})"
        if (stat.st_dev, stat.st_ino) != self._file_identity:
            return f"the database file {self.file} was replaced while the app was running"
        return None

    def check_file(self) -> None:
        problem = self.file_problem()
        if problem is None:
            return
        if time.monotonic() - self._file_problem_logged > 10:
            self._file_problem_logged = time.monotonic()
            log.error("%s: refusing to store or acknowledge anything; restore the file and restart the app", problem)
        raise DatabaseFileGone(f"The app cannot store anything right now ({problem}); it must be restarted.")

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
