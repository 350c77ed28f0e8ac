"""The settings page in a real browser (headless Chromium), framed by a fake Saleor Dashboard on another origin that
plays the dashboard's side of AppBridge, against the app served over real HTTP with its in-process worker."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from saleor_app.app import create_app
from tests.conftest import make_settings
from tests.fakes.saleor import FakeSaleor
from tests.fakes.server import ThreadedServer, free_port
from tests.fakes.vtmarketing import FakeVTMarketing

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
HOST_HTML = (Path(__file__).parent / "host.html").read_text()
MISSING_EVENT = {"errors": [{"message": "Missing event information", "description": "Please send event information"}]}

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's Chromium at /usr/bin/chromium (apt-get install -y chromium)"
)

try:
    from playwright.async_api import Frame, FrameLocator, Page, async_playwright, expect
except ImportError:  # pragma: no cover - the test extra installs it
    pytestmark = pytest.mark.skip(reason="playwright (Python) is not installed")


def host_app(saleor: FakeSaleor, app_url: str) -> Starlette:
    """The fake dashboard: one page framing the app. `?mode=silent` never answers AppBridge (no handshake);
    `?mode=staff` hands over the token of a staff user without MANAGE_APPS, in the dark theme."""

    async def page(request: Request) -> HTMLResponse:
        mode = request.query_params.get("mode")
        permissions = ["MANAGE_ORDERS"] if mode == "staff" else ["MANAGE_APPS", "MANAGE_ORDERS"]
        config = {
            "appUrl": f"{app_url}/app",
            "query": urlencode({"domain": saleor.domain, "saleorApiUrl": saleor.api_url, "id": saleor.app_id}),
            "theme": "dark" if mode == "staff" else "light",
            "token": saleor.dashboard_token(user_permissions=permissions),
            "answer": mode != "silent",
        }
        return HTMLResponse(HOST_HTML.replace("__CONFIG__", json.dumps(config)))

    return Starlette(routes=[Route("/", page)])


class Stack:
    def __init__(self, app_url: str, host_url: str, saleor: FakeSaleor, vtm: FakeVTMarketing) -> None:
        self.app_url = app_url
        self.host_url = host_url
        self.saleor = saleor
        self.vtm = vtm

    async def send_order(self, **overrides) -> dict:  # type: ignore[no-untyped-def]
        order = self.saleor.add_order(self.saleor.make_order(**overrides))
        body = self.saleor.webhook_body(order)
        async with httpx.AsyncClient(base_url=self.app_url) as client:
            response = await client.post(
                "/api/webhooks/order-confirmed", content=body, headers=self.saleor.webhook_headers(body)
            )
        assert response.status_code == 200, response.text
        return order


@asynccontextmanager
async def running_stack(database_url: str, tmp_path: Path, saleor: FakeSaleor, vtm: FakeVTMarketing,
                        **overrides: object) -> AsyncIterator[Stack]:
    port = free_port()
    app_url = f"http://127.0.0.1:{port}"
    settings = make_settings(database_url, tmp_path, vtm.api_url, app_url=app_url, **overrides)
    app_server = ThreadedServer(create_app(settings, run_worker=True), port=port).start()
    host_server = None
    try:
        async with httpx.AsyncClient(base_url=app_url) as client:
            response = await client.post("/api/register", content=saleor.register_body(), headers=saleor.register_headers())
            assert response.status_code == 200, response.text
        host_server = ThreadedServer(host_app(saleor, app_url)).start()
        yield Stack(app_url, host_server.url, saleor, vtm)
    finally:
        if host_server is not None:
            host_server.stop()
        app_server.stop()


@asynccontextmanager
async def browser_page(name: str) -> AsyncIterator[Page]:
    """A fresh page; on failure a full-page screenshot lands in tests/artifacts/<name>-failure.png."""
    ARTIFACTS.mkdir(exist_ok=True)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            page.console_errors = []  # type: ignore[attr-defined]
            page.on("console", lambda msg: page.console_errors.append(msg.text) if msg.type == "error" else None)  # type: ignore[attr-defined]
            try:
                yield page
            except BaseException:
                await page.screenshot(path=str(ARTIFACTS / f"{name}-failure.png"), full_page=True)
                raise
        finally:
            await browser.close()


def app_frame(page: Page) -> Frame:
    frame = next((f for f in page.frames if f.url.split("?")[0].endswith("/app")), None)
    assert frame is not None, [f.url for f in page.frames]
    return frame


async def refresh_until(frame: FrameLocator, selector: str, timeout: float = 15.0) -> None:
    """Click Refresh until `selector` shows up in the delivery log (the worker runs in the app's own thread)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await frame.get_by_role("button", name="Refresh").click()
        await asyncio.sleep(0.5)
        if await frame.locator(selector).count():
            return
    raise AssertionError(f"{selector} did not appear in the delivery log")


async def test_settings_page_in_the_dashboard(database_url, tmp_path, fake_saleor, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    async with running_stack(database_url, tmp_path, fake_saleor, fake_vtm) as stack, browser_page("settings-page") as page:
        await page.goto(stack.host_url)
        frame = page.frame_locator("#app")
        usd = frame.locator('article[data-channel="default-channel"]')
        await expect(usd).to_be_visible(timeout=15000)
        await expect(frame.locator('article[data-channel="channel-pln"]')).to_be_visible()
        await expect(usd.get_by_role("heading", name="Channel-USD")).to_be_visible()
        await expect(usd.get_by_text("No key", exact=True)).to_be_visible()

        # A malformed key: the error is shown next to the field, nothing is saved.
        key_input = usd.get_by_label("API key")
        await expect(key_input).to_have_attribute("type", "password")
        await key_input.fill("not a key")
        await key_input.press("Enter")  # keyboard submit
        error = usd.locator(".field-error").first
        await expect(error).to_contain_text("does not look like an API key")
        await expect(key_input).to_have_attribute("aria-invalid", "true")

        # Save a real key, with Save.
        await key_input.fill("vtm-key-usd-0123456789")
        await usd.get_by_label("Item ID sent for each line").select_option("variant-id")
        await usd.get_by_role("button", name="Save", exact=True).click()  # not the feed's "Save feed"
        await expect(usd.locator(".card-status:not(.feed-status)")).to_have_text("Saved.")
        await expect(key_input).to_have_value("")
        await expect(key_input).not_to_have_attribute("aria-invalid", "true")
        await expect(usd.get_by_text("A key ending in …6789 is saved.")).to_be_visible()
        await expect(usd.get_by_text("Key saved", exact=True)).to_be_visible()
        await page.wait_for_function(
            "window.notifications.some(n => n.status === 'success' && n.title === 'Settings saved')"
        )

        # The test event goes out with the stored key.
        await usd.get_by_role("button", name="Send test event").click()
        await expect(usd.locator(".card-status:not(.feed-status)")).to_contain_text("VTmarketing accepted the test event",
                                                                                  timeout=10000)
        await page.wait_for_function("window.notifications.some(n => n.title === 'Test event sent')")
        (test_event,) = fake_vtm.events
        assert test_event.api_key == "vtm-key-usd-0123456789"
        assert test_event.order_id.startswith("saleor-vtmarketing-test-")

        # A confirmed order that VTmarketing refuses shows up failed, with VTmarketing's reason.
        fake_vtm.fail_next(1, status=400, body=MISSING_EVENT)
        order = await stack.send_order()
        await refresh_until(frame, 'tr[data-status="failed"]')
        row = frame.locator("#log-body tr").filter(has_text=f"#{order['number']}")
        await expect(row).to_have_attribute("data-status", "failed")
        await expect(row).to_contain_text("Failed")
        await expect(row).to_contain_text("Missing event information")
        await row.locator("summary").click()
        await expect(row).to_contain_text("HTTP 400")
        await expect(usd.locator(".count-failed")).to_contain_text("1 failed")
        await page.locator("#app").screenshot(path=str(ARTIFACTS / "settings-page-failed.png"))

        # VTmarketing accepts again; Resend delivers it and the row turns delivered by itself.
        fake_vtm.accept_keys()
        await row.get_by_role("button", name=f"Resend order #{order['number']}").click()
        await expect(row).to_have_attribute("data-status", "delivered", timeout=15000)
        await expect(row).to_contain_text("Delivered")
        await expect(row).to_contain_text("Kept until")
        assert [e.order_id for e in fake_vtm.events_for(order["number"])] == [order["number"]]
        await expect(usd.locator(".count-delivered")).to_contain_text("1 delivered")
        await page.wait_for_function("window.notifications.some(n => n.title === 'Resending')")

        # Filters: status and channel.
        await frame.get_by_label("Status").select_option("failed")
        await frame.get_by_role("button", name="Apply filters").click()
        await expect(frame.locator("#log-empty")).to_be_visible()
        await frame.get_by_label("Status").select_option("")
        await frame.get_by_label("Channel", exact=True).select_option("default-channel")
        await frame.get_by_role("button", name="Apply filters").click()
        await expect(frame.locator("#log-body tr")).to_have_count(1)

        # AppBridge: notifyReady once per page load (the src was set twice), never in answer to a handshake,
        # even though the dashboard sent a handshake on load AND one per notifyReady.
        await page.wait_for_timeout(1000)
        received = await page.evaluate("window.received")
        ready = received.count("notifyReady")
        assert 1 <= ready <= 2, received
        assert await page.evaluate("window.handshakes") >= 2
        assert (await page.evaluate("window.received")).count("notifyReady") == ready
        frame_handle = app_frame(page)
        assert "theme=light" in frame_handle.url and "saleorApiUrl=" in frame_handle.url

        await frame.get_by_label("Channel", exact=True).select_option("")
        await frame.get_by_role("button", name="Apply filters").click()
        await expect(frame.locator("#log-body tr")).to_have_count(1)
        await page.locator("#app").screenshot(path=str(ARTIFACTS / "settings-page.png"))

        # The dashboard switches to dark: the page follows.
        body_light = await frame.locator("body").evaluate("el => getComputedStyle(el).backgroundColor")
        await page.evaluate("window.setTheme('dark')")
        await expect(frame.locator("html")).to_have_attribute("data-theme", "dark")
        body_dark = await frame.locator("body").evaluate("el => getComputedStyle(el).backgroundColor")
        assert body_light == "rgb(255, 255, 255)" and body_dark != body_light
        assert _luminance(body_dark) < 0.1
        text_dark = await frame.locator("#main h1").evaluate("el => getComputedStyle(el).color")
        assert _luminance(text_dark) > 0.7
        await page.locator("#app").screenshot(path=str(ARTIFACTS / "settings-page-dark.png"))
        await page.evaluate("window.setTheme('light')")
        await expect(frame.locator("html")).to_have_attribute("data-theme", "light")

        # A refreshed token is used from then on.
        await page.evaluate("t => window.sendTokenRefresh(t)", fake_saleor.dashboard_token(email="other@example.com"))
        await frame.get_by_role("button", name="Refresh").click()
        await expect(frame.locator("#alert")).to_be_hidden()

        csp_violations = [m for m in page.console_errors if "Content Security Policy" in m]  # type: ignore[attr-defined]
        assert csp_violations == []


async def test_staff_without_manage_apps_is_told_why(database_url, tmp_path, fake_saleor, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    async with running_stack(database_url, tmp_path, fake_saleor, fake_vtm) as stack, browser_page("settings-forbidden") as page:
        await page.goto(f"{stack.host_url}/?mode=staff")
        frame = page.frame_locator("#app")
        await expect(frame.locator("#alert")).to_contain_text("Manage apps permission", timeout=15000)
        await expect(frame.locator("html")).to_have_attribute("data-theme", "dark")
        await expect(frame.locator("article.channel")).to_have_count(0)
        await page.wait_for_function("window.notifications.some(n => n.status === 'error')")


async def test_outside_the_dashboard_the_page_explains_how_to_install(database_url, tmp_path, fake_saleor, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    async with running_stack(database_url, tmp_path, fake_saleor, fake_vtm) as stack, browser_page("settings-outside") as page:
        manifest_url = f"{stack.app_url}/api/manifest"

        # Opened directly, without any dashboard parameters.
        await page.goto(f"{stack.app_url}/app")
        await expect(page.get_by_role("heading", name="Open this app from the Saleor Dashboard")).to_be_visible()
        await expect(page.locator("#manifest-url")).to_have_text(manifest_url)
        await expect(page.locator("#main")).to_be_hidden()

        # Opened directly with the parameters (e.g. a copied iframe URL): no parent to talk to.
        await page.goto(f"{stack.app_url}/app?" + urlencode({"saleorApiUrl": fake_saleor.api_url, "theme": "dark"}))
        await expect(page.locator("#outside-reason")).to_contain_text("directly in the browser")
        await expect(page.locator("html")).to_have_attribute("data-theme", "dark")

        # Framed by something that never answers AppBridge: after a few seconds, the explanation.
        await page.goto(f"{stack.host_url}/?mode=silent")
        frame = page.frame_locator("#app")
        await expect(frame.locator("#connecting")).to_be_visible()
        await expect(frame.locator("#outside-reason")).to_contain_text("did not answer", timeout=10000)
        await expect(frame.locator("#manifest-url")).to_have_text(manifest_url)
        received = await page.evaluate("window.received")
        assert received.count("notifyReady") in (1, 2), received
        await page.locator("#app").screenshot(path=str(ARTIFACTS / "settings-page-outside.png"))
        assert [m for m in page.console_errors if "Content Security Policy" in m] == []  # type: ignore[attr-defined]


async def test_the_product_feed_on_the_settings_page(database_url, tmp_path, fake_saleor, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    from tests.feed.conftest import parse, stock_shop

    stock_shop(fake_saleor)
    async with running_stack(database_url, tmp_path, fake_saleor, fake_vtm, feed_schedule_seconds=0.5) as stack, \
            browser_page("settings-feed") as page:
        await page.context.grant_permissions(["clipboard-read", "clipboard-write"])
        await page.goto(stack.host_url)
        frame = page.frame_locator("#app")
        usd = frame.locator('article[data-channel="default-channel"]')
        feed = usd.locator("section.feed")
        await expect(feed).to_have_attribute("data-feed-state", "off", timeout=15000)
        await expect(feed.get_by_text("Off", exact=True)).to_be_visible()

        # The feed needs the channel's key: save one first.
        await usd.get_by_label("API key").fill("vtm-key-usd-0123456789")
        await usd.get_by_role("button", name="Save", exact=True).click()
        await expect(usd.locator(".card-status:not(.feed-status)")).to_have_text("Saved.")

        # Turn it on with a template; the preview shows one real product's URL while typing.
        await feed.get_by_label("Serve a product feed").check()
        template = feed.get_by_label("Product URL template")
        await template.fill("https://shop.example.com/products/{nope}")
        await expect(feed.locator(".feed-preview")).to_contain_text("Unknown placeholder {nope}")
        await template.fill("https://shop.example.com/products/{product_slug}?variant={variant_id}")
        await expect(feed.locator(".feed-preview")).to_contain_text(
            "Preview for Monospace Tee - S: https://shop.example.com/products/monospace-tee?variant=")
        # Colour and brand pickers list Saleor's product attributes (the likely ones chosen already).
        await expect(feed.get_by_label("Colour attribute")).to_have_value("color")
        await expect(feed.get_by_label("Brand attribute")).to_have_value("brand")
        await expect(feed.get_by_label("Brand attribute").locator("option")).to_have_count(4)  # none + 3
        await feed.get_by_role("button", name="Save feed").click()
        await expect(feed.locator(".feed-status")).to_contain_text("Saved.")

        # The worker builds it; the page follows until it is ready.
        await expect(feed.locator("[data-feed-badge]")).to_have_text("5 rows", timeout=30000)
        await expect(feed).to_have_attribute("data-feed-state", "ready")
        await expect(feed.locator(".feed-facts")).to_contain_text("Last built")
        url_input = feed.get_by_label("Feed URL (give it to VTmarketing)")
        url = await url_input.input_value()
        assert url.startswith(f"{stack.app_url}/api/feeds/") and url.endswith("/default-channel.csv")
        async with httpx.AsyncClient() as client:
            assert len(parse((await client.get(url)).text)) == 5

        # Copy the URL.
        await feed.get_by_role("button", name="Copy URL").click()
        await expect(feed.locator(".feed-status")).to_have_text("Feed URL copied.")
        assert await page.evaluate("navigator.clipboard.readText()") == url

        # Rebuild now.
        built_before = await feed.locator(".feed-facts").inner_text()
        await feed.get_by_role("button", name="Rebuild now").click()
        await expect(feed.locator(".feed-status")).to_have_text("Built: 5 rows.", timeout=30000)
        await expect(feed.locator(".feed-facts")).not_to_have_text(built_before)

        # A new URL: asked once more, then the old one stops working.
        await feed.get_by_role("button", name="New URL").click()
        await feed.get_by_role("button", name="Make a new URL").click()
        await expect(url_input).not_to_have_value(url)
        new_url = await url_input.input_value()
        await expect(feed.locator(".feed-status")).to_contain_text("New URL made")
        async with httpx.AsyncClient() as client:
            assert (await client.get(url)).status_code == 404
            assert (await client.get(new_url)).status_code == 200
        await page.locator("#app").screenshot(path=str(ARTIFACTS / "settings-page-feed.png"))
        assert [m for m in page.console_errors if "Content Security Policy" in m] == []  # type: ignore[attr-defined]


def _luminance(css_color: str) -> float:
    r, g, b = (int(v) / 255 for v in re.findall(r"\d+", css_color)[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b
