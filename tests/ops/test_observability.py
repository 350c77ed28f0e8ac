"""What an operator watches: /healthz (alive), /readyz (can work: database reachable and migrated), /metrics
(Prometheus text, optionally behind METRICS_TOKEN), and JSON logs that name deliveries but never customers or keys."""

from __future__ import annotations

import asyncio
import json
import logging

import httpx
from prometheus_client.parser import text_string_to_metric_families

from saleor_app.app import create_app
from saleor_app.logs import JsonFormatter
from saleor_app.settings.service import ChannelSettingsService
from saleor_app.storage.repositories import InstallationRepository
from saleor_app.worker_runtime import build_worker
from tests.conftest import make_settings, place_order, start_app
from tests.fakes.saleor import FakeSaleor
from tests.fakes.server import free_port
from tests.ops.procs import CUSTOMER_EMAIL, CUSTOMER_PHONE
from tests.ops.procs import database_url  # noqa: F401 (fixture: a private PostgreSQL database)

API_KEY = "vtm-key-observability-0123456789"
Samples = dict[tuple[str, frozenset], float]


async def install_and_configure(running, saleor: FakeSaleor) -> int:  # type: ignore[no-untyped-def]
    assert (await running.register(saleor)).status_code == 200
    async with running.ctx.db.session() as session:
        installation_id = (await InstallationRepository(session).by_api_url(saleor.api_url)).id
    await ChannelSettingsService(running.ctx).update(installation_id, "default-channel", api_key=API_KEY)
    return installation_id


async def scrape(client: httpx.AsyncClient, **headers: str) -> Samples:
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str) -> float:
    """Sum over every label set (e.g. the `_count` of a labelled histogram)."""
    return sum(v for (n, _), v in samples.items() if n == name)


# --- health and readiness ---------------------------------------------------------------------------------------------


async def test_healthz_and_readyz_answer_200_when_migrated(running_app) -> None:  # type: ignore[no-untyped-def]
    health = await running_app.client.get("/healthz")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    ready = await running_app.client.get("/readyz")
    assert (ready.status_code, ready.json()["status"]) == (200, "ready")


async def test_readyz_is_503_until_migrations_are_applied(database_url, tmp_path, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(database_url, tmp_path, fake_vtm.api_url)
    app = create_app(settings, run_worker=False, migrate=False)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
            ready = await client.get("/readyz")
            assert ready.status_code == 503
            assert "migrations" in ready.json()["database"]
            assert (await client.get("/healthz")).status_code == 200  # alive, just not ready
            await app.state.ctx.db.migrate()  # what `saleor-vtmarketing migrate` does
            assert (await client.get("/readyz")).status_code == 200


async def test_readyz_is_503_when_the_database_is_unreachable(tmp_path, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    nowhere = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nowhere"  # nothing listens there
    settings = make_settings(nowhere, tmp_path, fake_vtm.api_url)
    app = create_app(settings, run_worker=False, migrate=False)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
            ready = await asyncio.wait_for(client.get("/readyz"), timeout=60)
            assert ready.status_code == 503
            assert ready.json()["database"].startswith("unreachable")
            # Liveness does not depend on the database: an orchestrator must not restart the app for its outage.
            assert (await client.get("/healthz")).status_code == 200


# --- metrics ------------------------------------------------------------------------------------------------------------


async def test_metrics_follow_an_order_from_webhook_to_delivery(running_app, fake_saleor, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    await install_and_configure(running_app, fake_saleor)
    before = await scrape(running_app.client)
    for name in ("vtm_queue_depth", "vtm_queue_oldest_age_seconds", "vtm_vtmarketing_request_seconds_count"):
        assert (name, frozenset()) in before, f"{name} is not exported"
    assert value(before, "vtm_queue_depth") == 0
    assert total(before, "vtm_webhooks_received_total") == 0

    await place_order(running_app, fake_saleor)
    await asyncio.sleep(0.05)
    queued = await scrape(running_app.client)
    assert value(queued, "vtm_webhooks_received_total", event="order_confirmed", outcome="stored") == 1
    assert value(queued, "vtm_queue_depth") == 1
    assert value(queued, "vtm_queue_oldest_age_seconds") > 0

    await build_worker(running_app.ctx).run_until_idle()
    assert len(fake_vtm.events) == 1
    after = await scrape(running_app.client)
    assert value(after, "vtm_deliveries_finished_total", state="delivered") == 1
    assert value(after, "vtm_delivery_attempts_total", status_class="2xx") == 1
    assert value(after, "vtm_queue_depth") == 0
    assert value(after, "vtm_queue_oldest_age_seconds") == 0
    assert value(after, "vtm_vtmarketing_request_seconds_count") == 1
    assert value(after, "vtm_vtmarketing_request_seconds_sum") > 0
    assert total(after, "vtm_saleor_request_seconds_count") > total(queued, "vtm_saleor_request_seconds_count")

    # A refused event counts as a 4xx attempt and a failed delivery.
    fake_vtm.fail_next(1, status=400)
    await place_order(running_app, fake_saleor)
    await build_worker(running_app.ctx).run_until_idle()
    refused = await scrape(running_app.client)
    assert value(refused, "vtm_delivery_attempts_total", status_class="4xx") == 1
    assert value(refused, "vtm_deliveries_finished_total", state="failed") == 1
    assert value(refused, "vtm_webhooks_received_total", event="order_confirmed", outcome="stored") == 2


async def test_metrics_token_protects_the_endpoint(database_url, tmp_path, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(database_url, tmp_path, fake_vtm.api_url, metrics_token="metrics-secret-1")
    async for running in start_app(settings, run_worker=False):
        assert (await running.client.get("/metrics")).status_code == 401
        wrong = await running.client.get("/metrics", headers={"Authorization": "Bearer not-it"})
        assert wrong.status_code == 401
        assert "metrics-secret-1" not in wrong.text
        ok = await running.client.get("/metrics", headers={"Authorization": "Bearer metrics-secret-1"})
        assert ok.status_code == 200 and "vtm_queue_depth" in ok.text
        # Health endpoints stay open: probes carry no token.
        assert (await running.client.get("/healthz")).status_code == 200
        assert (await running.client.get("/readyz")).status_code == 200


async def test_metrics_are_open_without_a_token(running_app) -> None:  # type: ignore[no-untyped-def]
    assert (await running_app.client.get("/metrics")).status_code == 200


# --- logs -------------------------------------------------------------------------------------------------------------


async def test_json_delivery_lines_name_the_delivery_never_the_customer_or_key(running_app, fake_saleor, fake_vtm, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG, logger="saleor_app")
    installation_id = await install_and_configure(running_app, fake_saleor)
    delivered = await place_order(running_app, fake_saleor)
    await build_worker(running_app.ctx).run_until_idle()
    fake_vtm.fail_next(1, status=401)  # refused key: a warning-worthy outcome, still no key in the logs
    refused = await place_order(running_app, fake_saleor)
    await build_worker(running_app.ctx).run_until_idle()

    formatter = JsonFormatter()
    lines = [formatter.format(record) for record in caplog.records]
    entries = [json.loads(line) for line in lines]
    worker_lines = [e for e in entries if e["logger"] == "saleor_app.delivery.worker" and e.get("delivery_id")]
    by_order = {e["order_number"]: e for e in worker_lines}
    assert set(by_order) >= {delivered["number"], refused["number"]}
    for entry in worker_lines:
        assert entry["installation"] == installation_id
        assert entry["channel"] == "default-channel"
        assert isinstance(entry["delivery_id"], int)
        assert {"time", "level", "message"} <= set(entry)
    assert "delivered" in by_order[delivered["number"]]["message"]
    everything = "\n".join(lines) + "\n".join(r.getMessage() for r in caplog.records)
    for secret in (CUSTOMER_EMAIL, CUSTOMER_PHONE, API_KEY, fake_saleor.app_token, "Ada", "Buyer"):
        assert secret not in everything, f"{secret!r} was logged"

