"""Problems shown in the Saleor dashboard (appProblemCreate, Saleor 3.22+): one per kind and channel, dismissed when
the cause is gone; nothing of this against an older Saleor."""

from __future__ import annotations

import logging


from saleor_app.worker_runtime import build_worker
from tests.conftest import configure, start_app
from tests.conftest import place_order as place
from tests.fakes.saleor import FakeSaleor


def mutation_calls(saleor: FakeSaleor, name: str) -> list[dict]:
    return [r for r in saleor.graphql_requests if name in (r.get("query") or "")]


async def test_refused_key_creates_one_problem_and_a_success_dismisses_it(running_app, installed, worker, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    await configure(running_app, installed, api_key="wrong-key-0001")
    fake_vtm.accept_keys("right-key-0002")
    for _ in range(3):
        await place(running_app, installed)
    await worker.run_until_idle()
    assert len(mutation_calls(installed, "appProblemCreate")) == 1  # aggregated, not one per order
    (problem,) = installed.problems.values() if isinstance(installed.problems, dict) else installed.problems
    text = str(problem)
    assert "default-channel" in text and "key" in text.lower()
    # The merchant pastes the right key: the key problem is dismissed at once.
    await configure(running_app, installed, api_key="right-key-0002")
    assert len(mutation_calls(installed, "appProblemDismiss")) == 1
    await place(running_app, installed)
    await worker.run_until_idle()
    assert len(fake_vtm.events) == 1


async def test_failed_deliveries_problem_is_dismissed_by_a_success(running_app, installed, worker, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    await configure(running_app, installed)
    fake_vtm.fail_next(2, status=400, body={"errors": [{"message": "Invalid payload", "description": "x"}]})
    await place(running_app, installed)
    await place(running_app, installed)
    await worker.run_until_idle()
    creates = mutation_calls(installed, "appProblemCreate")
    assert len(creates) == 1 and "deliveries-failed:default-channel" in str(creates[0]["variables"])
    await place(running_app, installed)
    await worker.run_until_idle()
    dismisses = mutation_calls(installed, "appProblemDismiss")
    assert len(dismisses) == 1 and "deliveries-failed:default-channel" in str(dismisses[0]["variables"])
    # Later successes ask Saleor nothing more.
    await place(running_app, installed)
    await worker.run_until_idle()
    assert len(mutation_calls(installed, "appProblemDismiss")) == 1


async def test_lost_manage_orders_is_reported(running_app, installed, worker, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    await configure(running_app, installed)
    installed.app_permissions = []
    await place(running_app, installed)
    await worker.run_until_idle()
    (create,) = mutation_calls(installed, "appProblemCreate")
    assert "manage-orders-lost" in str(create["variables"])


async def test_old_saleor_gets_no_problem_mutations_and_nothing_breaks(tmp_path, database_url, fake_vtm, caplog) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import make_settings

    caplog.set_level(logging.INFO)
    with FakeSaleor(schema_version="3.20", saleor_version="3.20.119") as old:
        settings = make_settings(database_url, tmp_path, fake_vtm.api_url)
        async with start_app(settings, run_worker=False) as running:
            assert (await running.register(old)).status_code == 200
            await configure(running, old, api_key="bad-key-0003")
            fake_vtm.accept_keys("another-key")
            worker = build_worker(running.ctx)
            for _ in range(2):
                await place(running, old)
            await worker.run_until_idle()
            assert mutation_calls(old, "appProblem") == []
            assert len(mutation_calls(old, "ShopVersion")) == 1  # asked once, remembered
            assert sum("no app problems" in r.getMessage() for r in caplog.records) == 1
