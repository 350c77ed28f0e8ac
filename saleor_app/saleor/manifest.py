"""The app manifest, generated from the same webhook declarations the handlers are registered from."""

from __future__ import annotations

from dataclasses import dataclass

from saleor_app import __version__
from saleor_app.saleor.documents import load_document

APP_ID = "saleor.app.vtmarketing"
APP_NAME = "VTmarketing"
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


def build_manifest(app_url: str) -> dict:
    base = app_url.rstrip("/")
    return {
        "id": APP_ID,
        "name": APP_NAME,
        "version": __version__,
        "about": (
            "Sends every confirmed order to VTmarketing's server-side events API as a confirmation event, "
            "with an API key per sales channel, reliable retries and a delivery log."
        ),
        "author": "saleor-vtmarketing",
        "permissions": PERMISSIONS,
        "appUrl": f"{base}/app",
        "tokenTargetUrl": f"{base}/api/register",
        "homepageUrl": f"{base}/",
        "supportUrl": f"{base}/",
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
