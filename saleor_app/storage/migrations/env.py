"""Alembic environment: run against the connection the app hands over (see storage/db.py)."""

from alembic import context

from saleor_app.storage.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only the app's Database.migrate() runs migrations
    raise RuntimeError("run migrations with `saleor-vtmarketing migrate`")

context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
