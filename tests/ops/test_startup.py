"""The first hour of an operator, as real processes: a start that cannot work says why in one line naming the
variable, exit 2 (the traceback only at LOG_LEVEL=DEBUG); `serve` takes its port from PORT and says which manifest
URL to paste; the image's health check finds the port; every stderr line is JSON with LOG_FORMAT=json; the SQLite
files are the owner's only; `make run PORT=…` passes the port on."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import make_url

from tests.conftest import TEST_DATABASE_URL, asyncpg_url
from tests.fakes.server import free_port
from tests.ops.procs import (
    Deployment,
    cli_command,
    settings_env_names,
    sqlite_url,
    wait_until,
)

REPO = Path(__file__).resolve().parents[2]


def clean_env(tmp_path: Path, **values: str) -> dict[str, str]:
    """The test runner's environment without any of the app's settings (and no PORT), plus `values`."""
    env = {k: v for k, v in os.environ.items()
           if k.upper() not in settings_env_names(field_names_too=True) and k not in ("TEST_DATABASE_URL", "PORT")}
    env.update(PYTHONUNBUFFERED="1", DATA_DIR=str(tmp_path / "data"), SECRET_KEY="startup-" + uuid.uuid4().hex,
               ALLOWED_SALEOR_API_URLS="https://shop.example.com/graphql/", LOG_FORMAT="text", TMPDIR=str(tmp_path))
    env.update(values)
    return env


def start(tmp_path: Path, *args: str, **values: str) -> subprocess.CompletedProcess:
    """Run a command that is expected to stop at start (bounded: a start that hangs fails the test)."""
    cwd = tmp_path / "run"
    cwd.mkdir(exist_ok=True)
    return subprocess.run(cli_command(*args), env=clean_env(tmp_path, **values), cwd=cwd, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)


def fatal_message(line: str) -> str:
    """The message of the one line a failed start prints (text, or JSON where LOG_FORMAT asks for it)."""
    if line.startswith("{"):
        entry = json.loads(line)
        assert entry["level"] == "critical", entry
        return entry["message"]
    assert " CRITICAL saleor_app: " in line, line
    return line.split(" CRITICAL saleor_app: ", 1)[1]


def closed_port_url() -> str:
    return f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/vtm"  # nothing listens there


@pytest.fixture
def read_only_dir(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A read-only file system (tests run as root, who may write anywhere else): a 1 MiB tmpfs mounted `ro`."""
    mount = tmp_path / "ro"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(mount)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here: {result.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def a_file(tmp_path: Path) -> Path:
    path = tmp_path / "a-file"
    path.write_text("not a folder")
    return path


# Each case: the environment that cannot work, the variable the line must name, and what it must say.
START_FAILURES = {
    "unreachable database": (lambda tmp: {"DATABASE_URL": closed_port_url()},
                             "DATABASE_URL", "cannot reach PostgreSQL at 127.0.0.1:"),
    "SQLite file in a folder that cannot exist": (lambda tmp: {"DATABASE_URL": f"sqlite:///{a_file(tmp)}/app.db"},
                                                  "DATABASE_URL", "cannot open the SQLite database"),
    "DATA_DIR under a file": (lambda tmp: {"DATA_DIR": str(a_file(tmp) / "data")}, "DATA_DIR", "Not a directory"),
    "DATA_DIR empty": (lambda tmp: {"DATA_DIR": ""}, "DATA_DIR", "is empty"),
    "LOG_FORMAT unknown": (lambda tmp: {"LOG_FORMAT": "logfmt"}, "LOG_FORMAT", "must be one of auto, json, text"),
    "MAX_WEBHOOK_BODY_BYTES zero": (lambda tmp: {"MAX_WEBHOOK_BODY_BYTES": "0"}, "MAX_WEBHOOK_BODY_BYTES", "greater than 0"),
    "MAX_WEBHOOK_BODY_BYTES negative": (lambda tmp: {"MAX_WEBHOOK_BODY_BYTES": "-1"}, "MAX_WEBHOOK_BODY_BYTES",
                                        "greater than 0"),
    "allow-list without scheme": (lambda tmp: {"ALLOWED_SALEOR_API_URLS": "shop.example.com/graphql/"},
                                  "ALLOWED_SALEOR_API_URLS", "not an absolute http(s) URL"),
    "allow-list separated by spaces": (lambda tmp: {"ALLOWED_SALEOR_API_URLS": "https://a.example/graphql/ https://b.example/graphql/"},
                                       "ALLOWED_SALEOR_API_URLS", "commas, not spaces"),
    "allow-list separated by semicolons": (lambda tmp: {"ALLOWED_SALEOR_API_URLS": "https://a.example/graphql/;https://b.example/graphql/"},
                                           "ALLOWED_SALEOR_API_URLS", "commas, not spaces or semicolons"),
    "allow-list quoted": (lambda tmp: {"ALLOWED_SALEOR_API_URLS": '"https://shop.example.com/graphql/"'},
                          "ALLOWED_SALEOR_API_URLS", "remove the quotes"),
}


@pytest.mark.parametrize("case", list(START_FAILURES))
def test_a_start_that_cannot_work_is_one_line_naming_the_variable_and_exit_2(tmp_path: Path, case: str) -> None:
    values, variable, says = START_FAILURES[case]
    result = start(tmp_path, "serve", "--port", str(free_port()), **values(tmp_path))
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    message = fatal_message(lines[0])
    assert message.startswith(f"{variable}: ") and says in message, message
    assert result.stdout == ""


def test_a_missing_postgresql_database_is_one_line(tmp_path: Path) -> None:
    if not TEST_DATABASE_URL:
        pytest.skip("PostgreSQL test: set TEST_DATABASE_URL (CI does)")
    missing = make_url(asyncpg_url(TEST_DATABASE_URL)).set(database=f"vtm_missing_{uuid.uuid4().hex[:8]}")
    result = start(tmp_path, "serve", DATABASE_URL=missing.render_as_string(hide_password=False))
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.splitlines()
    assert f"DATABASE_URL: the database '{missing.database}' does not exist" in line and "createdb" in line


def test_an_unwritable_data_dir_is_one_line(tmp_path: Path, read_only_dir: Path) -> None:
    result = start(tmp_path, "migrate", DATA_DIR=str(read_only_dir / "data"))
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.splitlines()
    assert f"DATA_DIR: cannot write to {read_only_dir / 'data'} (Read-only file system)" in line


def test_a_read_only_data_dir_that_exists_is_one_line(tmp_path: Path, read_only_dir: Path) -> None:
    result = start(tmp_path, "serve", DATA_DIR=str(read_only_dir))
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.splitlines()
    assert f"DATA_DIR: cannot write to {read_only_dir} (Read-only file system)" in line


@pytest.mark.parametrize("command", [["migrate"], ["worker"], ["channels", "list"]])
def test_every_command_stops_the_same_way(tmp_path: Path, command: list[str]) -> None:
    result = start(tmp_path, *command, DATABASE_URL=closed_port_url())
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.splitlines()
    assert "DATABASE_URL: cannot reach PostgreSQL" in line and "Traceback" not in result.stderr


def test_the_traceback_only_at_debug(tmp_path: Path) -> None:
    result = start(tmp_path, "serve", DATABASE_URL=closed_port_url(), LOG_LEVEL="DEBUG")
    assert result.returncode == 2
    assert "DATABASE_URL: cannot reach PostgreSQL" in result.stderr
    assert "Traceback" in result.stderr and "ConnectionRefusedError" in result.stderr


def test_with_json_logs_the_line_is_json(tmp_path: Path) -> None:
    result = start(tmp_path, "serve", DATABASE_URL=closed_port_url(), LOG_FORMAT="json")
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    entry = json.loads(line)
    assert entry["level"] == "critical" and entry["message"].startswith("DATABASE_URL: cannot reach PostgreSQL")
    # LOG_FORMAT itself wrong: the line still comes, in the `auto` format (the one asked for does not exist).
    bad = start(tmp_path, "serve", LOG_FORMAT="jsonl")
    assert bad.returncode == 2 and "LOG_FORMAT: must be one of" in bad.stderr


# --- the port, the manifest URL, the health check -------------------------------------------------------------------


def test_serve_takes_its_port_from_port_and_app_url_follows(tmp_path: Path, fake_saleor, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    d = Deployment(tmp_path, sqlite_url(tmp_path), fake_saleor, fake_vtm)
    del d.env["APP_URL"]
    port = free_port()
    try:
        serve = d.spawn("serve", ["serve", "--host", "127.0.0.1"], port=port, env={"PORT": str(port)})
        serve.wait_ready()
        manifest = httpx.get(f"{serve.url}/api/manifest", timeout=30).json()
        assert manifest["appUrl"] == f"http://localhost:{port}/app"
        # At start, the line an operator needs: the manifest URL to paste into the dashboard.
        serve.wait_log(f"manifest URL http://localhost:{port}/api/manifest into the Saleor dashboard")
        assert "APP_URL is not set" in serve.logs()
        assert serve.terminate() == 0

        # --port wins over PORT, and APP_URL (when given) over both.
        other = free_port()
        given = d.spawn("serve", ["serve", "--host", "127.0.0.1", "--port", str(other)], port=other,
                        env={"PORT": str(port), "APP_URL": "https://vtm.example.com"})
        given.wait_ready()
        assert httpx.get(f"{given.url}/api/manifest", timeout=30).json()["appUrl"] == "https://vtm.example.com/app"
        given.wait_log("manifest URL https://vtm.example.com/api/manifest")
        assert "APP_URL is not set" not in given.logs()
    finally:
        d.close()


def test_make_run_passes_port_on() -> None:
    for args, env in ((["PORT=8080"], {}), ([], {"PORT": "9090"})):
        # Run from inside `make test`, the outer make's variables would make this one print "Entering directory"
        # lines and pass its own flags on: the dry run must see only what a person typing it would.
        outer_make = {"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES"}
        clean_env = {k: v for k, v in os.environ.items() if k not in outer_make and k != "PORT"}
        result = subprocess.run(["make", "--no-print-directory", "-n", "run", *args], cwd=REPO, capture_output=True,
                                text=True, timeout=60, env={**clean_env, **env})
        assert result.returncode == 0, result.stderr
        port = args[0].split("=")[1] if args else env["PORT"]
        assert f"saleor-vtmarketing serve --port {port}" in result.stdout.splitlines()[-1]


def test_the_health_check_finds_the_port_serve_and_workers_listen_on(tmp_path: Path, fake_saleor, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    d = Deployment(tmp_path, sqlite_url(tmp_path), fake_saleor, fake_vtm, TMPDIR=str(tmp_path), PORT=str(free_port()))

    def healthcheck() -> subprocess.CompletedProcess:
        return d.cli("healthcheck", check=False)

    try:
        serve = d.serve(worker=False)  # on a port of its own, not 8000 (the image's EXPOSE)
        result = healthcheck()
        assert result.returncode == 0 and f"http://127.0.0.1:{serve.port}/healthz" in result.stdout, result
        assert serve.terminate() == 0
        assert healthcheck().returncode == 1  # nothing listens any more (not on PORT either)

        port = free_port()
        worker = d.spawn("worker", ["worker", "--host", "127.0.0.1", "--http-port", str(port)], port=port)
        wait_until(lambda: healthcheck().returncode == 0, timeout=90, what="the worker's /healthz")
        assert worker.terminate() == 0
        assert healthcheck().returncode == 1
    finally:
        d.close()


# --- logs and files -------------------------------------------------------------------------------------------------


def test_with_log_format_json_every_line_of_serve_is_json(tmp_path: Path, fake_saleor, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    d = Deployment(tmp_path, sqlite_url(tmp_path), fake_saleor, fake_vtm)
    try:
        # No SECRET_KEY: the generated-key warning is one of the lines; stderr and stdout go to the same log.
        serve = d.serve(env={"SECRET_KEY": "", "ALLOWED_SALEOR_API_URLS": ""})
        d.install(serve)
        refused = httpx.post(f"{serve.url}/api/register", content=b"{}", headers={"Saleor-Api-Url": "nonsense"}, timeout=30)
        assert refused.status_code == 400
        assert serve.terminate() == 0
        lines = [line for line in serve.logs().splitlines() if line.strip()]
        assert lines and not serve.non_json_lines(), serve.non_json_lines()[:5]
        messages = [entry["message"] for entry in serve.json_lines()]
        assert any(m.startswith("SECRET_KEY is not set: generated one") for m in messages)
        assert any(m.startswith("ALLOWED_SALEOR_API_URLS is not set") for m in messages)
        assert any(m.startswith("Uvicorn running on") for m in messages)  # uvicorn's own lines too
        assert any(m.startswith("register refused for nonsense: 400") for m in messages)
        assert not [m for m in messages if "setup plugin" in m]  # no alembic noise
    finally:
        d.close()


def test_the_sqlite_files_are_the_owners_only(tmp_path: Path, fake_saleor, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    d = Deployment(tmp_path, "", fake_saleor, fake_vtm)  # DATABASE_URL unset: the default file in DATA_DIR
    d.database_url = sqlite_url(tmp_path)
    try:
        serve = d.serve()
        d.install(serve)
        d.set_channel_key()
        assert set(d.send_webhooks([serve], [d.new_order()])) == {200}
        d.wait_all_finished(1, timeout=90)
        data = tmp_path / "data"
        files = {p.name: stat.S_IMODE(p.stat().st_mode) for p in data.iterdir()}
        # While serve runs, SQLite's -wal and -shm files exist beside the database: the same mode for all.
        assert {"saleor-vtmarketing.db", "saleor-vtmarketing.db-wal", "saleor-vtmarketing.db-shm"} <= set(files), files
        assert {name: mode for name, mode in files.items() if mode != 0o600} == {}, {k: oct(v) for k, v in files.items()}
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
    finally:
        d.close()
