"""Finding 5 of issue 12: reconciliation works in Saleor's clock, not the app's.

A real `serve` whose wall clock is 10 minutes ahead of or behind Saleor's (libfaketime; the fake Saleor runs on the
machine's clock): orders confirmed in Saleor whose webhooks never came, one of them two seconds before the pass,
are all found and delivered; an order created before the install is still left to backfill."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tests.ops.procs import Deployment, SteppableClock, event_counts, run_sql, sqlite_url, wait_until


@pytest.mark.parametrize("skew", [+600, -600], ids=["app-10-min-ahead", "app-10-min-behind"])
def test_lost_webhooks_are_found_whatever_the_apps_clock_says(skew, tmp_path, fake_saleor, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    clock = SteppableClock(tmp_path / "clock", skew)
    d = Deployment(tmp_path, sqlite_url(tmp_path), fake_saleor, fake_vtm, RECONCILE_INTERVAL="1")
    try:
        serve = d.serve(env=clock.env)
        clock.wait_seen_by(serve)
        d.install(serve)
        installed = datetime.now(timezone.utc)  # Saleor's clock: its install answer's Date is no later
        d.set_channel_key()
        now = datetime.now(timezone.utc)  # Saleor's clock
        before_install = fake_saleor.add_order(fake_saleor.make_order(
            created=(now - timedelta(hours=1)).isoformat(), updatedAt=now.isoformat()))
        lost = [fake_saleor.add_order(fake_saleor.make_order()) for _ in range(3)]  # no webhook ever comes
        assert serve.alive

        # Two seconds old, yet confirmed after the install (a faster run installs less than 2 s before this line).
        just_now = fake_saleor.add_order(fake_saleor.make_order(
            created=max(datetime.now(timezone.utc) - timedelta(seconds=2), installed).isoformat()))
        expected = {order["number"] for order in lost + [just_now]}
        wait_until(lambda: set(event_counts(fake_vtm)) >= expected, timeout=60, what="every lost order recovered")
        assert d.wait_all_finished(len(expected), timeout=30) == {"delivered": len(expected)}
        rows = run_sql(d.database_url, "SELECT order_number, status, source FROM deliveries")
        assert {r["order_number"] for r in rows} == expected  # the pre-install order is left to backfill
        assert all(r["source"] == "reconcile" and r["status"] == "delivered" for r in rows), rows
        assert before_install["number"] not in event_counts(fake_vtm)
        assert event_counts(fake_vtm) == {number: 1 for number in expected}
    finally:
        d.close()
