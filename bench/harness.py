"""Processes and plumbing for the benchmark: the fakes helper, the app under test (`saleor-vtmarketing serve`),
the bare and synchronous baselines, and setting an installation up. Every wait here is bounded in time."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / "bench"
BIN_DIR = Path(sys.executable).parent
CHANNEL = "default-channel"
API_KEY = "bench-vtm-key-0001"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def app_env_names() -> set[str]:
    """Every environment variable the app's Settings read: the bench's own environment must not leak in."""
    from saleor_app.config import Settings

    return {(f.alias or name).upper() for name, f in Settings.model_fields.items()}


def cli_command(*args: str) -> list[str]:
    cli = BIN_DIR / "saleor-vtmarketing"
    return [str(cli), *args] if cli.exists() else [sys.executable, "-m", "saleor_app.cli", *args]


# --- the fakes helper process ------------------------------------------------------------------------------------


class Fakes:
    """bench/fakes_server.py as a child process, driven through its control API."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.popen: subprocess.Popen | None = None
        self.info: dict[str, Any] = {}
        self.http = httpx.Client(timeout=120.0)

    def start(self, timeout: float = 60.0) -> "Fakes":
        log = open(self.log_path, "ab")
        self.popen = subprocess.Popen(
            [sys.executable, str(BENCH_DIR / "fakes_server.py")], cwd=ROOT, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=log, start_new_session=True,
        )
        log.close()
        line = _readline_bounded(self.popen, timeout)
        if not line:
            raise RuntimeError(f"fakes helper did not start; see {self.log_path}")
        urls = json.loads(line)
        self.control = urls["control_url"]
        self.info = self.http.get(f"{self.control}/info").json()
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def orders(self, n: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while len(out) < n:  # in chunks: keeps each answer small
            chunk = min(2000, n - len(out))
            out += self.http.post(f"{self.control}/orders", json={"n": chunk}).json()["orders"]
        return out

    def vtm(self, **state: Any) -> dict[str, Any]:
        return self.http.post(f"{self.control}/vtm", json=state).json()

    def events(self, since: int = 0) -> list[list]:
        return self.http.get(f"{self.control}/vtm/events", params={"since": since}).json()["events"]

    def catalogue(self, variants: int) -> dict[str, Any]:
        """Replace the fake Saleor's catalogue with `variants` generated variants (4 per product)."""
        return self.http.post(f"{self.control}/catalogue", json={"variants": variants}, timeout=600).json()

    def stats(self) -> dict[str, int]:
        return self.http.get(f"{self.control}/stats").json()

    def clear(self) -> None:
        self.http.post(f"{self.control}/clear")

    def wait_events(self, count: int, timeout: float, *, interval: float = 0.25) -> int:
        """Until VTmarketing accepted at least `count` events (since the last clear); the count reached."""
        deadline = time.monotonic() + timeout
        while True:
            seen = self.stats()["vtm_events"]
            if seen >= count or time.monotonic() >= deadline:
                return seen
            time.sleep(interval)

    def stop(self) -> None:
        self.http.close()
        if self.popen is None or self.popen.poll() is not None:
            return
        try:
            assert self.popen.stdin is not None
            self.popen.stdin.close()  # the helper stops when its stdin closes
        except OSError:
            pass
        try:
            self.popen.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)


def _readline_bounded(popen: subprocess.Popen, timeout: float) -> str:
    import selectors

    assert popen.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(popen.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if popen.poll() is not None:
            return ""
        if sel.select(timeout=0.2):
            return popen.stdout.readline().decode()
    return ""


# --- a server process under test ------------------------------------------------------------------------------------


@dataclass
class Server:
    """One HTTP server process (the app, the bare endpoint or the sync forwarder) on 127.0.0.1:port."""

    name: str
    args: list[str]
    env: dict[str, str]
    cwd: Path
    log_path: Path
    port: int
    popen: subprocess.Popen | None = None
    spawned_at: float = 0.0
    startup_seconds: float = float("nan")  # spawn → first 200 on GET ready_path
    rss_samples: list[int] = field(default_factory=list)
    ready_path: str = "/api/manifest"  # a `worker --http-port` serves only /healthz, /readyz and /metrics

    def start(self, timeout: float = 60.0) -> "Server":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.spawned_at = time.perf_counter()
        self.popen = subprocess.Popen(self.args, env=self.env, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0) as client:
            while True:
                if self.popen.poll() is not None:
                    raise RuntimeError(f"{self.name} exited ({self.popen.returncode}):\n{self.tail()}")
                try:
                    if client.get(f"{self.url}{self.ready_path}").status_code == 200:
                        self.startup_seconds = time.perf_counter() - self.spawned_at
                        return self
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"{self.name} did not serve {self.ready_path} within {timeout:g} s:\n{self.tail()}")
                time.sleep(0.01)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def rss(self) -> int:
        import psutil

        value = psutil.Process(self.pid).memory_info().rss
        self.rss_samples.append(value)
        return value

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM (graceful), SIGKILL if it lingers; only this process, by its id."""
        if self.popen is None or self.popen.poll() is not None:
            return
        os.kill(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.kill(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)


class Workspace:
    """A temporary folder per bench run: databases, logs, and the environment processes get."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.servers: list[Server] = []
        self.secret_key = "bench-secret-" + uuid.uuid4().hex
        names = app_env_names()
        self.base_env = {k: v for k, v in os.environ.items() if k.upper() not in names and k != "TEST_DATABASE_URL"}
        self.base_env["PYTHONUNBUFFERED"] = "1"
        self._count = 0

    def _next(self, kind: str) -> str:
        self._count += 1
        return f"{self._count:02d}-{kind}"

    def app_settings(self, name: str, database_url: str | None, vtm_api_url: str, **extra: str) -> dict[str, str]:
        """The app's environment for a scenario: its own data dir (a fresh SQLite file unless database_url)."""
        data_dir = self.root / name / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        env = {
            "APP_URL": "http://127.0.0.1:8000",
            "DATA_DIR": str(data_dir),
            "DATABASE_URL": database_url or f"sqlite+aiosqlite:///{data_dir / 'saleor-vtmarketing.db'}",
            "SECRET_KEY": self.secret_key,
            "ALLOWED_SALEOR_API_URLS": "http://127.0.0.1:*",
            "ALLOW_PRIVATE_SALEOR_URLS": "true",  # the fake Saleor listens on 127.0.0.1
            "VTMARKETING_API_URL": vtm_api_url,
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "INFO",
            # Reconciliation asks Saleor for recent orders (the first pass at start): off, so only webhooks bring
            # orders and every figure counts the same orders.
            "RECONCILE_INTERVAL": "0",
        }
        env.update(extra)
        return env

    def serve(self, name: str, settings: dict[str, str], *, worker: bool = True) -> Server:
        port = free_port()
        args = cli_command("serve", "--host", "127.0.0.1", "--port", str(port), "--worker" if worker else "--no-worker")
        return self._start(name, args, {**self.base_env, **settings}, port)

    def worker(self, name: str, settings: dict[str, str]) -> Server:
        """`saleor-vtmarketing worker` alone (PostgreSQL scale-out), with its health port to know it started."""
        port = free_port()
        args = cli_command("worker", "--host", "127.0.0.1", "--http-port", str(port))
        return self._start(name, args, {**self.base_env, **settings}, port, ready_path="/healthz")

    def script(self, name: str, script: str, env: dict[str, str] | None = None) -> Server:
        port = free_port()
        args = [sys.executable, str(BENCH_DIR / script), "--host", "127.0.0.1", "--port", str(port)]
        return self._start(name, args, {**self.base_env, **(env or {})}, port)

    def _start(self, name: str, args: list[str], env: dict[str, str], port: int, *,
               ready_path: str = "/api/manifest") -> Server:
        full = self._next(name)
        cwd = self.root / full
        cwd.mkdir(parents=True, exist_ok=True)  # its own folder: no `.env` of the repository is read
        server = Server(full, args, env, cwd, self.root / "logs" / f"{full}.log", port, ready_path=ready_path)
        self.servers.append(server)
        return server.start()

    def close(self) -> None:
        for server in self.servers:
            try:
                server.stop()
            except Exception:  # noqa: BLE001 - cleanup must go on
                pass


# --- the app's side of an installation ---------------------------------------------------------------------------


def settings_from(env: dict[str, str]):  # type: ignore[no-untyped-def]
    """The app's Settings for an environment dict (explicit values: the bench's own env is not read for them)."""
    from saleor_app.config import Settings

    return Settings(
        app_url=env["APP_URL"], database_url=env["DATABASE_URL"], data_dir=Path(env["DATA_DIR"]),
        secret_key=env["SECRET_KEY"], allowed_saleor_api_urls=env["ALLOWED_SALEOR_API_URLS"],
        vtmarketing_api_url=env["VTMARKETING_API_URL"], log_format="text", log_level="WARNING",
        allow_private_saleor_urls=env.get("ALLOW_PRIVATE_SALEOR_URLS", "false") == "true",
    )


def register_over_http(server: Server, fakes: Fakes) -> None:
    """Saleor's install handshake against the running app."""
    response = httpx.post(f"{server.url}/api/register", content=fakes.info["register_body"].encode(),
                          headers=fakes.info["register_headers"], timeout=30)
    if response.status_code != 200:
        raise RuntimeError(f"register failed: {response.status_code} {response.text}")


def configure_channel(env: dict[str, str], fakes: Fakes) -> None:
    """Give the default channel a VTmarketing key, in-process on the app's database (as `channels set` does)."""

    async def run() -> None:
        from saleor_app.context import AppContext
        from saleor_app.settings.service import ChannelSettingsService

        ctx = AppContext.create(settings_from(env))
        try:
            service = ChannelSettingsService(ctx)
            installation = await service.installation(fakes.info["saleor_api_url"])
            await service.update(installation.id, CHANNEL, api_key=API_KEY, enabled=True)
        finally:
            await ctx.aclose()

    asyncio.run(run())


FEED_TEMPLATE = "https://shop.example.com/products/{product_slug}?variant={variant_id}"


def configure_feed(env: dict[str, str], fakes: Fakes) -> str:
    """Turn the default channel's product feed on (as `channels set --feed …` does); returns its URL."""

    async def run() -> str:
        from saleor_app.context import AppContext
        from saleor_app.feed.service import FeedService
        from saleor_app.settings.service import ChannelSettingsService

        ctx = AppContext.create(settings_from(env))
        try:
            installation = await ChannelSettingsService(ctx).installation(fakes.info["saleor_api_url"])
            view = await FeedService(ctx).update(installation, CHANNEL, enabled=True, product_url_template=FEED_TEMPLATE,
                                                 color_attribute="color", brand_attribute="brand")
            return view.url or ""
        finally:
            await ctx.aclose()

    return asyncio.run(run())


def feed_state(env: dict[str, str]) -> dict[str, Any]:
    """The default channel's feed row: build time, rows, last error, when it was built."""

    async def run() -> dict[str, Any]:
        from sqlalchemy import select

        from saleor_app.context import AppContext
        from saleor_app.storage.models import Feed

        ctx = AppContext.create(settings_from(env))
        try:
            async with ctx.db.session() as session:
                feed = await session.scalar(select(Feed).where(Feed.channel_slug == CHANNEL))
                if feed is None:
                    return {}
                return {"built_at": feed.last_built_at, "seconds": feed.last_build_seconds, "rows": feed.rows,
                        "error": feed.last_error, "building": feed.build_claimed_by is not None}
        finally:
            await ctx.aclose()

    return asyncio.run(run())


def prefill_queue(env: dict[str, str], fakes: Fakes, orders: list[dict[str, Any]]) -> float:
    """Install, configure and store `orders` through the app's own intake (`ctx.intake`), in-process,
    with no server running: the backlog a worker finds at start. Returns the seconds it took."""

    async def run() -> float:
        from saleor_app.context import AppContext
        from saleor_app.settings.service import ChannelSettingsService

        ctx = AppContext.create(settings_from(env))
        try:
            await ctx.db.migrate()
            headers = {k.lower(): v for k, v in fakes.info["register_headers"].items()}
            token = json.loads(fakes.info["register_body"])["auth_token"]
            installation = await ctx.installations.register(headers, token)
            await ChannelSettingsService(ctx).update(installation.id, CHANNEL, api_key=API_KEY, enabled=True)
            started = time.perf_counter()
            for order in orders:
                await ctx.intake.receive_order_confirmed(installation, order["body"].encode("ascii"))
            return time.perf_counter() - started
        finally:
            await ctx.aclose()

    return asyncio.run(run())


async def reset_postgres(url: str) -> None:
    """A fresh `public` schema (DROP SCHEMA public CASCADE; CREATE SCHEMA public)."""
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        await conn.execute("DROP SCHEMA IF EXISTS public CASCADE")
        await conn.execute("CREATE SCHEMA public")
    finally:
        await conn.close()


async def ensure_database(url: str) -> None:
    """Create the database of `url` if it does not exist (connecting to the server's `postgres` database)."""
    import asyncpg
    from urllib.parse import urlsplit, urlunsplit

    dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)
    parts = urlsplit(dsn)
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(path="/postgres"))
    conn = await asyncpg.connect(admin)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
