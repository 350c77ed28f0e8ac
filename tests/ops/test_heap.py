"""What start-up makes is frozen out of the garbage collector's walks (saleor_app/heap.py): a full collection under
load otherwise walked ~130,000 objects that live as long as the process and paused the webhooks' loop ~120 ms.
Checked by what the collector is left to walk, not by timing a pause."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.ops.procs import Deployment, sqlite_url

FROZEN_LINE = re.compile(r"(\d+) objects made at start-up are left out of garbage collections")


def test_after_freezing_a_full_collection_walks_only_what_came_later() -> None:
    # In a process of its own: freezing is for the life of a process, and this one runs the other tests.
    script = """
import gc, json
from saleor_app.app import create_app
from saleor_app.config import Settings
from saleor_app.heap import freeze_start_up_objects
app = create_app(Settings(secret_key="k" * 44, database_url="sqlite+aiosqlite:///:memory:"))
before = len(gc.get_objects())
frozen = freeze_start_up_objects()
survivors = [object() for _ in range(10)] + [{"cycle": None} for _ in range(10)]
for d in survivors[10:]:
    d["cycle"] = d
print(json.dumps({"before": before, "frozen": frozen, "walked": len(gc.get_objects()), "app": app is not None}))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    figures = __import__("json").loads(result.stdout.splitlines()[-1])
    assert figures["before"] > 50_000  # the app's libraries and objects: what a full collection used to walk
    assert figures["frozen"] >= figures["before"] * 0.9  # start-up's garbage was freed, the rest frozen
    assert figures["walked"] < 1_000  # left to walk: only what came after (here the 10 dicts, and the list)


def test_serve_and_worker_freeze_once_started(tmp_path: Path, fake_saleor, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    d = Deployment(tmp_path, sqlite_url(tmp_path), fake_saleor, fake_vtm, LOG_LEVEL="DEBUG")
    try:
        serve = d.serve()  # the embedded default: the worker in the webhooks' loop, where the pauses hurt
        serve.wait_log("objects made at start-up are left out of garbage collections")
        (frozen,) = FROZEN_LINE.findall(serve.logs())
        assert int(frozen) > 50_000
        assert serve.terminate() == 0
        worker = d.worker()  # a worker alone (scale-out), its own process
        worker.wait_log("objects made at start-up are left out of garbage collections")
        assert int(FROZEN_LINE.findall(worker.logs())[0]) > 50_000
        assert worker.terminate() == 0
    finally:
        d.close()
