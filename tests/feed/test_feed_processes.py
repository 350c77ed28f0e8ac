"""The feed as an operator and VTmarketing meet it: real `saleor-vtmarketing serve` and CLI processes, the worker
building on its schedule, the URL fetched over HTTP; a `feeds build` killed mid-build (SIGKILL) leaves the served
file untouched."""

from __future__ import annotations

import subprocess
import threading
from datetime import datetime, timezone

import httpx

from tests.feed.conftest import TEMPLATE, parse, stock_shop
from tests.ops.procs import (
    Deployment,
    assert_logs_clean,
    cli_command,
    database_url,  # noqa: F401 (fixture: SQLite, and a private PostgreSQL database)
    run_sql,
    wait_until,
)

CHANNEL = "default-channel"
APP_URL = "http://127.0.0.1:8000"  # Deployment's APP_URL: the feed URLs the app prints start with it


def served(url: str, web) -> str:  # type: ignore[no-untyped-def]
    """The same URL on the port the test's `serve` listens on."""
    return url.replace(APP_URL, web.url, 1)


def feed_flags(d: Deployment) -> list[str]:
    return ["--saleor-api-url", d.saleor.api_url, "--channel", CHANNEL]


def test_operator_sets_up_a_feed_and_vtmarketing_fetches_it(tmp_path, database_url, fake_saleor, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    stock_shop(fake_saleor)
    d = Deployment(tmp_path, database_url, fake_saleor, fake_vtm, FEED_SCHEDULE_SECONDS="0.5")
    try:
        web = d.serve(worker=True)
        d.install(web)
        setup = d.cli("channels", "set", *feed_flags(d), "--api-key", d.api_key, "--feed",
                      "--product-url-template", TEMPLATE, "--color-attribute", "color", "--brand-attribute", "brand")
        assert "feed: on" in setup.stdout

        # `feeds url` prints the URL alone, on one line, even in a terminal 40 columns wide.
        narrow = subprocess.run(cli_command("feeds", "url", *feed_flags(d)), env={**d.env, "COLUMNS": "40"},
                                cwd=d.cwd, capture_output=True, text=True, timeout=60)
        assert narrow.returncode == 0, narrow.stderr
        url = narrow.stdout.removesuffix("\n")
        assert "\n" not in url and url.startswith(f"{APP_URL}/api/feeds/") and url.endswith(f"/{CHANNEL}.csv")
        assert len(url) > 40 and url in setup.stdout.replace("\n", "")

        # The worker builds it on its own (it looks every FEED_SCHEDULE_SECONDS); VTmarketing fetches it.
        def fetched() -> httpx.Response | None:
            response = httpx.get(served(url, web), timeout=10)
            return response if response.status_code == 200 else None

        response = wait_until(fetched, timeout=30, interval=0.3, what="the worker's first build")
        rows = parse(response.text)
        assert {row["ID"] for row in rows} >= {"tee-s", "tee_m", "snk_42", "mug-w"} and len(rows) == 5

        listing = d.cli("feeds", "list").stdout
        assert "5 rows" in listing and url in listing and "No delivered orders" in listing
        built = d.cli("feeds", "build", *feed_flags(d))
        assert built.stdout.startswith(f"{CHANNEL}: 5 rows in ") and " s" in built.stdout

        rotated = d.cli("feeds", "rotate", *feed_flags(d)).stdout.strip().splitlines()[-1]
        assert rotated != url and rotated.startswith(f"{APP_URL}/api/feeds/")
        assert httpx.get(served(url, web), timeout=10).status_code == 404
        assert httpx.get(served(rotated, web), timeout=10).text == response.text
        token = url.rsplit("/", 2)[1]
        assert_logs_clean(d.processes, d.api_key, fake_saleor.app_token, token, rotated.rsplit("/", 2)[1])
    finally:
        d.close()


def test_bad_input_on_the_command_line(tmp_path, database_url, fake_saleor, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    stock_shop(fake_saleor)
    d = Deployment(tmp_path, database_url, fake_saleor, fake_vtm)
    try:
        web = d.serve(worker=False)
        d.install(web)

        def refused(*args: str) -> str:
            result = d.cli(*args, check=False)
            assert result.returncode == 1, (args, result.stdout, result.stderr)
            assert "Traceback" not in result.stdout + result.stderr
            return " ".join((result.stdout + result.stderr).split())

        # A channel without a key cannot serve a feed; a channel without a feed has no URL to print or build.
        assert "API key first" in refused("channels", "set", *feed_flags(d), "--feed", "--product-url-template", TEMPLATE)
        assert "no product feed yet" in refused("feeds", "url", *feed_flags(d))
        assert "no product feed yet" in refused("feeds", "rotate", *feed_flags(d))
        assert "No feed is on" in refused("feeds", "build")
        # An invalid template or an unknown attribute: one line saying what to fix; nothing changed.
        assert "Unknown placeholder {slug}" in refused("channels", "set", *feed_flags(d), "--api-key", d.api_key,
                                                       "--product-url-template", "https://x.example/{slug}")
        assert "no product attribute 'maker'" in refused("channels", "set", *feed_flags(d), "--api-key", d.api_key,
                                                         "--feed", "--product-url-template", TEMPLATE,
                                                         "--brand-attribute", "maker")
        assert run_sql(d.database_url, "SELECT COUNT(*) AS n FROM feeds")[0]["n"] == 0

        d.cli("channels", "set", *feed_flags(d), "--api-key", d.api_key, "--feed", "--product-url-template", TEMPLATE)
        fake_saleor.graphql_status_override = 503  # Saleor down during the build
        failed = refused("feeds", "build", *feed_flags(d))
        assert "build failed: Saleor: Saleor answered HTTP 503" in failed
        fake_saleor.graphql_status_override = None
        assert d.cli("feeds", "build", *feed_flags(d)).returncode == 0
        assert "last error" not in d.cli("feeds", "list").stdout
    finally:
        d.close()


def test_a_build_killed_midway_leaves_the_served_feed_untouched(tmp_path, database_url, fake_saleor, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    for i in range(450):  # five pages
        fake_saleor.catalogue.add_product(f"Item {i:03d}", variants=[{"name": "One", "sku": f"ITEM-{i:03d}",
                                                                     "prices": {CHANNEL: (1.0, None)}}])
    d = Deployment(tmp_path, database_url, fake_saleor, fake_vtm)
    blocked, release = threading.Event(), threading.Event()
    try:
        web = d.serve(worker=False)
        d.install(web)
        d.cli("channels", "set", *feed_flags(d), "--api-key", d.api_key, "--feed", "--product-url-template", TEMPLATE)
        d.cli("feeds", "build", *feed_flags(d))
        url = d.cli("feeds", "url", *feed_flags(d)).stdout.strip()
        before = httpx.get(served(url, web), timeout=10)
        assert before.status_code == 200 and len(parse(before.text)) == 450

        fake_saleor.catalogue.add_product("Newer", variants=[{"name": "One", "sku": "NEWER", "prices": {CHANNEL: (1.0, None)}}])
        start = fake_saleor.catalogue.pages_answered

        def hold_the_third_page(answered: int) -> None:
            if answered == start + 2:
                blocked.set()
                release.wait(timeout=60)

        fake_saleor.catalogue.on_page = hold_the_third_page
        builder = d.spawn("feeds-build", ["feeds", "build", *feed_flags(d)])
        assert blocked.wait(timeout=60), builder.tail()
        wait_until(lambda: run_sql(d.database_url, "SELECT COUNT(*) AS n FROM feed_builds WHERE status = 'building'"
                                   )[0]["n"] == 1, timeout=30, what="the build under way in the database")
        builder.kill()  # SIGKILL in the middle of the build: nothing of it runs after this
        release.set()
        fake_saleor.catalogue.on_page = None

        after = httpx.get(served(url, web), timeout=10)
        assert after.status_code == 200 and after.content == before.content  # the previous file, whole
        assert after.headers["etag"] == before.headers["etag"]
        statuses = sorted(row["status"] for row in run_sql(d.database_url, "SELECT status FROM feed_builds"))
        assert statuses == ["building", "current"]  # the dead build's half, never served

        # Its claim runs out (LEASE_SECONDS after its last renewal; stepped here instead of waited for)...
        run_sql(d.database_url, "UPDATE feeds SET build_lease_until = :past",
                {"past": datetime(2000, 1, 1, tzinfo=timezone.utc)})
        # ...and the next build takes over, clears the leftovers and swaps the new file in.
        assert "451 rows" in d.cli("feeds", "build", *feed_flags(d)).stdout
        statuses = sorted(row["status"] for row in run_sql(d.database_url, "SELECT status FROM feed_builds"))
        assert statuses == ["current", "superseded"]
        assert '"newer"' in httpx.get(served(url, web), timeout=10).text
    finally:
        release.set()
        d.close()
