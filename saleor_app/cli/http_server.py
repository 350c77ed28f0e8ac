"""uvicorn's server as `serve` and `worker --http-port` run it.

Three differences from `uvicorn.run`:
- once listening, the address it really listens on is written to a small file (`listen_file()`), which
  `saleor-vtmarketing healthcheck` (the image's HEALTHCHECK) reads: `serve --port 9000` stays healthy;
- a SIGTERM or SIGINT that ended in a clean shutdown exits 0, like `worker` does, instead of uvicorn's re-raised
  signal (143 in a container), so a supervisor sees a normal stop;
- with `freeze_heap`, once started (the app and its worker built), what start-up made is frozen out of the garbage
  collector's walks (heap.py): no full collection pauses the loop for ~120 ms under load.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import tempfile
import threading
from collections.abc import Callable, Generator
from pathlib import Path

import uvicorn

from saleor_app.heap import freeze_start_up_objects

log = logging.getLogger(__name__)

LISTEN_FILE_NAME = "saleor-vtmarketing-http.json"


def listen_file() -> Path:
    """Where the process serving HTTP in this machine (container) says where it listens: the temp folder."""
    return Path(tempfile.gettempdir()) / LISTEN_FILE_NAME


def read_listen_file() -> tuple[str, int] | None:
    """(host, port) the HTTP server of this machine listens on, or None when none said so."""
    try:
        data = json.loads(listen_file().read_text())
        return str(data["host"]), int(data["port"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


class HttpServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, *, on_listening: Callable[[str, int], None] | None = None,
                 freeze_heap: bool = False) -> None:
        super().__init__(config)
        self._on_listening = on_listening
        self._freeze_heap = freeze_heap
        self._wrote_listen_file = False

    def listening_on(self) -> tuple[str, int] | None:
        """(host, port) of the first socket this server bound; a wildcard host is reached on 127.0.0.1."""
        for server in self.servers:
            for sock in server.sockets or ():
                host, port = sock.getsockname()[:2]
                return ("127.0.0.1" if host in ("0.0.0.0", "::", "") else host), int(port)
        return None

    async def startup(self, sockets=None) -> None:  # type: ignore[no-untyped-def]
        await super().startup(sockets=sockets)
        if not self.started:
            return
        if self._freeze_heap:
            freeze_start_up_objects()
        where = self.listening_on()
        if where is None:
            return
        self._write_listen_file(*where)
        if self._on_listening is not None:
            self._on_listening(*where)

    async def shutdown(self, sockets=None) -> None:  # type: ignore[no-untyped-def]
        try:
            await super().shutdown(sockets=sockets)
        finally:
            self._remove_listen_file()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        """uvicorn's, without raising the caught signal again after the graceful shutdown (see the module doc)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        original = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)

    def _write_listen_file(self, host: str, port: int) -> None:
        path = listen_file()
        try:
            tmp = path.with_name(f".{path.name}.{os.getpid()}")
            tmp.write_text(json.dumps({"host": host, "port": port, "pid": os.getpid()}))
            tmp.replace(path)
            self._wrote_listen_file = True
        except OSError as exc:  # a read-only /tmp: the healthcheck falls back to PORT
            log.warning("could not write %s for the healthcheck: %s", path, exc.strerror or exc)

    def _remove_listen_file(self) -> None:
        if not self._wrote_listen_file:
            return
        path = listen_file()
        with contextlib.suppress(OSError, ValueError):
            if json.loads(path.read_text()).get("pid") == os.getpid():  # not another process's file
                path.unlink()
