"""Files the storage layer creates on disk."""

from __future__ import annotations

import os
from pathlib import Path


def create_private_file(path: Path) -> None:
    """Create `path` (and its folder) readable by its owner only, unless it exists. An empty file is an empty SQLite
    database, and SQLite gives the `-wal` and `-shm` files it adds the database file's permissions: the customer
    data in all three stays as private as `secret.key`."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return
    os.close(fd)
