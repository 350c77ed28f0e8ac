"""The app itself fails: its process is SIGKILLed while taking webhooks or while sending, its database is full,
read-only or unreachable. Saleor must never get a 200 for an order that is not stored (a 5xx makes it retry), an
order that got its 200 must survive the crash and be delivered, and Saleor's retries are stored once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event, select, text
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

from saleor_app.config import Settings

from saleor_app.saleor.manifest import ORDER_CONFIRMED
from saleor_app.storage.models import Delivery
from tests.conftest import TEST_DATABASE_URL, asyncpg_url, reset_postgres
from tests.fakes.server import free_port
from tests.fakes.saleor import FakeSaleor
from tests.ops.procs import wait_until

PATH = ORDER_CONFIRMED.path


async def stored_order_ids(running_app) -> list[str | None]:  # type: ignore[no-untyped-def]
    async with running_app.ctx.db.session() as session:
        return list(await session.scalars(select(Delivery.order_id).order_by(Delivery.id)))


def signed_webhook(saleor: FakeSaleor, *, big: bool = False) -> tuple[dict, bytes, dict]:
    """A signed ORDER_CONFIRMED; `big`: the whole order with 40 lines (~40 kB, as a richer subscription sends)."""
    if big:
        order = saleor.add_order(saleor.make_order(lines=[{"sku": f"SKU-{i}", "quantity": 1} for i in range(40)]))
        body = saleor.webhook_body(order)
    else:
        order = saleor.add_order(saleor.make_order())
        body = saleor.webhook_body(order, query=ORDER_CONFIRMED.query)
    return order, body, saleor.webhook_headers(body)


def _sqlite_disk_full(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    """SQLite's own "database or disk is full" (SQLITE_FULL): the file may not grow by a single page."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA page_count")
    (pages,) = cursor.fetchone()
    cursor.execute(f"PRAGMA max_page_count = {pages}")
    cursor.close()


def _postgres_read_only(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    """Only the app's connections become read-only (a failed-over replica, say); the server is shared."""
    cursor = dbapi_connection.cursor()
    cursor.execute("SET default_transaction_read_only = on")
    cursor.close()
    dbapi_connection.commit()  # a SET inside the driver's implicit transaction would be rolled back with it


@contextmanager
def listening(engine, listener):  # type: ignore[no-untyped-def]
    event.listen(engine.sync_engine, "connect", listener)
    try:
        yield
    finally:
        event.remove(engine.sync_engine, "connect", listener)


async def test_full_or_read_only_database_answers_503_then_the_retry_is_stored_once(running_app, installed) -> None:  # type: ignore[no-untyped-def]
    """SQLite: disk full (max_page_count). PostgreSQL: read-only connections (default_transaction_read_only)."""
    db = running_app.ctx.db
    order, body, headers = signed_webhook(installed, big=True)  # storing it needs new pages
    await db.engine.dispose()  # new connections get the fault
    with listening(db.engine, _sqlite_disk_full if db.is_sqlite else _postgres_read_only):
        for _ in range(2):
            response = await running_app.client.post(PATH, content=body, headers=headers)
            assert response.status_code == 503, response.text
            error = response.json()["error"]
            assert error["code"] == "SERVICE_UNAVAILABLE" and "Saleor will retry" in error["message"]
        await db.engine.dispose()
    assert await stored_order_ids(running_app) == []

    # The disk has room again / the database takes writes again: Saleor's retry is stored, a second retry is a duplicate.
    response = await running_app.client.post(PATH, content=body, headers=headers)
    assert (response.status_code, response.json()["outcome"]) == (200, "stored")
    response = await running_app.client.post(PATH, content=body, headers=headers)
    assert (response.status_code, response.json()["outcome"]) == (200, "duplicate")
    assert await stored_order_ids(running_app) == [order["id"]]


async def test_unreachable_database_answers_503_not_500(running_app, installed, tmp_path) -> None:  # type: ignore[no-untyped-def]
    db = running_app.ctx.db
    dead_url = (
        f"sqlite+aiosqlite:///{tmp_path / 'missing-folder' / 'x' / 'app.db'}" if db.is_sqlite
        else "postgresql+asyncpg://postgres@127.0.0.1:1/test"  # nothing listens on port 1
    )
    order, body, headers = signed_webhook(installed)
    engine, sessionmaker = db.engine, db.sessionmaker
    dead = create_async_engine(dead_url)
    db.engine, db.sessionmaker = dead, async_sessionmaker(dead, expire_on_commit=False)
    try:
        response = await running_app.client.post(PATH, content=body, headers=headers)
        assert response.status_code == 503, response.text
        assert response.json()["error"]["message"]
    finally:
        db.engine, db.sessionmaker = engine, sessionmaker
        await dead.dispose()
    response = await running_app.client.post(PATH, content=body, headers=headers)
    assert (response.status_code, response.json()["outcome"]) == (200, "stored")
    assert await stored_order_ids(running_app) == [order["id"]]


# --- SIGKILL: real `saleor-vtmarketing serve` processes --------------------------------------------------------------

CLI = Path(sys.executable).parent / "saleor-vtmarketing"
CUSTOMER_EMAIL = "ada.buyer@example.com"  # on every FakeSaleor order: must never be logged


def run_sql(database_url: str, sql: str) -> list[dict[str, Any]]:
    """Read the app's database from the test (a throwaway engine: the app's processes own theirs)."""

    async def query() -> list[dict[str, Any]]:
        engine = create_async_engine(database_url, poolclass=NullPool)
        try:
            async with engine.connect() as conn:
                return [dict(row._mapping) for row in await conn.execute(text(sql))]
        finally:
            await engine.dispose()

    return asyncio.run(query())


class Deployment:
    """One database, the fakes, and `saleor-vtmarketing` processes started with the environment an operator sets."""

    def __init__(self, tmp_path: Path, backend: str, saleor: FakeSaleor, vtm) -> None:  # type: ignore[no-untyped-def]
        if backend == "sqlite":
            self.database_url = f"sqlite+aiosqlite:///{tmp_path / 'data' / 'app.db'}"
        else:
            if not TEST_DATABASE_URL:
                pytest.skip("PostgreSQL variant: set TEST_DATABASE_URL")
            self.database_url = asyncpg_url(TEST_DATABASE_URL)
            asyncio.run(reset_postgres(self.database_url))
        self.saleor, self.vtm = saleor, vtm
        self.api_key = "vtm-key-" + uuid.uuid4().hex[:12]
        self.cwd = tmp_path / "run"  # no .env of the repository is read from here
        self.cwd.mkdir(parents=True, exist_ok=True)
        self.logs_dir = tmp_path / "logs"
        self.logs_dir.mkdir(exist_ok=True)
        self.processes: list[subprocess.Popen] = []
        own = {(field.alias or name).upper() for name, field in Settings.model_fields.items()} | {"TEST_DATABASE_URL"}
        self.env = {k: v for k, v in os.environ.items() if k.upper() not in own}
        self.env.update(
            PYTHONUNBUFFERED="1", APP_URL="http://127.0.0.1:8000", DATABASE_URL=self.database_url,
            DATA_DIR=str(tmp_path / "data"), SECRET_KEY="faults-" + uuid.uuid4().hex, VTMARKETING_API_URL=vtm.api_url,
            LOG_FORMAT="json", DELIVERY_LEASE_SECONDS="2", DELIVERY_POLL_SECONDS="0.2", RECONCILE_INTERVAL="0",
            DELIVERY_RETRY_BASE_SECONDS="0.2", DELIVERY_RETRY_MAX_SECONDS="1", VTMARKETING_TIMEOUT_SECONDS="10",
            ALLOW_PRIVATE_SALEOR_URLS="true",  # the fake Saleor listens on 127.0.0.1
        )

    @staticmethod
    def command(*args: str) -> list[str]:
        return [str(CLI), *args] if CLI.exists() else [sys.executable, "-m", "saleor_app.cli", *args]

    def serve(self) -> "Served":
        port = free_port()
        log_path = self.logs_dir / f"serve-{len(self.processes)}.log"
        with open(log_path, "ab") as log_file:
            popen = subprocess.Popen(
                self.command("serve", "--host", "127.0.0.1", "--port", str(port), "--worker"), env=self.env,
                cwd=self.cwd, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )
        self.processes.append(popen)
        served = Served(popen, f"http://127.0.0.1:{port}", log_path)
        served.wait_ready()
        return served

    def cli(self, *args: str) -> str:
        result = subprocess.run(self.command(*args), env={**self.env, "COLUMNS": "200"}, cwd=self.cwd,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"{args}: {result.stdout}\n{result.stderr}"
        return result.stdout

    def install_and_configure(self, served: "Served") -> None:
        """Saleor installs the app over HTTP; the operator gives the channel its key with the CLI."""
        response = httpx.post(f"{served.url}/api/register", content=self.saleor.register_body(),
                              headers=self.saleor.register_headers(), timeout=60)
        assert response.status_code == 200, response.text
        self.cli("channels", "set", "--saleor-api-url", self.saleor.api_url, "--channel", "default-channel",
                 "--api-key", self.api_key)

    def new_webhook(self) -> tuple[dict, bytes, dict]:
        order = self.saleor.add_order(self.saleor.make_order())
        body = self.saleor.webhook_body(order, query=ORDER_CONFIRMED.query)
        return order, body, self.saleor.webhook_headers(body)

    def deliveries(self) -> list[dict[str, Any]]:
        return run_sql(self.database_url, "SELECT id, order_id, order_number, status, claimed_by FROM deliveries ORDER BY id")

    def close(self) -> None:
        for popen in self.processes:
            if popen.poll() is None:
                os.kill(popen.pid, signal.SIGTERM)
                try:
                    popen.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.kill(popen.pid, signal.SIGKILL)
                    popen.wait(timeout=10)


class Served:
    def __init__(self, popen: subprocess.Popen, url: str, log_path: Path) -> None:
        self.popen, self.url, self.log_path = popen, url, log_path

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self) -> None:
        """GET /readyz answers 200 (migrated) and the in-process worker has started."""

        def ready() -> bool:
            assert self.popen.poll() is None, f"serve exited {self.popen.returncode}:\n{self.logs()[-3000:]}"
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code != 200:
                    return False
            except httpx.HTTPError:
                return False
            return "started (concurrency" in self.logs()

        wait_until(ready, timeout=90, what="serve ready")

    def kill(self) -> None:
        """SIGKILL: nothing of the app runs after it."""
        os.kill(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)

    def assert_logs_clean(self, *secrets: str) -> None:
        logs = self.logs()
        for word in (CUSTOMER_EMAIL, *secrets):
            assert word not in logs, f"logged {word!r}"


def event_counts(vtm) -> dict[str, int]:  # type: ignore[no-untyped-def]
    counts: dict[str, int] = {}
    for received in vtm.events:
        counts[received.order_id] = counts.get(received.order_id, 0) + 1
    return counts


def post_once(url: str, body: bytes, headers: dict) -> int | None:
    """One delivery attempt of a webhook, as Saleor makes it: the status, or None when no answer came."""
    try:
        with httpx.Client(timeout=10) as client:
            return client.post(url, content=body, headers=headers).status_code
    except httpx.HTTPError:
        return None


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_sigkill_during_intake_loses_no_acknowledged_webhook(tmp_path, fake_saleor, fake_vtm, backend) -> None:  # type: ignore[no-untyped-def]
    d = Deployment(tmp_path, backend, fake_saleor, fake_vtm)
    try:
        serve = d.serve()
        d.install_and_configure(serve)
        hooks = [d.new_webhook() for _ in range(80)]
        url = f"{serve.url}{PATH}"
        statuses: list[int | None] = [None] * len(hooks)
        enough = threading.Event()
        killed = threading.Event()
        lock = threading.Lock()
        answered = [0]

        def send(index: int) -> None:
            _, body, headers = hooks[index]
            if enough.is_set():  # the rest wait for the kill: they find nobody listening, however fast the app
                killed.wait(120)
            statuses[index] = status = post_once(url, body, headers)
            with lock:
                answered[0] += status == 200
                if answered[0] >= 25:
                    enough.set()

        with ThreadPoolExecutor(max_workers=8) as pool:  # Saleor sends concurrently too
            futures = [pool.submit(send, i) for i in range(len(hooks))]
            assert enough.wait(60), f"only {answered[0]} webhooks answered:\n{serve.logs()[-3000:]}"
            serve.kill()  # mid-stream: some requests in flight, the rest find nobody listening
            killed.set()
            for future in futures:
                future.result(timeout=60)

        acknowledged = [hooks[i][0]["id"] for i, status in enumerate(statuses) if status == 200]
        unanswered = [i for i, status in enumerate(statuses) if status is None]
        assert set(statuses) <= {200, None}, statuses  # never a 4xx/5xx for a good webhook
        assert len(acknowledged) >= 25 and unanswered, "the kill did not land mid-stream"
        at_kill = {row["order_id"]: row for row in d.deliveries()}
        # Every webhook that got its 200 is on disk, whatever happened to the process right after.
        assert [order_id for order_id in acknowledged if order_id not in at_kill] == []
        in_flight = {row["order_number"] for row in at_kill.values() if row["status"] == "delivering"}

        restarted = d.serve()
        # Saleor retries what got no answer (some of it was stored before the kill: those are duplicates).
        retried = [post_once(f"{restarted.url}{PATH}", hooks[i][1], hooks[i][2]) for i in unanswered]
        assert retried == [200] * len(unanswered)

        def finished() -> list[dict[str, Any]] | None:
            rows = d.deliveries()
            return rows if len(rows) >= len(hooks) and all(r["status"] == "delivered" for r in rows) else None

        rows = wait_until(finished, timeout=180, what="every order delivered")
        assert sorted(r["order_id"] for r in rows) == sorted(order["id"] for order, _, _ in hooks)  # stored once each

        def every_order_sent() -> dict[str, int] | None:
            counts = event_counts(fake_vtm)
            return counts if len(counts) == len(hooks) else None

        counts = wait_until(every_order_sent, timeout=60, what="an event for every order")
        # Exactly once, except an order whose send was in flight when the process died: VTmarketing may have taken
        # that send before the crash, and the restarted worker sends it again (delivery is at least once).
        duplicated = {number for number, count in counts.items() if count > 1}
        assert duplicated <= in_flight and max(counts.values()) <= 2, (duplicated, in_flight)
        print(f"{backend}: {len(acknowledged)} acknowledged before the kill, {len(unanswered)} re-sent, "
              f"{len(at_kill) - len(acknowledged)} stored but unanswered, {len(in_flight)} in flight, {len(duplicated)} sent twice")
        for served in (serve, restarted):
            served.assert_logs_clean(d.api_key, fake_saleor.app_token)
    finally:
        d.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_sigkill_during_delivery_ends_delivered(tmp_path, fake_saleor, fake_vtm, backend) -> None:  # type: ignore[no-untyped-def]
    d = Deployment(tmp_path, backend, fake_saleor, fake_vtm)
    try:
        serve = d.serve()
        d.install_and_configure(serve)
        release = fake_vtm.hold_next()  # VTmarketing answers only after the crash, however slow the machine
        order, body, headers = d.new_webhook()
        assert post_once(f"{serve.url}{PATH}", body, headers) == 200
        wait_until(lambda: fake_vtm.requests, timeout=60, what="the send to VTmarketing")
        serve.kill()  # VTmarketing has not answered yet
        (row,) = d.deliveries()
        assert row["status"] == "delivering" and row["claimed_by"]

        restarted = d.serve()
        # SQLite: the restarted process frees what its dead predecessor held at once; PostgreSQL: the 2 s lease ends.
        wait_until(lambda: d.deliveries()[0]["status"] == "delivered", timeout=60, what="the order delivered")
        # VTmarketing still processes the slow request after its client died: it holds the event twice, the same
        # bytes both times (at least once; the orderId lets VTmarketing's reports count the order once).
        release.set()
        events = wait_until(lambda: len(fake_vtm.events) >= 2, timeout=60, what="two events") and fake_vtm.events
        assert len(events) == 2 and events[0].raw == events[1].raw and events[0].order_id == order["number"]
        # The log shows both sends: the one the crash interrupted (VTmarketing may have received it, and here it did),
        # then the restarted process's, whose answer it saw.
        attempts = run_sql(d.database_url, "SELECT http_status, outcome, excerpt FROM delivery_attempts "
                                           "WHERE target = 'vtmarketing' ORDER BY id")
        assert attempts == [
            {"http_status": None, "outcome": "interrupted",
             "excerpt": "the app stopped during this attempt; VTmarketing may have received it"},
            {"http_status": 200, "outcome": "delivered", "excerpt": attempts[1]["excerpt"]},
        ]
        for served in (serve, restarted):
            served.assert_logs_clean(d.api_key, fake_saleor.app_token)
    finally:
        d.close()
