"""The migrations create exactly the schema the models describe, on SQLite and PostgreSQL, and run idempotently."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from saleor_app.storage.db import Database
from saleor_app.storage.models import Base


async def test_migrations_match_the_models(database_url: str) -> None:
    db = Database(database_url)
    try:
        assert not await db.migrations_current()  # a fresh database
        await db.migrate()
        await db.migrate()  # a second start finds nothing to do
        assert await db.migrations_current()

        def diff(connection):  # type: ignore[no-untyped-def]
            return compare_metadata(MigrationContext.configure(connection), Base.metadata)

        async with db.engine.connect() as conn:
            assert await conn.run_sync(diff) == []
    finally:
        await db.dispose()
