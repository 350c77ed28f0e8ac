"""What a process checks before it serves or works: its data folder and its database. A failure becomes a
ConfigError whose one line names the variable to fix and the cause (the CLI prints it and exits 2), instead of a
driver's traceback of 70 to 500 lines."""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Iterator

from sqlalchemy.engine import make_url

from saleor_app.config import ConfigError, Settings
from saleor_app.storage.db import Database

# PostgreSQL's SQLSTATEs for "that database does not exist" and "that login is refused".
_MISSING_DATABASE = "3D000"
_LOGIN_REFUSED = {"28000", "28P01"}


class StartupError(ConfigError):
    """A ConfigError found by trying (a folder that cannot be written, a database that cannot be reached); `cause`
    keeps the original exception for LOG_LEVEL=DEBUG."""

    def __init__(self, problem: str, cause: BaseException | None = None) -> None:
        super().__init__(problem)
        self.cause = cause


def uses_data_dir(settings: Settings) -> bool:
    """DATA_DIR holds the default SQLite file and, without SECRET_KEY, the generated key."""
    return not settings.database_url or not settings.secret_key


def check_data_dir(settings: Settings) -> None:
    """DATA_DIR exists (created owner-only when missing) and this process may create files in it."""
    if not uses_data_dir(settings):
        return
    folder = settings.data_dir
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise StartupError(f"DATA_DIR: cannot write to {folder} ({_os_reason(exc)}); "
                           "give the app a folder it can write (a volume on /data in the image)", exc) from exc


def load_secret_key(settings: Settings) -> str:
    """SECRET_KEY, or the key kept in (or generated into) DATA_DIR, with a readable error if that file fails."""
    try:
        return settings.effective_secret_key()
    except OSError as exc:
        key_file = settings.data_dir / "secret.key"
        raise StartupError(f"DATA_DIR: cannot read or write {key_file} ({_os_reason(exc)})", exc) from exc


def open_database(settings: Settings) -> Database:
    """The process's Database; its SQLite file is created here (owner-only) if missing."""
    try:
        return Database(settings.resolved_database_url)
    except OSError as exc:
        raise StartupError(database_start_failure(exc, settings), exc) from exc


async def prepare_database(db: Database, settings: Settings) -> None:
    """Connect and bring the schema to the newest migration, or fail with one line saying what to fix."""
    try:
        await db.migrate()
    except Exception as exc:  # every driver and every way a database can be missing: translated, cause kept
        raise StartupError(database_start_failure(exc, settings), exc) from exc


async def check_database(settings: Settings) -> None:
    """`prepare_database` on a Database of its own (serve checks before it starts the web server)."""
    db = open_database(settings)
    try:
        await prepare_database(db, settings)
    finally:
        await db.dispose()


def database_start_failure(exc: BaseException, settings: Settings) -> str:
    """One line: the variable to fix (DATA_DIR when the SQLite file is its default one) and the cause."""
    url = settings.resolved_database_url
    variable = "DATABASE_URL" if settings.database_url else "DATA_DIR"
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[1] if ":///" in url else url
        reason = next((str(e) for e in _chain(exc) if isinstance(e, sqlite3.Error)), None)
        os_error = next((e for e in _chain(exc) if isinstance(e, OSError)), None)
        cause = reason or (_os_reason(os_error) if os_error else type(exc).__name__)
        return f"{variable}: cannot open the SQLite database {path} ({cause})"
    parsed = make_url(url)
    where = f"{parsed.host or 'localhost'}:{parsed.port or 5432}"
    for error in _chain(exc):
        state = getattr(error, "sqlstate", None)
        if state == _MISSING_DATABASE:
            return (f"DATABASE_URL: the database {parsed.database!r} does not exist on {where}; create it "
                    f"(createdb {parsed.database}) or point DATABASE_URL at an existing one")
        if state in _LOGIN_REFUSED:
            return f"DATABASE_URL: PostgreSQL at {where} refused the login of user {parsed.username!r} ({_first_line(error)})"
    os_error = next((e for e in _chain(exc) if isinstance(e, OSError)), None)
    if os_error is not None:
        return f"DATABASE_URL: cannot reach PostgreSQL at {where} ({_os_reason(os_error)}); is it running, and is the host right?"
    return f"DATABASE_URL: the database at {where} could not be prepared ({type(exc).__name__}: {_first_line(exc)})"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc`, what it wraps (SQLAlchemy's `.orig`) and what caused it, each once."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        error = todo.pop(0)
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        yield error
        todo.extend([getattr(error, "orig", None), error.__cause__, error.__context__])


def _os_reason(exc: OSError) -> str:
    """`Connection refused`, `Read-only file system`, `Name or service not known`, `timed out`."""
    if isinstance(exc, TimeoutError) and not exc.errno:
        return "timed out"
    if exc.errno and exc.errno > 0:
        return os.strerror(exc.errno)
    return exc.strerror or str(exc) or type(exc).__name__


def _first_line(exc: BaseException) -> str:
    # The driver's own sentence, without SQLAlchemy's "(Background on this error at: …)" lines.
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

