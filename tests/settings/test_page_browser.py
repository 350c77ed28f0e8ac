"""The settings page in a real browser (headless Chromium), framed by a fake Saleor Dashboard on another origin that
plays the dashboard's side of AppBridge, against the app served over real HTTP with its in-process worker.

Nothing here waits a fixed time: every step waits for a DOM state (Playwright's auto-waiting `expect`, or
`wait_for_function` on the page's own counters such as the number of polls it made), bounded by generous timeouts.
"""

from __future__ import annotations

import asyncio
import colorsys
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

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
WAIT_MS = 20000  # generous: the machine may be busy with other test runs
POLL_SECONDS = 0.25  # the page's poll interval in these tests (PAGE_POLL_SECONDS); 3 s by default

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's Chromium at /usr/bin/chromium (apt-get install -y chromium)"
)

try:
    from playwright.async_api import Frame, Page, async_playwright, expect
except ImportError:  # pragma: no cover - the test extra installs it
    pytestmark = pytest.mark.skip(reason="playwright (Python) is not installed")


def host_app(saleor: FakeSaleor, app_url: str) -> Starlette:
    """The fake dashboard: one page framing the app. `?mode=silent` never answers AppBridge (no handshake);
    `?mode=staff` hands over the token of a staff user without MANAGE_APPS, in the dark theme; `?locale=de` sends
    that locale (`localeChanged`) after the handshake, as the real dashboard does."""

    async def page(request: Request) -> HTMLResponse:
        mode = request.query_params.get("mode")
        permissions = ["MANAGE_ORDERS"] if mode == "staff" else ["MANAGE_APPS", "MANAGE_ORDERS"]
        config = {
            "appUrl": f"{app_url}/app",
            "query": urlencode({"domain": saleor.domain, "saleorApiUrl": saleor.api_url, "id": saleor.app_id}),
            "theme": "dark" if mode == "staff" else "light",
            "token": saleor.dashboard_token(user_permissions=permissions),
            "answer": mode != "silent",
            "locale": request.query_params.get("locale"),
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

    async def graphql(self, query: str, variables: dict | None = None) -> dict:
        """The settings API as the page calls it (a dashboard token of an admin)."""
        headers = {"Authorization-Bearer": self.saleor.dashboard_token(), "Saleor-Api-Url": self.saleor.api_url}
        async with httpx.AsyncClient(base_url=self.app_url) as client:
            response = await client.post("/graphql", json={"query": query, "variables": variables or {}}, headers=headers)
        assert response.status_code == 200 and "errors" not in response.json(), response.text
        return response.json()["data"]


@asynccontextmanager
async def running_stack(
    database_url: str, tmp_path: Path, saleor: FakeSaleor, vtm: FakeVTMarketing, **overrides: Any
) -> AsyncIterator[Stack]:
    port = free_port()
    app_url = f"http://127.0.0.1:{port}"
    overrides.setdefault("page_poll_seconds", POLL_SECONDS)
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
async def browser_page(name: str, **context_options: Any) -> AsyncIterator[Page]:
    """A fresh page; on failure a full-page screenshot lands in tests/artifacts/<name>-failure.png. The page keeps
    `console_errors` and `responses` (url, status, content type) for assertions."""
    ARTIFACTS.mkdir(exist_ok=True)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 900}, **context_options)
            page = await context.new_page()
            page.console_errors = []  # type: ignore[attr-defined]
            page.responses = []  # type: ignore[attr-defined]
            page.on("console", lambda msg: page.console_errors.append(msg.text) if msg.type == "error" else None)  # type: ignore[attr-defined]
            page.on("response", lambda r: page.responses.append((r.url, r.status, r.headers.get("content-type", ""))))  # type: ignore[attr-defined]
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


async def polls(page: Page) -> int:
    return int(await app_frame(page).locator("#log-status").get_attribute("data-polls") or 0)


async def wait_for_polls(page: Page, count: int, timeout: float = WAIT_MS) -> None:
    """Until the page has asked for news `count` times in all (its own counter, not a clock)."""
    await app_frame(page).wait_for_function(
        "n => Number(document.getElementById('log-status').dataset.polls || 0) >= n", arg=count, timeout=timeout
    )


async def until(condition: Callable[[], bool], timeout: float = WAIT_MS / 1000) -> None:
    """Until `condition` (a state on this side, e.g. what a route handler saw) holds; bounded, never a fixed wait."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


async def error_notifications(page: Page) -> list:
    return await page.evaluate("window.notifications.filter(n => n.status === 'error')")


def css_rgb(h: float, s: float, l: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hls_to_rgb(h / 360, l / 100, s / 100)
    return round(r * 255), round(g * 255), round(b * 255)


def parse_rgb(css_color: str) -> tuple[int, ...]:
    return tuple(int(float(v)) for v in re.findall(r"[\d.]+", css_color)[:3])


def assert_color(css_color: str, expected: tuple[int, int, int]) -> None:
    actual = parse_rgb(css_color)
    assert all(abs(a - e) <= 1 for a, e in zip(actual, expected)), (css_color, expected)


def _luminance(css_color: str) -> float:
    r, g, b = (v / 255 for v in parse_rgb(css_color))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


# --- the merchant's first hour --------------------------------------------------------------------------------


async def test_settings_page_in_the_dashboard(database_url, tmp_path, fake_saleor, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    async with running_stack(database_url, tmp_path, fake_saleor, fake_vtm) as stack, browser_page("settings-page") as page:
        await page.goto(stack.host_url)
        frame = page.frame_locator("#app")
        usd = frame.locator('article[data-channel="default-channel"]')
        await expect(usd).to_be_visible(timeout=WAIT_MS)
        await expect(frame.locator('article[data-channel="channel-pln"]')).to_be_visible()
        await expect(usd.get_by_role("heading", name="Channel-USD")).to_be_visible()
        await expect(usd.get_by_text("No key", exact=True)).to_be_visible()

        # Without a key, sending is off and cannot be turned on.
        switch = usd.get_by_role("switch", name="Send orders to VTmarketing")
        await expect(switch).not_to_be_checked()
        await expect(switch).to_be_disabled()
        await expect(usd.get_by_text("Save an API key to turn sending on.")).to_be_visible()

        # A malformed key: the error is shown once, next to the field; nothing is saved.
        key_input = usd.get_by_label("API key")
        await expect(key_input).to_have_attribute("type", "password")
        await expect(usd.get_by_role("button", name="Save", exact=True)).to_be_disabled()  # nothing to save yet
        await key_input.fill("not a key")
        await expect(usd.get_by_text("Unsaved changes")).to_be_visible()
        await key_input.press("Enter")  # keyboard submit
        await expect(usd.locator(".field-error:visible")).to_have_count(1)
        await expect(usd.locator(".field-error:visible")).to_contain_text("does not look like an API key")
        await expect(key_input).to_have_attribute("aria-invalid", "true")
        await expect(usd.locator(".card-status:not(.feed-status)")).to_have_text("")
        await expect(frame.locator("#alert")).to_be_hidden()
        assert await error_notifications(page) == []

        # Save a real key, with Save: "Saved." because something was saved.
        await key_input.fill("vtm-key-usd-0123456789")
        await usd.get_by_label("Item ID sent for each line").select_option("variant-id")
        await usd.get_by_role("button", name="Save", exact=True).click()  # not the feed's "Save feed"
        await expect(usd.locator(".card-status:not(.feed-status)")).to_have_text("Saved.")
        await expect(key_input).to_have_value("")
        await expect(key_input).not_to_have_attribute("aria-invalid", "true")
        await expect(usd.get_by_text("A key ending in …6789 is saved.")).to_be_visible()
        badge = usd.locator(".key-badge")
        await expect(badge).to_have_text("Key saved")  # not green: VTmarketing has not said anything about it yet
        await expect(badge).not_to_have_class(re.compile("badge-delivered"))
        await expect(switch).to_be_enabled()
        await expect(switch).to_be_checked()
        await expect(usd.get_by_text("Unsaved changes")).to_be_hidden()
        await page.wait_for_function("window.notifications.some(n => n.status === 'success' && n.title === 'Settings saved')")
        # Changing a field and changing it back leaves nothing to save.
        await usd.get_by_label("Order ID sent").select_option("id")
        await expect(usd.get_by_role("button", name="Save", exact=True)).to_be_enabled()
        await usd.get_by_label("Order ID sent").select_option("number")
        await expect(usd.get_by_role("button", name="Save", exact=True)).to_be_disabled()

        # The test event says what it creates before anything is sent.
        await usd.get_by_role("button", name="Send test event").click()
        confirm = usd.locator(".test-confirm")
        await expect(confirm).to_be_visible()
        await expect(confirm).to_contain_text("creates a test contact (test@saleor-vtmarketing.invalid) and a test sale")
        await expect(confirm).to_contain_text("VTmarketing account")
        assert fake_vtm.requests == []  # nothing sent yet
        await confirm.get_by_role("button", name="Cancel").click()
        await expect(confirm).to_be_hidden()
        assert fake_vtm.requests == []
        await usd.get_by_role("button", name="Send test event").click()
        await confirm.get_by_role("button", name="Send the test event").click()
        await expect(usd.locator(".card-status:not(.feed-status)")).to_contain_text("VTmarketing accepted the test event", timeout=WAIT_MS)
        await page.wait_for_function("window.notifications.some(n => n.title === 'Test event sent')")
        (test_event,) = fake_vtm.events
        assert test_event.api_key == "vtm-key-usd-0123456789"
        assert test_event.order_id.startswith("saleor-vtmarketing-test-")
        await expect(badge).to_have_text("Key works")
        await expect(usd.locator(".key-status")).to_contain_text("VTmarketing accepted a test event with this key.")

        # A confirmed order that VTmarketing refuses shows up by itself (no Refresh), failed, with VTmarketing's
        # reason, the channel's name, and the per-channel counts.
        fake_vtm.fail_next(1, status=400, body=MISSING_EVENT)
        order = await stack.send_order()
        row = frame.locator("#log-body tr").filter(has_text=f"#{order['number']}")
        await expect(row).to_have_attribute("data-status", "failed", timeout=WAIT_MS)
        await expect(row).to_contain_text("Failed")
        await expect(row).to_contain_text("Missing event information")
        await expect(row.locator(".col-channel")).to_contain_text("Channel-USD")
        await expect(row.locator(".col-channel .sub")).to_have_text("default-channel")
        await expect(usd.locator(".count-failed")).to_contain_text("1 failed", timeout=WAIT_MS)
        await expect(frame.locator("#log-status")).to_have_attribute("data-state", "live")

        # The attempts list the merchant opens stays open while the log keeps polling.
        await row.locator("summary").click()
        await expect(row).to_contain_text("HTTP 400")
        await wait_for_polls(page, await polls(page) + 4)
        await expect(row.locator("details.attempts")).to_have_attribute("open", "")
        await page.locator("#app").screenshot(path=str(ARTIFACTS / "settings-page-failed.png"))

        # VTmarketing accepts again; Resend delivers it and the row turns delivered by itself. The order keeps its
        # received time (a resend does not rewrite history) and says when it was resent; the attempts list that
        # was open is still open in the updated row.
        received_text = await row.locator(".col-received > time").text_content()
        received_iso = await row.locator(".col-received > time").get_attribute("datetime")
        fake_vtm.accept_keys()
        await row.get_by_role("button", name=f"Resend order #{order['number']}").click()
        await expect(row).to_have_attribute("data-status", "delivered", timeout=WAIT_MS)
        await expect(row).to_contain_text("Delivered")
        await expect(row).to_contain_text("Kept until")
        await expect(row.locator(".col-received > time")).to_have_text(received_text)
        assert await row.locator(".col-received > time").get_attribute("datetime") == received_iso
        await expect(row.locator(".resent")).to_contain_text("Resent")
        await expect(row.locator("details.attempts")).to_have_attribute("open", "")
        await expect(row.locator("summary")).to_have_text("2 attempts")
        assert [e.order_id for e in fake_vtm.events_for(order["number"])] == [order["number"]]
        await expect(usd.locator(".count-delivered")).to_contain_text("1 delivered", timeout=WAIT_MS)
        await page.wait_for_function("window.notifications.some(n => n.title === 'Resending')")

        # Filters: status and channel (named).
        await expect(frame.locator("#filter-channel option[value='default-channel']")).to_have_text("Channel-USD (default-channel)")
        await frame.get_by_label("Status").select_option("failed")
        await frame.get_by_role("button", name="Apply filters").click()
        await expect(frame.locator("#log-empty")).to_be_visible()
        await frame.get_by_label("Status").select_option("")
        await frame.get_by_label("Channel", exact=True).select_option("default-channel")
        await frame.get_by_role("button", name="Apply filters").click()
        await expect(frame.locator("#log-body tr")).to_have_count(1)

        # AppBridge: notifyReady once per page load (the src was set twice), never in answer to a handshake,
        # even though the dashboard sent a handshake on load AND one per notifyReady.
        received = await page.evaluate("window.received")
        ready = received.count("notifyReady")
        assert 1 <= ready <= 2, received
        assert await page.evaluate("window.handshakes") >= 2
        await wait_for_polls(page, await polls(page) + 2)
        assert (await page.evaluate("window.received")).count("notifyReady") == ready
        frame_handle = app_frame(page)
        assert "theme=light" in frame_handle.url and "saleorApiUrl=" in frame_handle.url

        await frame.get_by_label("Channel", exact=True).select_option("")
        await frame.get_by_role("button", name="Apply filters").click()
        await expect(frame.locator("#log-body tr")).to_have_count(1)
        await page.locator("#app").screenshot(path=str(ARTIFACTS / "settings-page.png"))

        # A refreshed token is used from then on.
        await page.evaluate("t => window.sendTokenRefresh(t)", fake_saleor.dashboard_token(email="other@example.com"))
        await frame.get_by_role("button", name="Refresh").click()
        await wait_for_polls(page, await polls(page) + 2)
        await expect(frame.locator("#alert")).to_be_hidden()
        await expect(frame.locator("#log-status")).to_have_attribute("data-state", "live")

        assert await error_notifications(page) == []
        csp_violations = [m for m in page.console_errors if "Content Security Policy" in m]  # type: ignore[attr-defined]
        assert csp_violations == []


async def test_the_page_looks_like_the_dashboard(database_url, tmp_path, fake_saleor, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    """Inter served by the app (not assumed on the machine), macaw-ui's sizes, accent and dark palette."""
    # Reduced motion: the page then has no transitions, so a computed colour is the final one, not one mid-fade.
    async with running_stack(database_url, tmp_path, fake_saleor, fake_vtm) as stack, \
            browser_page("settings-look", reduced_motion="reduce") as page:
        await page.goto(stack.host_url)
        frame = page.frame_locator("#app")
        usd = frame.locator('article[data-channel="default-channel"]')
        await expect(usd).to_be_visible(timeout=WAIT_MS)
        handle = app_frame(page)

        # Inter comes from the app itself.
        loaded = await handle.evaluate(
            "async () => { await document.fonts.ready; return [...document.fonts]"
            ".filter(f => f.family.replace(/[\"']/g, '') === 'Inter' && f.status === 'loaded').map(f => f.weight); }"
        )
        assert "400" in loaded, loaded
        fonts = [r for r in page.responses if "/static/fonts/" in r[0]]  # type: ignore[attr-defined]
        assert fonts and all(status == 200 and kind == "font/woff2" for _, status, kind in fonts), fonts
        assert all(r[0].startswith(stack.app_url) for r in fonts)
        body_font = await frame.locator("body").evaluate("el => getComputedStyle(el).fontFamily")
        assert body_font.split(",")[0].strip("\"' ") == "Inter"
        assert await frame.locator("body").evaluate("el => getComputedStyle(el).fontSize") == "14px"  # bodyMedium

        # The switch's accent is the dashboard's (macaw-ui background.accent1), light and dark.
        await fake_saleor_key(stack)
        await page.reload()
        switch = usd.get_by_role("switch", name="Send orders to VTmarketing")
        await expect(switch).to_be_checked(timeout=WAIT_MS)
        assert_color(await switch.evaluate("el => getComputedStyle(el).backgroundColor"), css_rgb(215, 100, 51))

        # Dark: the dashboard's blue-grey (background.default1), white text; not near-black.
        body_light = await frame.locator("body").evaluate("el => getComputedStyle(el).backgroundColor")
        assert_color(body_light, (255, 255, 255))
        await page.evaluate("window.setTheme('dark')")
        await expect(frame.locator("html")).to_have_attribute("data-theme", "dark")
        body_dark = await frame.locator("body").evaluate("el => getComputedStyle(el).backgroundColor")
        assert_color(body_dark, css_rgb(232, 17, 18))
        text_dark = await frame.locator("#main h1").evaluate("el => getComputedStyle(el).color")
        assert _luminance(text_dark) > 0.9
        assert_color(await switch.evaluate("el => getComputedStyle(el).backgroundColor"), css_rgb(215, 100, 62))
        await page.locator("#app").screenshot(path=str(ARTIFACTS / "settings-page-dark.png"))
        await page.evaluate("window.setTheme('light')")
        await expect(frame.locator("html")).to_have_attribute("data-theme", "light")
        assert [m for m in page.console_errors if "Content Security Policy" in m] == []  # type: ignore[attr-defined]


async def fake_saleor_key(stack: Stack, channel: str = "default-channel", key: str = "vtm-key-usd-0123456789") -> None:
    data = await stack.graphql(
        "mutation($input: ChannelSettingsInput!) { updateChannelSettings(input: $input) { ok } }",
        {"input": {"channel": channel, "apiKey": key}},
    )
    assert data["updateChannelSettings"]["ok"] is True


# --- the key's status on the card -----------------------------------------------------------------------------


async def test_a_refused_key_shows_on_the_card_until_a_success_clears_it(database_url, tmp_path, fake_saleor, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    async with running_stack(database_url, tmp_path, fake_saleor, fake_vtm) as stack, browser_page("settings-key") as page:
        await page.goto(stack.host_url)
        frame = page.frame_locator("#app")
        usd = frame.locator('article[data-channel="default-channel"]')
        await expect(usd).to_be_visible(timeout=WAIT_MS)
        key_input = usd.get_by_label("API key")
        await key_input.fill("vtm-key-wrong-0123456789")
        await usd.get_by_role("button", name="Save", exact=True).click()
        await expect(usd.locator(".card-status:not(.feed-status)")).to_have_text("Saved.")
        badge = usd.locator(".key-badge")
        key_status = usd.locator(".key-status")

        # VTmarketing refuses the key for an order: the card says so by itself (not a green "Key saved"), once.
        fake_vtm.accept_keys("vtm-key-right-0123456789")
        order = await stack.send_order()
        await expect(badge).to_have_text("Key refused", timeout=WAIT_MS)
        await expect(badge).to_have_class(re.compile("badge-failed"))
        await expect(key_status).to_contain_text(f"VTmarketing refused this key for order #{order['number']}")
        await expect(key_status).to_contain_text("HTTP 401")
        await expect(key_status).to_contain_text("Paste a valid key and save")
        await expect(usd.locator(".field-error:visible")).to_have_count(0)
        await expect(usd.locator(".card-status:not(.feed-status)")).not_to_contain_text("refused")
        await expect(frame.locator("#alert")).to_be_hidden()
        # ...and the dashboard's problem list names the channel as the merchant knows it.
        await until(lambda: "vtmarketing-key-rejected:default-channel" in fake_saleor.problems)  # reported after settling
        problem = fake_saleor.problems["vtmarketing-key-rejected:default-channel"]
        assert "Channel-USD (default-channel)" in problem, problem
        await page.locator("#app").screenshot(path=str(ARTIFACTS / "settings-page-key-refused.png"))

        # A test event with the stored key that VTmarketing accepts clears it.
        fake_vtm.accept_keys()
        await usd.get_by_role("button", name="Send test event").click()
        await usd.get_by_role("button", name="Send the test event").click()
        await expect(badge).to_have_text("Key works", timeout=WAIT_MS)
        await expect(key_status).to_contain_text("accepted a test event")

        # A test event VTmarketing refuses marks it refused; the error shows in the key's status only.
        fake_vtm.accept_keys("another-key")
        await usd.get_by_role("button", name="Send test event").click()
        await usd.get_by_role("button", name="Send the test event").click()
        await expect(badge).to_have_text("Key refused", timeout=WAIT_MS)
        await expect(key_status).to_contain_text("refused this key for a test event")
        await expect(usd.locator(".card-status:not(.feed-status)")).to_have_text("")
        await expect(usd.locator(".field-error:visible")).to_have_count(0)

        # A delivered order clears it, by itself.
        fake_vtm.accept_keys()
        later = await stack.send_order()
        await expect(badge).to_have_text("Key works", timeout=WAIT_MS)
        await expect(key_status).to_contain_text(f"VTmarketing accepted order #{later['number']} with this key.")

        # A new key starts unknown again.
        await key_input.fill("vtm-key-new-9876543210")
        await usd.get_by_role("button", name="Save", exact=True).click()
        await expect(usd.locator(".card-status:not(.feed-status)")).to_have_text("Saved.")
        await expect(badge).to_have_text("Key saved")
        await expect(key_status).to_be_hidden()
        assert await error_notifications(page) == []


# --- the switch -------------------------------------------------------------------------------------------------


async def test_the_switch_saves_at_once(database_url, tmp_path, fake_saleor, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    async with running_stack(database_url, tmp_path, fake_saleor, fake_vtm) as stack, browser_page("settings-switch") as page:
        await fake_saleor_key(stack)
        await page.goto(stack.host_url)
        frame = page.frame_locator("#app")
        usd = frame.locator('article[data-channel="default-channel"]')
        switch = usd.get_by_role("switch", name="Send orders to VTmarketing")
        await expect(switch).to_be_checked(timeout=WAIT_MS)
        pln_switch = frame.locator('article[data-channel="channel-pln"]').get_by_role("switch", name="Send orders to VTmarketing")
        await expect(pln_switch).to_be_disabled()
        await expect(pln_switch).not_to_be_checked()

        # Off: saved at once (no Save press), and the form has nothing unsaved.
        await switch.click()
        await expect(usd.locator(".card-status:not(.feed-status)")).to_contain_text("Sending is off", timeout=WAIT_MS)
        await expect(usd.get_by_text("Unsaved changes")).to_be_hidden()
        await expect(usd.get_by_role("button", name="Save", exact=True)).to_be_disabled()
        stored = await stack.graphql("{ storedChannels { slug settings { enabled } } }")
        assert {c["slug"]: c["settings"]["enabled"] for c in stored["storedChannels"]}["default-channel"] is False
        order = await stack.send_order()
        row = frame.locator("#log-body tr").filter(has_text=f"#{order['number']}")
        await expect(row).to_have_attribute("data-status", "skipped", timeout=WAIT_MS)
        await expect(row).to_contain_text("sending is turned off")

        # A fresh load shows what was stored.
        await page.reload()
        await expect(switch).not_to_be_checked(timeout=WAIT_MS)
        await switch.click()
        await expect(usd.locator(".card-status:not(.feed-status)")).to_contain_text("Sending is on", timeout=WAIT_MS)
        await page.reload()
        await expect(switch).to_be_checked(timeout=WAIT_MS)
        assert fake_vtm.events == []  # the skipped order was never sent
        assert await error_notifications(page) == []


# --- the live log -----------------------------------------------------------------------------------------------


async def test_polling_never_stops_through_errors_token_refreshes_and_a_hidden_tab(database_url, tmp_path, fake_saleor, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    async with running_stack(database_url, tmp_path, fake_saleor, fake_vtm, page_poll_seconds=0.1) as stack, \
            browser_page("settings-polling") as page:
        await fake_saleor_key(stack)
        await page.goto(stack.host_url)
        frame = page.frame_locator("#app")
        status = frame.locator("#log-status")
        await expect(status).to_have_attribute("data-state", "live", timeout=WAIT_MS)
        handle = app_frame(page)

        async def order_shows_up() -> dict:
            order = await stack.send_order()
            row = frame.locator("#log-body tr").filter(has_text=f"#{order['number']}")
            await expect(row).to_have_attribute("data-status", "delivered", timeout=WAIT_MS)
            return order

        # Long after the old page gave up (60 polls, or nothing left open), it still polls and shows new orders.
        await order_shows_up()
        await wait_for_polls(page, 70, timeout=60000)
        await order_shows_up()

        # The app cannot be reached: the log says so in one place and keeps trying, then catches up by itself.
        failed: list[str] = []

        async def unreachable(route) -> None:  # type: ignore[no-untyped-def]
            failed.append(route.request.url)
            await route.abort("connectionrefused")

        await page.route("**/graphql", unreachable)
        await expect(status).to_have_attribute("data-state", "retrying", timeout=WAIT_MS)
        await expect(status).to_contain_text("Trying again by itself")
        during = await stack.send_order()
        refused_so_far = len(failed)
        await until(lambda: len(failed) >= refused_so_far + 3)  # it keeps trying (backing off), it does not stop
        await expect(status).to_have_attribute("data-state", "retrying")
        assert int(await status.get_attribute("data-next-poll-ms")) > 100  # backing off
        await page.unroute("**/graphql", unreachable)
        row = frame.locator("#log-body tr").filter(has_text=f"#{during['number']}")
        await expect(row).to_have_attribute("data-status", "delivered", timeout=WAIT_MS)
        await expect(status).to_have_attribute("data-state", "live")
        await expect(frame.locator("#alert")).to_be_hidden()  # shown once, where it belongs: the status line
        assert await error_notifications(page) == []

        # The dashboard's token expires: the page waits for the refresh and goes on with the new token.
        await page.evaluate("t => window.sendTokenRefresh(t)", fake_saleor.dashboard_token(exp_in=-10))
        await expect(status).to_have_attribute("data-state", "waiting-token", timeout=WAIT_MS)
        waiting = await stack.send_order()
        before = await polls(page)
        await wait_for_polls(page, before + 2)  # still asking, with the expired token
        await expect(status).to_have_attribute("data-state", "waiting-token")
        await page.evaluate("t => window.sendTokenRefresh(t)", fake_saleor.dashboard_token())
        row = frame.locator("#log-body tr").filter(has_text=f"#{waiting['number']}")
        await expect(row).to_have_attribute("data-status", "delivered", timeout=WAIT_MS)
        await expect(status).to_have_attribute("data-state", "live")

        # A hidden tab polls ten times less often; back on the tab it catches up at once.
        await expect(status).to_have_attribute("data-next-poll-ms", "100")
        await handle.evaluate(
            "() => { Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => 'hidden'});"
            " document.dispatchEvent(new Event('visibilitychange')); }"
        )
        await expect(status).to_have_attribute("data-next-poll-ms", "1000", timeout=WAIT_MS)
        hidden_at = await polls(page)
        await handle.evaluate(
            "() => { Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => 'visible'});"
            " document.dispatchEvent(new Event('visibilitychange')); }"
        )
        await wait_for_polls(page, hidden_at + 1)
        await expect(status).to_have_attribute("data-next-poll-ms", "100", timeout=WAIT_MS)
        await order_shows_up()


# --- one time zone, the merchant's language ---------------------------------------------------------------------


async def test_times_are_in_the_merchants_time_zone_and_language(database_url, tmp_path, fake_saleor, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    zone = ZoneInfo("Asia/Kolkata")  # UTC+05:30: no time in it can be mistaken for a UTC one
    async with running_stack(
        database_url, tmp_path, fake_saleor, fake_vtm, delivery_retry_base_seconds=3600, delivery_retry_max_seconds=7200
    ) as stack, browser_page("settings-time", timezone_id="Asia/Kolkata", locale="en-US") as page:
        await fake_saleor_key(stack)
        fake_vtm.fail_next(1, status=503)
        order = await stack.send_order()
        await page.goto(f"{stack.host_url}/?locale=de")
        frame = page.frame_locator("#app")
        row = frame.locator("#log-body tr").filter(has_text=f"#{order['number']}")
        await expect(row).to_have_attribute("data-status", "retrying", timeout=WAIT_MS)
        await expect(frame.locator("html")).to_have_attribute("data-locale", "de")

        # The reason holds no time of its own; the next try is shown in the merchant's zone and language.
        reason = await row.locator(".reason p").first.text_content()
        assert "503" in reason and "UTC" not in reason and "next try" not in reason.lower(), reason
        next_try = row.locator(".next-try time")
        next_iso = await next_try.get_attribute("datetime")
        local = datetime.fromisoformat(next_iso).astimezone(zone)
        await expect(next_try).to_have_text(f"{local:%d.%m.%Y}, {local:%H:%M:%S}")
        received = row.locator(".col-received > time")
        received_local = datetime.fromisoformat(await received.get_attribute("datetime")).astimezone(zone)
        await expect(received).to_have_text(f"{received_local:%d.%m.%Y}, {received_local:%H:%M:%S}")
        await expect(frame.locator("#log-retention")).to_contain_text(re.compile(r"Asia/(Kolkata|Calcutta)"))  # ICU's name

        # The dashboard switches language: every date follows, in place (an open attempts list stays open).
        await row.locator("summary").click()
        await page.evaluate("window.setLocale('en-GB')")
        await expect(next_try).to_have_text(f"{local.day} {local:%b %Y}, {local:%H:%M:%S}")
        await expect(row.locator("details.attempts")).to_have_attribute("open", "")
        attempt_time = row.locator(".attempts time").first
        attempt_local = datetime.fromisoformat(await attempt_time.get_attribute("datetime")).astimezone(zone)
        await expect(attempt_time).to_have_text(f"{attempt_local.day} {attempt_local:%b %Y}, {attempt_local:%H:%M:%S}")


# --- who may configure, and outside the dashboard ---------------------------------------------------------------


async def test_staff_without_manage_apps_is_told_why(database_url, tmp_path, fake_saleor, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    async with running_stack(database_url, tmp_path, fake_saleor, fake_vtm) as stack, browser_page("settings-forbidden") as page:
        await page.goto(f"{stack.host_url}/?mode=staff")
        frame = page.frame_locator("#app")
        await expect(frame.locator("#alert")).to_contain_text("Manage apps permission", timeout=WAIT_MS)
        await expect(frame.locator("html")).to_have_attribute("data-theme", "dark")
        await expect(frame.locator("article.channel")).to_have_count(0)
        assert await error_notifications(page) == []  # said once, on the page


async def test_outside_the_dashboard_the_page_explains_how_to_install(database_url, tmp_path, fake_saleor, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    async with running_stack(database_url, tmp_path, fake_saleor, fake_vtm) as stack, browser_page("settings-outside") as page:
        manifest_url = f"{stack.app_url}/api/manifest"

        # Opened directly, without any dashboard parameters.
        await page.goto(f"{stack.app_url}/app")
        await expect(page.get_by_role("heading", name="Open this app from the Saleor Dashboard")).to_be_visible()
        await expect(page.locator("#manifest-url")).to_have_text(manifest_url)
        await expect(page.locator("#main")).to_be_hidden()
        # Both install paths: current dashboards (Extensions) and older ones (Apps).
        current = page.locator("#install-current")
        await expect(current).to_contain_text("Extensions")
        await expect(current).to_contain_text("Add Extension")
        await expect(current).to_contain_text("Install from manifest")
        older = page.locator("#install-older")
        await expect(older).to_contain_text("Apps")
        await expect(older).to_contain_text("Install external app")

        # Opened directly with the parameters (e.g. a copied iframe URL): no parent to talk to.
        await page.goto(f"{stack.app_url}/app?" + urlencode({"saleorApiUrl": fake_saleor.api_url, "theme": "dark"}))
        await expect(page.locator("#outside-reason")).to_contain_text("directly in the browser")
        await expect(page.locator("html")).to_have_attribute("data-theme", "dark")

        # Framed by something that never answers AppBridge: after a few seconds, the explanation.
        await page.goto(f"{stack.host_url}/?mode=silent")
        frame = page.frame_locator("#app")
        await expect(frame.locator("#connecting")).to_be_visible()
        await expect(frame.locator("#outside-reason")).to_contain_text("did not answer", timeout=WAIT_MS)
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


async def test_a_rate_limited_test_event_tells_the_merchant_why(database_url, tmp_path, fake_saleor, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    """Issue 12: the settings API answers a 6th test event within a minute with 429; the page shows its message."""
    from saleor_app.context import TEST_EVENTS_PER_MINUTE

    async with running_stack(database_url, tmp_path, fake_saleor, fake_vtm) as stack, browser_page("test-event-429") as page:
        await page.goto(stack.host_url)
        usd = page.frame_locator("#app").locator('article[data-channel="default-channel"]')
        await expect(usd).to_be_visible(timeout=15000)
        await usd.get_by_label("API key").fill("vtm-key-usd-0123456789")  # tried before saving it
        status = usd.locator(".card-status:not(.feed-status)")
        for _ in range(TEST_EVENTS_PER_MINUTE):
            await usd.get_by_role("button", name="Send test event").click()
            await usd.get_by_role("button", name="Send the test event").click()  # the page asks first
            await expect(status).to_contain_text("VTmarketing accepted the test event", timeout=10000)
            await expect(usd.get_by_role("button", name="Send test event")).to_be_enabled()
        await usd.get_by_role("button", name="Send test event").click()
        await usd.get_by_role("button", name="Send the test event").click()
        await expect(status).to_contain_text("Too many test events", timeout=10000)
        await expect(status).to_contain_text("Try again in")
        assert not await error_notifications(page)  # said once, on the card, not again as a toast
        assert len(fake_vtm.requests) == TEST_EVENTS_PER_MINUTE
