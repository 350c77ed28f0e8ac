"""Everything a process shares: settings, database, secret box, the two HTTP clients, the wake-up signal, metrics.
Built once by the app factory or the CLI and handed to services."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from saleor_app.config import Settings
from saleor_app.delivery.channel_config import ChannelConfigCache
from saleor_app.delivery.intake import OrderIntake
from saleor_app.delivery.signal import DeliverySignal
from saleor_app.metrics import Metrics
from saleor_app.ratelimit import RateLimit
from saleor_app.saleor.client import SaleorClient
from saleor_app.saleor.installations import InstallationService
from saleor_app.saleor.url_guard import SaleorUrlGuard
from saleor_app.secrets import SecretBox
from saleor_app.storage.db import Database
from saleor_app.vtmarketing.client import VTMarketingClient

TEST_EVENTS_PER_MINUTE = 5

if TYPE_CHECKING:
    from saleor_app.delivery.supervisor import WorkerSupervisor


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
    # What the worker knows of each channel (installation, key, choices), kept for seconds: delivery/channel_config.py.
    channel_configs: ChannelConfigCache = field(init=False)
    installations: InstallationService = field(init=False)
    # Test events go out to VTmarketing on a merchant's click: a few a minute per installation (settings API).
    test_event_limit: RateLimit = field(init=False)
    # The delivery worker running in this process, if any: /readyz reports its health.
    worker_health: "WorkerSupervisor | None" = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.intake = OrderIntake(self.db, self.signal, self.metrics)
        self.channel_configs = ChannelConfigCache(self.db, self.secrets)
        # One per process: the web side and the worker share its installation cache and JWKS refetch limits.
        self.installations = InstallationService(self.settings, self.db, self.saleor, self.secrets,
                                                 channel_configs=self.channel_configs)
        self.test_event_limit = RateLimit(TEST_EVENTS_PER_MINUTE, 60.0)

    @classmethod
    def create(cls, settings: Settings) -> "AppContext":
        metrics = Metrics()
        return cls(
            settings=settings,
            db=Database(settings.resolved_database_url),
            secrets=SecretBox(settings.effective_secret_key(), settings.secret_key_fallback_list),
            saleor=SaleorClient(timeout=settings.saleor_timeout_seconds, metrics=metrics,
                                url_guard=SaleorUrlGuard(allow_private=settings.allow_private_saleor_urls),
                                max_in_flight=settings.delivery_concurrency),
            vtmarketing=VTMarketingClient(settings.vtmarketing_api_url, timeout=settings.vtmarketing_timeout_seconds,
                                          max_in_flight=settings.delivery_concurrency),
            signal=DeliverySignal(),
            metrics=metrics,
        )

    async def aclose(self) -> None:
        await self.saleor.aclose()
        await self.vtmarketing.aclose()
        await self.db.dispose()
