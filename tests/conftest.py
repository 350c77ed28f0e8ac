"""Shared fixtures: the app on SQLite (and PostgreSQL when TEST_DATABASE_URL is set), a fake Saleor, a fake
VTmarketing. Everything talks over 127.0.0.1 only."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import hypothesis  # imported before any server thread: CPython 3.11.7 breaks on concurrent ast.parse
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from saleor_app.app import create_app
from saleor_app.config import Settings
from saleor_app.context import AppContext
from saleor_app.settings.service import ChannelSettingsService
from saleor_app.storage.repositories import InstallationRepository
from saleor_app.worker_runtime import build_worker
from saleor_app.saleor.manifest import ORDER_CONFIRMED
from tests.fakes.saleor import FakeSaleor
from tests.fakes.vtmarketing import FakeVTMarketing

def _private_postgres_database(url: str) -> str:
    """A database of this test run's own (created now, dropped at exit), so two runs on one server never meet."""
    import asyncpg
    from sqlalchemy.engine import make_url

    base = make_url(url)
    name = f"vtm_test_{os.getpid()}"
    dsn = base.set(drivername="postgresql").render_as_string(hide_password=False)

    async def run(statement: str) -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(run(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    asyncio.run(run(f"CREATE DATABASE {name}"))
    atexit.register(lambda: asyncio.run(run(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
    return base.set(database=name).render_as_string(hide_password=False)


TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "")
if TEST_DATABASE_URL and not os.environ.get("VTM_TEST_DATABASE_PRIVATE"):
    # Subprocesses started by tests inherit the private URL and must not make their own.
    os.environ["TEST_DATABASE_URL"] = TEST_DATABASE_URL = _private_postgres_database(TEST_DATABASE_URL)
    os.environ["VTM_TEST_DATABASE_PRIVATE"] = "1"
# No example may fail for taking long: the suite runs on loaded machines (hypothesis' default deadline is 200 ms).
hypothesis.settings.register_profile("any-machine-speed", deadline=None)
hypothesis.settings.load_profile("any-machine-speed")

BACKENDS = ["sqlite"] + (["postgresql"] if TEST_DATABASE_URL else [])


async def reset_postgres(url: str) -> None:
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


def asyncpg_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+asyncpg://", 1) if url.startswith("postgresql://") else url


@pytest.fixture(params=BACKENDS)
async def database_url(request: pytest.FixtureRequest, tmp_path) -> str:  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
    url = asyncpg_url(TEST_DATABASE_URL)
    await reset_postgres(url)
    return url


@pytest.fixture
def fake_saleor() -> Iterator[FakeSaleor]:
    with FakeSaleor() as saleor:
        yield saleor


@pytest.fixture
def fake_vtm() -> Iterator[FakeVTMarketing]:
    with FakeVTMarketing() as vtm:
        yield vtm


def make_settings(database_url: str, tmp_path, vtmarketing_api_url: str = "http://127.0.0.1:9/v1/event/", **overrides) -> Settings:  # type: ignore[no-untyped-def]
    values = dict(
        app_url="http://127.0.0.1:8000",
        database_url=database_url,
        data_dir=tmp_path / "data",
        secret_key="test-secret-key-" + uuid.uuid4().hex,
        vtmarketing_api_url=vtmarketing_api_url,
        # Retries wait far longer than any test: a retry happens when a test makes it due (make_due_now), never
        # because the machine was slow enough for its backoff to pass between two steps of the test.
        delivery_retry_base_seconds=60.0,
        delivery_retry_max_seconds=600.0,
        delivery_poll_seconds=0.2,
        vtmarketing_timeout_seconds=2.0,
        saleor_timeout_seconds=2.0,
        log_format="text",
        allow_private_saleor_urls=True,  # the fake Saleor listens on 127.0.0.1
    )
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings_overrides() -> dict:
    """Per-module or per-test settings (override or parametrize this fixture), e.g. a short VTmarketing timeout."""
    return {}


@pytest.fixture
def settings(database_url: str, tmp_path, fake_vtm: FakeVTMarketing, settings_overrides: dict) -> Settings:  # type: ignore[no-untyped-def]
    return make_settings(database_url, tmp_path, fake_vtm.api_url, **settings_overrides)


async def place_order(running_app: "RunningApp", saleor: FakeSaleor, **overrides) -> dict:  # type: ignore[no-untyped-def]
    """A confirmed order: known to the fake Saleor (for the line query) and sent to the app as its signed webhook."""
    order = saleor.add_order(saleor.make_order(**overrides))
    response = await running_app.send_webhook(saleor, order)
    assert response.status_code == 200, response.text
    return order


class RunningApp:
    """The app in this test's event loop (lifespan run), reached through an in-memory ASGI transport."""

    def __init__(self, app, client: httpx.AsyncClient) -> None:  # type: ignore[no-untyped-def]
        self.app = app
        self.client = client

    @property
    def ctx(self) -> AppContext:
        return self.app.state.ctx

    @property
    def worker(self):  # type: ignore[no-untyped-def]
        return self.app.state.worker

    async def register(self, saleor: FakeSaleor) -> httpx.Response:
        return await self.client.post("/api/register", content=saleor.register_body(), headers=saleor.register_headers())

    async def send_webhook(self, saleor: FakeSaleor, order: dict, **kwargs) -> httpx.Response:  # type: ignore[no-untyped-def]
        """Send `order` the way Saleor would: projected through the app's own subscription, signed."""
        kwargs.setdefault("query", ORDER_CONFIRMED.query)
        body = saleor.webhook_body(order, **kwargs)
        return await self.client.post("/api/webhooks/order-confirmed", content=body, headers=saleor.webhook_headers(body))


class start_app:  # noqa: N801 - reads as a function: `async with start_app(settings, run_worker=False) as app:`
    """Run the app (lifespan included) in this event loop, reached through an in-memory ASGI transport."""

    def __init__(self, settings: Settings, *, run_worker: bool) -> None:
        self._settings, self._run_worker = settings, run_worker
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> RunningApp:
        app = create_app(self._settings, run_worker=self._run_worker)
        await self._stack.enter_async_context(app.router.lifespan_context(app))
        client = await self._stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8000")
        )
        return RunningApp(app, client)

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def __aiter__(self) -> AsyncIterator[RunningApp]:
        """Also usable as `async for app in start_app(...)` (one iteration)."""
        async with self as running:
            yield running


@pytest.fixture
async def running_app(settings: Settings) -> AsyncIterator[RunningApp]:
    """The app without its background worker: tests drive delivery with `worker.run_until_idle()`."""
    async with start_app(settings, run_worker=False) as running:
        yield running


@pytest.fixture
async def live_app(settings: Settings) -> AsyncIterator[RunningApp]:
    """The app with its in-process worker running, as `serve` runs it."""
    async with start_app(settings, run_worker=True) as running:
        yield running


# Installed app, channel settings and a worker: shared by every test folder.
@pytest.fixture
async def installed(running_app, fake_saleor: FakeSaleor):  # type: ignore[no-untyped-def]
    response = await running_app.register(fake_saleor)
    assert response.status_code == 200, response.text
    return fake_saleor


async def installation_id(running_app, saleor: FakeSaleor) -> int:  # type: ignore[no-untyped-def]
    async with running_app.ctx.db.session() as session:
        return (await InstallationRepository(session).by_api_url(saleor.api_url)).id


async def configure(running_app, saleor: FakeSaleor, channel: str = "default-channel", **fields) -> None:  # type: ignore[no-untyped-def]
    fields.setdefault("api_key", "vtm-key-" + channel)
    await ChannelSettingsService(running_app.ctx).update(await installation_id(running_app, saleor), channel, **fields)


@pytest.fixture
def worker(running_app):  # type: ignore[no-untyped-def]
    return build_worker(running_app.ctx)
