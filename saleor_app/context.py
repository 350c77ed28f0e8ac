"""Everything a process shares: settings, database, secret box, the two HTTP clients, the wake-up signal, metrics.
Built once by the app factory or the CLI and handed to services."""

from __future__ import annotations

from dataclasses import dataclass, field

from saleor_app.config import Settings
from saleor_app.delivery.intake import OrderIntake
from saleor_app.delivery.signal import DeliverySignal
from saleor_app.metrics import Metrics
from saleor_app.saleor.client import SaleorClient
from saleor_app.saleor.installations import InstallationService
from saleor_app.secrets import SecretBox
from saleor_app.storage.db import Database
from saleor_app.vtmarketing.client import VTMarketingClient


@dataclass
class AppContext:
    settings: Settings
    db: Database
    secrets: SecretBox
    saleor: SaleorClient
    vtmarketing: VTMarketingClient
    signal: DeliverySignal
    metrics: Metrics
    intake: OrderIntake = field(init=False)
    installations: InstallationService = field(init=False)

    def __post_init__(self) -> None:
        self.intake = OrderIntake(self.db, self.signal, self.metrics)
        # One per process: the web side and the worker share its installation cache and JWKS refetch limits.
        self.installations = InstallationService(self.settings, self.db, self.saleor, self.secrets)

    @classmethod
    def create(cls, settings: Settings) -> "AppContext":
        metrics = Metrics()
        return cls(
            settings=settings,
            db=Database(settings.resolved_database_url),
            secrets=SecretBox(settings.effective_secret_key()),
            saleor=SaleorClient(timeout=settings.saleor_timeout_seconds, metrics=metrics),
            vtmarketing=VTMarketingClient(settings.vtmarketing_api_url, timeout=settings.vtmarketing_timeout_seconds),
            signal=DeliverySignal(),
            metrics=metrics,
        )

    async def aclose(self) -> None:
        await self.saleor.aclose()
        await self.vtmarketing.aclose()
        await self.db.dispose()
