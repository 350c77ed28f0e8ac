"""A reconciliation pass killed half-way (SIGKILL of the process) loses nothing and duplicates nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from sqlalchemy import func, select

from saleor_app.storage.models import Delivery, Installation
from tests.conftest import make_settings, start_app
from tests.conftest import configure


async def count_and_watermark(settings):  # type: ignore[no-untyped-def]
    async with start_app(settings, run_worker=False) as running:
        async with running.ctx.db.session() as session:
            count = await session.scalar(select(func.count(Delivery.id)))
            distinct = await session.scalar(select(func.count(func.distinct(Delivery.order_id))))
            watermark = await session.scalar(select(Installation.reconcile_watermark))
        return count, distinct, watermark


def reconcile_env(settings) -> dict:  # type: ignore[no-untyped-def]
    return dict(
        os.environ,
        DATABASE_URL=settings.database_url,
        SECRET_KEY=settings.secret_key,
        VTMARKETING_API_URL=settings.vtmarketing_api_url,
        LOG_FORMAT="json",
        ALLOW_PRIVATE_SALEOR_URLS="true",  # the fake Saleor listens on 127.0.0.1
    )


async def test_killed_pass_resumes_without_loss_or_duplicates(database_url, tmp_path, fake_saleor, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(database_url, tmp_path, fake_vtm.api_url)
    async with start_app(settings, run_worker=False) as running:
        assert (await running.register(fake_saleor)).status_code == 200
        await configure(running, fake_saleor)
    orders = [fake_saleor.make_order() for _ in range(350)]  # four pages of 100
    for order in orders:
        fake_saleor.add_order(order)
    _, _, watermark_before = await count_and_watermark(settings)

    # Saleor answers three pages, then holds the fourth: the pass is surely mid-walk when it is killed.
    hold = fake_saleor.hold_queries("ConfirmedOrders", after=3)
    cli = [sys.executable, "-m", "saleor_app.cli", "reconcile"]
    process = subprocess.Popen(cli, env=reconcile_env(settings), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while hold.waiting < 1 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    assert hold.waiting == 1, process.stderr.read().decode() if process.poll() is not None else "no fourth page asked"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    hold.release.set()  # later requests (the next pass) are answered at once

    stored, distinct, watermark = await count_and_watermark(settings)
    assert stored == 300 and stored == distinct  # the three pages walked are stored, nothing twice
    assert watermark == watermark_before  # the pass did not finish: the watermark stayed

    done = subprocess.run(cli, env=reconcile_env(settings), capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    assert f"{len(orders) - stored} recovered" in done.stdout.decode()
    stored, distinct, watermark = await count_and_watermark(settings)
    assert stored == distinct == len(orders)
    assert watermark > watermark_before
