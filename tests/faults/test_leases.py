"""Finding 3 of issue 12: a lease that runs out must not send an order twice.

Real processes: a 2 s lease with a VTmarketing that takes 5 s per send (leases are renewed while the send runs),
a +5 min wall-clock step while sends are in flight (libfaketime: leases are judged by PostgreSQL's clock, or on
SQLite by the one process that holds them), and a second process started on a SQLite file in use (it refuses at
once, exit 2, and touches nothing)."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from tests.fakes.server import free_port
from tests.ops.procs import (
    Deployment,
    SteppableClock,
    database_url,  # noqa: F401 (fixture: SQLite, and a private PostgreSQL database when TEST_DATABASE_URL is set)
    event_counts,
    sqlite_url,
    wait_until,
)

ORDERS = 5


def start(d: Deployment, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    """The web side and the workers: one `serve` on SQLite; a web and two workers on PostgreSQL (a lease that runs
    out would hand a delivery to the other worker)."""
    if d.database_url.startswith("sqlite"):
        serve = d.serve(env=env)
        return serve, [serve]
    d.cli("migrate")
    web = d.serve(worker=False, env=env, wait=False)
    workers = []
    for _ in range(2):  # each serves its health port: the test can see which clock it runs on
        port = free_port()
        worker = d.spawn("worker", ["worker", "--host", "127.0.0.1", "--http-port", str(port)], port=port, env=env)
        worker.ready_log = "started (concurrency"
        workers.append(worker)
    d.wait_started(web, *workers)
    return web, workers


def requests_per_order(vtm) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """POSTs VTmarketing received per order number, whatever it answered."""
    import json

    counts: dict[str, int] = {}
    for request in vtm.requests:
        number = json.loads(request.body)["event"]["confirmation"]["generic"]["orderId"]
        counts[number] = counts.get(number, 0) + 1
    return counts


def test_a_2_s_lease_covers_a_5_s_send(database_url, tmp_path, fake_saleor, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    d = Deployment(tmp_path, database_url, fake_saleor, fake_vtm, DELIVERY_LEASE_SECONDS=2,
                   VTMARKETING_TIMEOUT_SECONDS=10)
    try:
        web, _ = start(d)
        d.install(web)
        d.set_channel_key()
        fake_vtm.latency = 5.0  # every send outlives two and a half leases
        hooks = [d.new_order() for _ in range(ORDERS)]
        assert set(d.send_webhooks([web], hooks)) == {200}
        assert d.wait_all_finished(ORDERS, timeout=60) == {"delivered": ORDERS}
        wait_until(lambda: all(r.answered_at for r in fake_vtm.requests), timeout=15, what="VTmarketing done")
        assert requests_per_order(fake_vtm) == {order["number"]: 1 for order, _, _ in hooks}
        assert event_counts(fake_vtm) == {order["number"]: 1 for order, _, _ in hooks}
    finally:
        d.close()


def test_a_wall_clock_step_of_five_minutes_sends_nothing_twice(database_url, tmp_path, fake_saleor, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    clock = SteppableClock(tmp_path / "clock")
    d = Deployment(tmp_path, database_url, fake_saleor, fake_vtm, DELIVERY_LEASE_SECONDS=3)
    try:
        web, workers = start(d, env=clock.env)
        d.install(web)
        d.set_channel_key()
        fake_vtm.hold()  # the sends stay in flight across the step
        hooks = [d.new_order() for _ in range(ORDERS)]
        assert set(d.send_webhooks([web], hooks)) == {200}
        wait_until(lambda: fake_vtm.held >= ORDERS, timeout=30, what="every send in flight")

        clock.set(+300)  # NTP, a resumed VM: the wall clock jumps five minutes, far past every lease
        for process in {id(p): p for p in [web, *workers] if p.port}.values():
            clock.wait_seen_by(process)
        # One more order after the step: once its send arrives, the workers have claimed with the new clock.
        after = d.new_order()
        assert d.send_webhooks([web], [after]) == [200]
        wait_until(lambda: fake_vtm.held >= ORDERS + 1, timeout=30, what="the new order's send")
        time_of_check = time.monotonic()
        wait_until(lambda: time.monotonic() - time_of_check > 1.5 or fake_vtm.held > ORDERS + 1, timeout=5)
        assert fake_vtm.held == ORDERS + 1, "a delivery in flight was claimed again after the clock step"

        fake_vtm.release()
        assert d.wait_all_finished(ORDERS + 1, timeout=60) == {"delivered": ORDERS + 1}
        assert requests_per_order(fake_vtm) == {order["number"]: 1 for order, _, _ in hooks + [after]}
    finally:
        d.close()


def file_digests(folder: Path) -> dict[str, str]:
    """Every file of the data folder but SQLite's shared-memory index (readers, the test's own included, mark it)."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())
            if p.is_file() and not p.name.endswith("-shm")}


def test_a_second_process_on_a_sqlite_file_in_use_refuses_at_once(tmp_path, fake_saleor, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    # The held sends must stay in flight while three processes start and give up, however slow the machine.
    d = Deployment(tmp_path, sqlite_url(tmp_path), fake_saleor, fake_vtm, VTMARKETING_TIMEOUT_SECONDS=300)
    try:
        serve = d.serve()
        d.install(serve)
        d.set_channel_key()
        fake_vtm.hold()
        hooks = [d.new_order() for _ in range(ORDERS)]
        assert set(d.send_webhooks([serve], hooks)) == {200}
        wait_until(lambda: fake_vtm.held >= ORDERS, timeout=30, what="every send in flight")
        claims = {row["id"]: row["claimed_by"] for row in d.deliveries()}
        assert all(claims.values())
        before = file_digests(tmp_path / "data")

        # The same database file, whatever DATA_DIR says: the lock lives beside the database file.
        other_data = tmp_path / "other-data"
        for args, env in ((["serve", "--port", "0"], {}), (["serve", "--no-worker"], {"DATA_DIR": str(other_data)}),
                          (["worker"], {})):
            second = d.spawn(args[0], args, env=env)
            assert second.wait_exit(timeout=30) == 2, second.tail()
            output = second.logs().strip().splitlines()
            assert len(output) == 1 and "Another saleor-vtmarketing process" in output[0], output
            assert f"pid {serve.pid}" in output[0] and "saleor-vtmarketing.db" in output[0], output
        # It touched nothing: the first process's claims are as they were, and so is every byte of its files.
        assert {row["id"]: row["claimed_by"] for row in d.deliveries()} == claims
        assert file_digests(tmp_path / "data") == before
        assert serve.alive

        fake_vtm.release()
        assert d.wait_all_finished(ORDERS, timeout=60) == {"delivered": ORDERS}
        assert requests_per_order(fake_vtm) == {order["number"]: 1 for order, _, _ in hooks}
    finally:
        d.close()


def test_one_shot_commands_still_work_beside_a_running_serve(tmp_path, fake_saleor, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    d = Deployment(tmp_path, sqlite_url(tmp_path), fake_saleor, fake_vtm)
    try:
        serve = d.serve()
        d.install(serve)
        d.set_channel_key()  # `channels set`
        for command in ("migrate", "deliveries list", "channels list", "installations", "reconcile", "rotate-secrets"):
            result = d.cli(*command.split())
            assert result.returncode == 0 and "Traceback" not in result.stderr + result.stdout, command
        assert serve.alive
    finally:
        d.close()
