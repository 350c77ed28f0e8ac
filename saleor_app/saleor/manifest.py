"""The app manifest, generated from the same webhook declarations the handlers are registered from."""

from __future__ import annotations

from dataclasses import dataclass

from saleor_app import __version__
from saleor_app.saleor.documents import load_document

# Saleor keeps `saleor.*` identifiers for its own apps; ours is in the vendor's name.
APP_ID = "vtmarketing.saleor-app"
APP_NAME = "VTmarketing"
ABOUT = (
    "Sends every confirmed order to VTmarketing as a confirmation event, in real time, with one VTmarketing API key "
    "per sales channel. Orders are stored before Saleor gets its answer and sent by a worker that retries "
    "VTmarketing outages for 24 hours, so none is lost and none is sent twice; a delivery log shows every order's "
    "state, the reason in plain words and a Resend button."
)
# Public pages the manifest points at (served by saleor_app/web/router.py).
HOME_PATH = "/"
LOGO_PATH = "/brand/logo.png"
PERMISSIONS = ["MANAGE_ORDERS"]
# 3.20 is the oldest line whose schema our documents validate against; tokenTargetUrl is always sent (≤3.22 needs it).
REQUIRED_SALEOR_VERSION = ">=3.20 <4"


@dataclass(frozen=True)
class WebhookDefinition:
    """One webhook: its Saleor event, its subscription document and the path its handler is mounted on."""

    name: str
    event: str  # Saleor's async event enum, e.g. ORDER_CONFIRMED
    path: str  # under APP_URL
    document: str  # file in manifest/

    @property
    def header_event(self) -> str:
        """How Saleor names the event in the `Saleor-Event` header."""
        return self.event.lower()

    @property
    def query(self) -> str:
        return load_document(self.document)


ORDER_CONFIRMED = WebhookDefinition(
    name="Order confirmed → VTmarketing",
    event="ORDER_CONFIRMED",
    path="/api/webhooks/order-confirmed",
    document="order_confirmed.subscription.graphql",
)
# Own lifecycle events reach the app from Saleor 3.23.5 on; earlier, a refused token tells us instead.
APP_DELETED = WebhookDefinition(
    name="App deleted",
    event="APP_DELETED",
    path="/api/webhooks/app-deleted",
    document="app_deleted.subscription.graphql",
)
WEBHOOKS = (ORDER_CONFIRMED, APP_DELETED)


def manifest_url(app_url: str) -> str:
    """What an operator pastes into the dashboard to install the app."""
    return f"{app_url.rstrip('/')}/api/manifest"


def build_manifest(app_url: str) -> dict:
    base = app_url.rstrip("/")
    return {
        "id": APP_ID,
        "name": APP_NAME,
        "version": __version__,
        "about": ABOUT,
        "author": "saleor-vtmarketing",
        "permissions": PERMISSIONS,
        "appUrl": f"{base}/app",
        "tokenTargetUrl": f"{base}/api/register",
        "homepageUrl": f"{base}{HOME_PATH}",
        "supportUrl": f"{base}{HOME_PATH}#support",
        "brand": {"logo": {"default": f"{base}{LOGO_PATH}"}},
        "requiredSaleorVersion": REQUIRED_SALEOR_VERSION,
        "webhooks": [
            {
                "name": hook.name,
                "asyncEvents": [hook.event],
                "query": hook.query,
                "targetUrl": f"{base}{hook.path}",
                "isActive": True,
            }
            for hook in WEBHOOKS
        ],
    }
