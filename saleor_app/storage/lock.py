"""The single-process lock of a SQLite database: a lock file beside the database file, held with `flock` for as
long as a `serve` or `worker` process runs.

SQLite has one writer and no row locks a second process could respect: two working processes on one file would
take each other's deliveries (and a starting one would hand back the other's claims as if they were left by a
crash). So the first process takes the lock before anything touches the database (before migrations), and a
second one gives up at once: no waiting, nothing written. One-shot commands (`channels set`, `deliveries retry`,
`backfill`, `reconcile`, `migrate`, …) do not take it: they work beside a running `serve`.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class DatabaseInUse(Exception):
    """Another process holds the lock of this SQLite database; the message says which and what to do."""


def sqlite_file_of(database_url: str) -> Path | None:
    """The database file of a SQLite URL (None for PostgreSQL and for an in-memory database)."""
    if not database_url.startswith("sqlite"):
        return None
    path = database_url.split(":///", 1)[1] if ":///" in database_url else ""
    path = path.split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return Path(path)


class SingleProcessLock:
    """`<database file>.lock`, taken without blocking. The lock lives as long as the open file: the process's
    lifetime (a crash releases it with the process, so a restart never finds a stale lock)."""

    def __init__(self, database_file: Path) -> None:
        self.database_file = database_file
        self.path = Path(f"{database_file}.lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)  # creating an empty lock file changes nothing else
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", errors="replace").strip()
            os.close(fd)
            raise DatabaseInUse(
                f"Another saleor-vtmarketing process{f' (pid {holder})' if holder.isdigit() else ''} already works on "
                f"the SQLite database {self.database_file}: SQLite allows one `serve` or `worker` per database "
                f"file. Stop the other one, or use PostgreSQL (DATABASE_URL) to run several."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None
