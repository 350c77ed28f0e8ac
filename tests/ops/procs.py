"""The app as real processes: `saleor-vtmarketing serve` / `worker` / CLI commands started with an environment,
waited for (/readyz, or the worker's start line), stopped with SIGTERM or SIGKILL, their output kept in files.

`Deployment` ties it together for one test: one database, the fakes, any number of web and worker processes,
and helpers to install the app, give a channel its key, send signed webhooks and read the delivery table.
Everything listens on 127.0.0.1; every wait is bounded in time, by bounds generous enough for a loaded machine
(a wait ends as soon as its state is reached: a generous bound costs nothing when things go right).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, TypeVar

import httpx
import pytest
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from saleor_app.config import Settings
from saleor_app.saleor.manifest import ORDER_CONFIRMED
from tests.conftest import TEST_DATABASE_URL, asyncpg_url, reset_postgres
from tests.fakes.saleor import FakeSaleor
from tests.fakes.server import free_port
from tests.fakes.vtmarketing import FakeVTMarketing

T = TypeVar("T")

BIN_DIR = Path(sys.executable).parent
CLI = BIN_DIR / "saleor-vtmarketing"
# Customer data the fake's orders carry (FakeSaleor.make_order): must never appear in a log line.
CUSTOMER_EMAIL = "ada.buyer@example.com"
CUSTOMER_PHONE = "+16502530000"
DEFAULT_CHANNEL = "default-channel"
WORKER_STARTED = "started (concurrency"  # DeliveryWorker.run's first log line


def cli_command(*args: str) -> list[str]:
    """The console script of this venv (as an operator runs it), or `python -m saleor_app.cli` without one."""
    if CLI.exists():
        return [str(CLI), *args]
    return [sys.executable, "-m", "saleor_app.cli", *args]


def settings_env_names(*, field_names_too: bool = False) -> set[str]:
    """The environment variables the app's Settings read, as documented (an alias where a field has one).
    `field_names_too`: also the field names behind aliases, to keep the test's own environment out entirely."""
    names = set()
    for name, field in Settings.model_fields.items():
        names.add((field.alias or name).upper())
        if field_names_too:
            names.add(name.upper())
    return names


def wait_until(predicate: Callable[[], T], *, timeout: float, interval: float = 0.1, what: str = "condition") -> T:
    """Poll `predicate` until it returns something truthy; bounded by `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what} not reached within {timeout:g} s")
        time.sleep(interval)


# --- database access from the test (sync wrappers around a throwaway async engine) --------------------------------


def run_sql(database_url: str, sql: str, params: dict | None = None) -> list[dict[str, Any]]:
    async def query() -> list[dict[str, Any]]:
        engine = create_async_engine(database_url, poolclass=NullPool)
        try:
            async with engine.begin() as conn:
                result = await conn.execute(text(sql), params or {})
                return [dict(row._mapping) for row in result] if result.returns_rows else []
        finally:
            await engine.dispose()

    return asyncio.run(query())


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'data' / 'saleor-vtmarketing.db'}"


@contextmanager
def private_postgres_database() -> Iterator[str]:
    """A PostgreSQL database of this test's own, next to TEST_DATABASE_URL's, dropped afterwards.

    These tests start several processes and run for seconds; a database of their own keeps them apart from any other
    test run on the same server (a `public` schema reset by another run would pull the tables from under them).
    Without the right to create databases, TEST_DATABASE_URL's `public` schema is reset and used instead, as the
    other PostgreSQL tests do."""
    base = make_url(asyncpg_url(TEST_DATABASE_URL))
    name = f"{base.database or 'test'}_ops_{uuid.uuid4().hex[:8]}"

    async def admin(sql: str) -> None:
        engine = create_async_engine(base, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as conn:
                await conn.execute(text(sql))
        finally:
            await engine.dispose()

    try:
        asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    except Exception:  # no CREATEDB right: share TEST_DATABASE_URL's database
        url = base.render_as_string(hide_password=False)
        asyncio.run(reset_postgres(url))
        yield url
        return
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A private PostgreSQL database (see private_postgres_database); skips when TEST_DATABASE_URL is not set."""
    if not TEST_DATABASE_URL:
        pytest.skip("PostgreSQL test: set TEST_DATABASE_URL (CI does)")
    with private_postgres_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """tests/conftest.py's `database_url` (SQLite, and PostgreSQL when TEST_DATABASE_URL is set), but on a private
    PostgreSQL database. Import it into a test module to override the shared one for that module's tests."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
        return
    if not TEST_DATABASE_URL:
        pytest.skip("PostgreSQL test: set TEST_DATABASE_URL (CI does)")
    with private_postgres_database() as url:
        yield url


# --- one process --------------------------------------------------------------------------------------------------


class AppProcess:
    """One `saleor-vtmarketing …` process with its output in `log_path`."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], cwd: Path, log_path: Path,
                 port: int | None = None) -> None:
        self.name = name
        self.args = args
        self.env = env
        self.cwd = cwd
        self.log_path = log_path
        self.port = port
        self.popen: subprocess.Popen | None = None
        self.started_at = 0.0
        self.ended_at: float | None = None
        self.ready_log: str | None = None  # a log line that says the process is ready

    def start(self) -> "AppProcess":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log_file = open(self.log_path, "ab")
        try:
            # A session of its own: signals sent to the test runner's group never reach it, and ours only reach it.
            self.popen = subprocess.Popen(self.args, env=self.env, cwd=self.cwd, stdout=log_file,
                                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            log_file.close()
        self.started_at = time.monotonic()
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    @property
    def url(self) -> str:
        assert self.port is not None, f"{self.name} serves no HTTP"
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.popen.poll() if self.popen is not None else None

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.logs().splitlines()[-lines:])

    def json_lines(self) -> list[dict[str, Any]]:
        """The JSON log lines (LOG_FORMAT=json); other output (e.g. tracebacks of a crash) is left out."""
        entries = []
        for line in self.logs().splitlines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    entries.append(json.loads(line))
                except ValueError:
                    pass
        return entries

    def non_json_lines(self) -> list[str]:
        return [line for line in self.logs().splitlines() if line.strip() and not line.lstrip().startswith("{")]

    def _check_running(self, what: str) -> None:
        if not self.alive:
            raise AssertionError(f"{self.name} exited ({self.returncode}) while waiting for {what}:\n{self.tail()}")

    def wait_ready(self, timeout: float = 90.0) -> "AppProcess":
        """Until GET /readyz answers 200 (database reachable and migrated)."""
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0) as client:
            while True:
                self._check_running("/readyz")
                try:
                    if client.get(f"{self.url}/readyz").status_code == 200:
                        return self
                except httpx.HTTPError:
                    pass
                if time.monotonic() >= deadline:
                    raise AssertionError(f"{self.name} not ready within {timeout:g} s:\n{self.tail()}")
                time.sleep(0.1)

    def wait_log(self, needle: str, timeout: float = 90.0) -> "AppProcess":
        deadline = time.monotonic() + timeout
        while needle not in self.logs():
            self._check_running(repr(needle))
            if time.monotonic() >= deadline:
                raise AssertionError(f"{self.name}: {needle!r} not logged within {timeout:g} s:\n{self.tail()}")
            time.sleep(0.05)
        return self

    def wait_started(self, timeout: float = 90.0) -> "AppProcess":
        """Ready to work: /readyz answers 200 (web), and the worker logged its start (worker, serve with worker)."""
        deadline = time.monotonic() + timeout
        if self.port is not None:
            self.wait_ready(timeout)
        if self.ready_log:
            self.wait_log(self.ready_log, max(1.0, deadline - time.monotonic()))
        return self

    def send_signal(self, sig: int) -> None:
        if self.alive:
            os.kill(self.pid, sig)

    def wait_exit(self, timeout: float) -> int:
        assert self.popen is not None
        try:
            code = self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} still running {timeout:g} s later:\n{self.tail()}") from None
        if self.ended_at is None:
            self.ended_at = time.monotonic()
        return code

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM (graceful stop); the exit code. Fails if the process does not exit within `timeout`."""
        self.send_signal(signal.SIGTERM)
        return self.wait_exit(timeout)

    def kill(self) -> int:
        """SIGKILL: a crash, nothing runs after it."""
        self.send_signal(signal.SIGKILL)
        return self.wait_exit(10)

    def stop(self) -> None:
        """Cleanup: SIGTERM, then SIGKILL if it lingers. Never fails."""
        if not self.alive:
            return
        self.send_signal(signal.SIGTERM)
        try:
            assert self.popen is not None
            self.popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.send_signal(signal.SIGKILL)
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover
                pass


# --- a deployment: database + fakes + processes ------------------------------------------------------------------------


class Deployment:
    """One database shared by every process this test starts, the fakes, and the operator's moves."""

    def __init__(self, tmp_path: Path, database_url: str, saleor: FakeSaleor, vtm: FakeVTMarketing,
                 **settings: object) -> None:
        self.tmp_path = tmp_path
        self.database_url = database_url
        self.saleor = saleor
        self.vtm = vtm
        self.api_key = "vtm-key-" + uuid.uuid4().hex[:12]
        # Processes run from a folder of their own: no `.env` of the repository is read.
        self.cwd = tmp_path / "run"
        self.cwd.mkdir(parents=True, exist_ok=True)
        self.log_dir = tmp_path / "logs"
        self.processes: list[AppProcess] = []
        self._counter = 0
        env = {k: v for k, v in os.environ.items()
               if k.upper() not in settings_env_names(field_names_too=True) and k != "TEST_DATABASE_URL"}
        env.update(
            PYTHONUNBUFFERED="1",
            APP_URL="http://127.0.0.1:8000",
            DATABASE_URL=database_url,
            DATA_DIR=str(tmp_path / "data"),
            SECRET_KEY="ops-secret-" + uuid.uuid4().hex,
            ALLOWED_SALEOR_API_URLS="http://127.0.0.1:*",
            ALLOW_PRIVATE_SALEOR_URLS="true",  # the fake Saleor listens on 127.0.0.1
            VTMARKETING_API_URL=vtm.api_url,
            LOG_FORMAT="json",
            LOG_LEVEL="INFO",
            DELIVERY_POLL_SECONDS="0.5",
            DELIVERY_LEASE_SECONDS="3",
            DELIVERY_RETRY_BASE_SECONDS="0.2",
            DELIVERY_RETRY_MAX_SECONDS="1",
            VTMARKETING_TIMEOUT_SECONDS="10",
            SALEOR_TIMEOUT_SECONDS="5",
            RECONCILE_INTERVAL="0",  # only webhooks bring orders here: counts stay exact
        )
        env.update({k.upper(): str(v) for k, v in settings.items()})
        self.env = env

    # processes ----------------------------------------------------------------------------------------------

    def _name(self, kind: str) -> str:
        self._counter += 1
        return f"{self._counter:02d}-{kind}"

    def spawn(self, kind: str, args: list[str], *, port: int | None = None, env: dict[str, str] | None = None) -> AppProcess:
        name = self._name(kind)
        process = AppProcess(name, cli_command(*args), {**self.env, **(env or {})}, self.cwd,
                             self.log_dir / f"{name}.log", port=port)
        self.processes.append(process)
        return process.start()

    def serve(self, *, worker: bool = True, env: dict[str, str] | None = None, wait: bool = True,
              ready_timeout: float = 90.0) -> AppProcess:
        """`serve` on a free port; with `wait`, returns once /readyz answers 200 (and its worker started)."""
        port = free_port()
        args = ["serve", "--host", "127.0.0.1", "--port", str(port), "--worker" if worker else "--no-worker"]
        process = self.spawn("serve" if worker else "web", args, port=port, env=env)
        process.ready_log = WORKER_STARTED if worker else None
        return process.wait_started(ready_timeout) if wait else process

    def worker(self, *, env: dict[str, str] | None = None, concurrency: int | None = None, wait: bool = True,
               ready_timeout: float = 90.0) -> AppProcess:
        """`worker`; with `wait`, returns once it logged that it started."""
        args = ["worker"] + (["--concurrency", str(concurrency)] if concurrency else [])
        process = self.spawn("worker", args, env=env)
        process.ready_log = WORKER_STARTED
        return process.wait_started(ready_timeout) if wait else process

    @staticmethod
    def wait_started(*processes: AppProcess, timeout: float = 90.0) -> None:
        """Wait for processes started with `wait=False` (they start side by side, which saves seconds)."""
        for process in processes:
            process.wait_started(timeout)

    def cli(self, *args: str, timeout: float = 120.0, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(cli_command(*args), env={**self.env, "COLUMNS": "200"}, cwd=self.cwd,
                                capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"`{' '.join(args)}` exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
        return result

    def close(self) -> None:
        for process in self.processes:
            process.stop()

    # the operator and Saleor ----------------------------------------------------------------------------------

    def install(self, web: AppProcess) -> None:
        response = httpx.post(f"{web.url}/api/register", content=self.saleor.register_body(),
                              headers=self.saleor.register_headers(), timeout=60)
        assert response.status_code == 200, response.text

    def set_channel_key(self, channel: str = DEFAULT_CHANNEL) -> None:
        self.cli("channels", "set", "--saleor-api-url", self.saleor.api_url, "--channel", channel,
                 "--api-key", self.api_key)

    def new_order(self, **overrides: Any) -> tuple[dict[str, Any], bytes, dict[str, str]]:
        """A confirmed order known to the fake Saleor, and its signed webhook (body, headers)."""
        order = self.saleor.add_order(self.saleor.make_order(**overrides))
        body = self.saleor.webhook_body(order, query=ORDER_CONFIRMED.query)
        return order, body, self.saleor.webhook_headers(body)

    def send_webhooks(self, webs: list[AppProcess], webhooks: list[tuple[dict, bytes, dict]], *,
                      threads: int = 8, timeout: float = 120.0) -> list[int]:
        """POST each webhook, alternating over `webs`, from a few threads (Saleor sends concurrently too).
        Returns the HTTP statuses in order; a refused or failed post is retried a few times like Saleor would."""

        local = threading.local()
        clients: list[httpx.Client] = []

        def post(index: int) -> int:
            if not hasattr(local, "client"):  # one keep-alive client per thread, as Saleor's workers hold connections
                local.client = httpx.Client(timeout=60)
                clients.append(local.client)
            _, body, headers = webhooks[index]
            url = f"{webs[index % len(webs)].url}{ORDER_CONFIRMED.path}"
            status = 0
            for _attempt in range(3):
                try:
                    status = local.client.post(url, content=body, headers=headers).status_code
                except httpx.HTTPError:
                    status = 0
                if status == 200:
                    break
                time.sleep(0.2)
            return status

        try:
            with ThreadPoolExecutor(max_workers=threads) as pool:
                futures = [pool.submit(post, i) for i in range(len(webhooks))]
                return [f.result(timeout=timeout) for f in futures]
        finally:
            for client in clients:
                client.close()

    # the database -------------------------------------------------------------------------------------------

    def deliveries(self) -> list[dict[str, Any]]:
        return run_sql(self.database_url, "SELECT id, order_number, status, claimed_by, attempt_count, reason "
                                          "FROM deliveries ORDER BY id")

    def status_counts(self) -> dict[str, int]:
        rows = run_sql(self.database_url, "SELECT status, COUNT(*) AS n FROM deliveries GROUP BY status")
        return {row["status"]: int(row["n"]) for row in rows}

    def wait_all_finished(self, expected: int, *, timeout: float) -> dict[str, int]:
        """Until `expected` deliveries exist and none is pending, retrying or delivering."""

        def done() -> dict[str, int] | None:
            counts = self.status_counts()
            open_ = sum(counts.get(s, 0) for s in ("pending", "retrying", "delivering"))
            return counts if sum(counts.values()) >= expected and open_ == 0 else None

        return wait_until(done, timeout=timeout, interval=0.2, what=f"{expected} deliveries finished")


def event_counts(vtm: FakeVTMarketing) -> dict[str, int]:
    """Events VTmarketing accepted, per order id (the order number with the default settings)."""
    counts: dict[str, int] = {}
    for event in vtm.events:
        counts[event.order_id] = counts.get(event.order_id, 0) + 1
    return counts


def assert_logs_clean(processes: Iterable[AppProcess], *secrets: str) -> None:
    """No log line names the customer (email, phone) or a secret (API key, app token)."""
    forbidden = [CUSTOMER_EMAIL, CUSTOMER_PHONE, *[s for s in secrets if s]]
    for process in processes:
        logs = process.logs()
        for word in forbidden:
            assert word not in logs, f"{process.name} logged {word!r}"


# --- real faults: a full disk, a wall clock that steps -------------------------------------------------------------


@contextmanager
def small_tmpfs(path: Path, size: str = "16m") -> Iterator[Path]:
    """A tmpfs of `size` mounted at `path` (tests run as root, as CI does): a disk that can really fill up."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"a small tmpfs is needed for a real full disk (run as root): {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill_disk(folder: Path) -> Path:
    """Fill the file system of `folder` to the last byte; returns the filler file (unlink it to free the space)."""
    filler = folder / "filler.bin"
    chunk = b"\0" * (64 * 1024)
    with open(filler, "wb", buffering=0) as out:
        for size in (len(chunk), 4096, 1):
            try:
                while True:
                    out.write(chunk[:size])
            except OSError:
                continue
    return filler


def _libfaketime() -> Path | None:
    """The multi-threaded build: the single-threaded one serialises the app's threads (aiosqlite, uvicorn) behind
    one lock and makes it several times slower."""
    for candidate in sorted(Path("/usr/lib").glob("*/faketime/libfaketimeMT.so.1")) + [Path("/usr/lib/faketime/libfaketimeMT.so.1")]:
        if candidate.exists():
            return candidate
    return None


class SteppableClock:
    """The wall clock of the processes started with `env`, moved by the test: libfaketime reads its offset from a
    file (re-read every second), so a running process sees a step. The monotonic clock is left alone, as a real
    wall-clock step (NTP, a VM resumed) leaves it."""

    def __init__(self, folder: Path, offset_seconds: float = 0.0) -> None:
        library = _libfaketime()
        if library is None:
            pytest.skip("libfaketime is needed to step the app's clock (Debian: apt-get install faketime)")
        self.library = library
        self.file = folder / "faketime-offset"
        folder.mkdir(parents=True, exist_ok=True)
        self.offset = 0.0
        self.set(offset_seconds)

    def set(self, offset_seconds: float) -> None:
        temporary = self.file.with_suffix(".tmp")
        temporary.write_text(f"{offset_seconds:+.0f}\n")
        os.replace(temporary, self.file)
        self.offset = offset_seconds

    @property
    def env(self) -> dict[str, str]:
        return {
            "LD_PRELOAD": str(self.library),
            "FAKETIME_TIMESTAMP_FILE": str(self.file),
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
            "FAKETIME_CACHE_DURATION": "1",
            # Its timed-wait "monotonic fix" (on by default with glibc) and its faking of file times slow the app's
            # threads down several times over; neither has to do with the wall clock the tests move.
            "FAKETIME_FORCE_MONOTONIC_FIX": "0",
            "NO_FAKE_STAT": "1",
        }

    def wait_seen_by(self, process: AppProcess, timeout: float = 20.0) -> None:
        """Until `process` (serving HTTP) shows the current offset in its answers' Date header."""
        from email.utils import parsedate_to_datetime

        def seen() -> bool:
            try:
                date = httpx.get(f"{process.url}/healthz", timeout=5).headers["date"]
            except (httpx.HTTPError, KeyError):
                return False
            skew = parsedate_to_datetime(date).timestamp() - time.time()
            return abs(skew - self.offset) < 3

        wait_until(seen, timeout=timeout, what=f"{process.name} on a clock {self.offset:+.0f} s off")
