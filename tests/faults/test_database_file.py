"""Finding 4 of issue 12: a SQLite data file deleted or replaced under a running `serve` must not swallow orders.

SQLite keeps writing into the file it opened, even once that file is unlinked or another file took its name: every
200 would go into a file nobody will ever open again. The app compares the file at its path with the one it opened
(device and inode) around every commit: the next webhook already gets a 503 (Saleor retries), /readyz says why, and
the log names the file."""

from __future__ import annotations

import os
import shutil

import httpx
import pytest

from saleor_app.saleor.manifest import ORDER_CONFIRMED
from tests.ops.procs import Deployment, sqlite_url, wait_until


@pytest.mark.parametrize("fault", ["deleted", "replaced"])
def test_a_deleted_or_replaced_database_file_acknowledges_nothing(fault, tmp_path, fake_saleor, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    d = Deployment(tmp_path, sqlite_url(tmp_path), fake_saleor, fake_vtm)
    try:
        serve = d.serve()
        d.install(serve)
        d.set_channel_key()
        first = d.new_order()
        assert d.send_webhooks([serve], [first]) == [200]
        assert d.wait_all_finished(1, timeout=30) == {"delivered": 1}

        database = tmp_path / "data" / "saleor-vtmarketing.db"
        if fault == "deleted":
            os.unlink(database)  # `rm` of the data folder's file, a volume cleaned up by mistake
        else:
            copy = database.with_name("restored.db")
            shutil.copyfile(database, copy)
            os.replace(copy, database)  # a backup "restored" over the running app's file
        # The very next webhook is refused: noticed before acknowledging, not by a watcher seconds later.
        order, body, headers = d.new_order()
        for _ in range(3):  # and so is Saleor's retry, as long as the fault lasts
            response = httpx.post(f"{serve.url}{ORDER_CONFIRMED.path}", content=body, headers=headers, timeout=15)
            assert response.status_code == 503, response.text
            assert fault in response.json()["error"]["message"]
        ready = httpx.get(f"{serve.url}/readyz", timeout=15)
        assert ready.status_code == 503 and fault in ready.json()["database"], ready.text
        errors = wait_until(lambda: [e for e in serve.json_lines() if e.get("level") == "error" and fault in e["message"]],
                            timeout=10, what="the error logged")
        assert str(database) in errors[0]["message"]
        assert serve.alive  # alive (/healthz) but not ready: an orchestrator stops sending it traffic
        assert httpx.get(f"{serve.url}/healthz", timeout=15).status_code == 200
    finally:
        d.close()
