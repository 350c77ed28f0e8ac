"""What every command shares: the console, settings checked at start, and running a job with an AppContext.

A process that cannot start says why in one line that names the variable to fix, and exits 2; the traceback
behind it only with LOG_LEVEL=DEBUG. Those lines are log records, so with LOG_FORMAT=json they are JSON too.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING, Awaitable, Callable, NoReturn, TypeVar

import typer
from rich.console import Console

from saleor_app.config import LOG_FORMATS, ConfigError, Settings, load_settings
from saleor_app.logs import configure_logging
from saleor_app.storage.lock import DatabaseInUse, SingleProcessLock, sqlite_file_of

if TYPE_CHECKING:
    from saleor_app.context import AppContext
    from saleor_app.storage.models import Installation

console = Console()
log = logging.getLogger("saleor_app")
T = TypeVar("T")

EXIT_START_FAILED = 2


def _raw_setting(name: str) -> str:
    """A variable as given (environment, else `.env`), for logging before the settings are known to be valid."""
    if name in os.environ:
        return os.environ[name]
    try:
        from dotenv import dotenv_values

        return dotenv_values(".env").get(name) or ""
    except Exception:  # an unreadable .env is reported by the settings themselves
        return ""


def _configure_fallback_logging() -> None:
    """Logging as LOG_LEVEL / LOG_FORMAT ask, where they are valid, when the settings as a whole are not."""
    level = _raw_setting("LOG_LEVEL").strip().upper()
    fmt = _raw_setting("LOG_FORMAT").strip().lower()
    configure_logging(level if level in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"} else "INFO",
                      fmt if fmt in LOG_FORMATS else "auto")


def exit_start_failed(error: ConfigError) -> NoReturn:
    """Report a start-up failure (one log line per problem, the traceback at DEBUG only) and exit 2."""
    cause = getattr(error, "cause", None)
    debug = logging.getLogger().isEnabledFor(logging.DEBUG)
    for problem in error.problems:
        log.critical(problem, exc_info=cause if debug and cause is not None else None)
    raise typer.Exit(EXIT_START_FAILED)


# The single-process lock of a SQLite database, held by `serve` and `worker` for the life of the process.
_database_lock: SingleProcessLock | None = None


def load_checked_settings(*, lock_database: bool = False) -> Settings:
    """The settings, checked: values, the data folder, the secret key. Exits 2 with one line per problem.
    `lock_database` (`serve`, `worker`): on SQLite, take the database's single-process lock before anything touches
    the database; exit 2 if another process holds it."""
    from saleor_app.startup import check_data_dir, load_secret_key

    try:
        settings = load_settings()
    except ConfigError as exc:
        _configure_fallback_logging()
        exit_start_failed(exc)
    # Logging first: the warnings below (a generated key, an open allow-list) must come out in LOG_FORMAT.
    configure_logging(settings.log_level, settings.log_format)
    try:
        check_data_dir(settings)
        load_secret_key(settings)
    except ConfigError as exc:
        exit_start_failed(exc)
    if lock_database:
        _lock_sqlite_database(settings)
    if not settings.allowed_url_patterns:
        log.warning(
            "ALLOWED_SALEOR_API_URLS is not set: ANY Saleor can install this app. "
            "Set it to your Saleor API URL(s), e.g. https://shop.example.com/graphql/"
        )
    return settings


def check_database_or_exit(settings: Settings) -> None:
    """Connect to the database and migrate it now, so that a wrong DATABASE_URL is one line and exit 2."""
    from saleor_app.startup import check_database

    try:
        asyncio.run(check_database(settings))
    except ConfigError as exc:
        exit_start_failed(exc)


def _lock_sqlite_database(settings: Settings) -> None:
    global _database_lock
    database_file = sqlite_file_of(settings.resolved_database_url)
    if database_file is None:
        return
    from saleor_app.startup import database_start_failure

    lock = SingleProcessLock(database_file)
    try:
        lock.acquire()
    except DatabaseInUse as exc:
        exit_start_failed(ConfigError(str(exc)))  # one line (JSON with LOG_FORMAT=json); nothing else has run
    except OSError as exc:  # the lock file's folder cannot be made: the database's cannot either
        exit_start_failed(ConfigError(database_start_failure(exc, settings)))
    _database_lock = lock


def run_with_context(settings: Settings, job: Callable[..., Awaitable[T]], *, migrate: bool = True) -> T:
    """Run `job(ctx)` in a fresh event loop; the database is reached (and migrated) first, or the process exits 2.
    A CommandError or an AppError (a refused value, an unknown delivery) is printed in red: exit 1; so is what goes
    wrong outside the job's own handling (an unreadable secret, the database failing): one line, never a traceback."""
    from sqlalchemy.exc import SQLAlchemyError

    from saleor_app.context import AppContext
    from saleor_app.errors import AppError
    from saleor_app.secrets import NO_KEY_READS_IT, SecretUnreadable
    from saleor_app.startup import StartupError, database_start_failure, prepare_database
    from saleor_app.storage.db import DatabaseFileGone, describe_database_error

    async def main() -> T:
        try:
            ctx = AppContext.create(settings)
        except OSError as exc:  # the SQLite file's folder cannot be made
            raise StartupError(database_start_failure(exc, settings), exc) from exc
        try:
            if migrate:
                await prepare_database(ctx.db, settings)
            return await job(ctx)
        finally:
            await ctx.aclose()

    try:
        return asyncio.run(main())
    except StartupError as exc:
        exit_start_failed(exc)
    except CommandError as exc:
        fail(str(exc))
    except AppError as exc:
        fail(exc.message)
    except SecretUnreadable:
        # Commands that meant to say which secret catch it themselves; this is the one line for any other.
        fail(f"A stored secret {NO_KEY_READS_IT}: reinstall the app in Saleor for a Saleor token, save the API key "
             "again for a channel's key, or put the old key into SECRET_KEY_FALLBACKS.")
    except (SQLAlchemyError, DatabaseFileGone) as exc:
        fail(f"The database failed: {describe_database_error(exc)}")
    except OSError as exc:  # e.g. PostgreSQL refusing the connection
        fail(describe_database_error(exc))


class CommandError(Exception):
    """What an operator must do differently; printed in red, exit 1."""


def fail(message: str, code: int = 1) -> NoReturn:
    console.print(f"[red]{message}[/red]", highlight=False)
    raise typer.Exit(code)


async def installation_by_url(ctx: "AppContext", saleor_api_url: str) -> "Installation":
    """The active installation of `saleor_api_url`, or a CommandError saying what to do (install the app, install it
    again, or use one of the URLs that are installed)."""
    from saleor_app.saleor.manifest import manifest_url
    from saleor_app.storage.repositories import InstallationRepository

    async with ctx.db.session() as session:
        repository = InstallationRepository(session)
        installation = await repository.by_api_url(saleor_api_url)
        if installation is None and not saleor_api_url.endswith("/"):
            installation = await repository.by_api_url(saleor_api_url + "/")
        if installation is None and saleor_api_url.endswith("/"):
            installation = await repository.by_api_url(saleor_api_url.rstrip("/"))
        known = await repository.list() if installation is None else []
    how_to_install = (f"install the app from that Saleor's dashboard with the manifest URL "
                      f"{manifest_url(ctx.settings.app_url)} (Extensions → Add Extension → Install from manifest; "
                      f"before 3.22: Apps → Install external app)")
    if installation is None:
        installed = ", ".join(i.saleor_api_url for i in known if i.is_active)
        raise CommandError(
            f"No installation for {saleor_api_url}: {how_to_install}, then run this again."
            + (f" Installed: {installed}." if installed else " No Saleor has installed the app yet.")
        )
    if not installation.is_active:
        reason = f" ({installation.status_reason})" if installation.status_reason else ""
        raise CommandError(
            f"The app is no longer installed in {installation.saleor_api_url}{reason}: {how_to_install}, then run "
            "this again. Its channel settings are kept and apply again once it is installed."
        )
    return installation
