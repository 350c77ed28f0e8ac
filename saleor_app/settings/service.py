"""Per-channel VTmarketing settings: one service for the CLI and the dashboard's settings API."""

from __future__ import annotations

from dataclasses import dataclass

from saleor_app.context import AppContext
from saleor_app.saleor import problems
from saleor_app.saleor.problems import ProblemReporter
from saleor_app.secrets import mask_secret
from saleor_app.settings.exceptions import InvalidChannelSettings, UnknownInstallationUrl
from saleor_app.storage.models import ChannelSettings, Installation, ItemIdSource, OrderIdSource
from saleor_app.storage.repositories import ChannelSettingsRepository, InstallationRepository

ITEM_ID_VALUES = [v.value for v in ItemIdSource]
ORDER_ID_VALUES = [v.value for v in OrderIdSource]
MAX_API_KEY_LENGTH = 512


@dataclass(frozen=True)
class ChannelSettingsView:
    """What may be shown of a channel's settings: never the key, only its hint."""

    channel: str
    enabled: bool
    api_key_hint: str | None
    item_id: str
    order_id: str
    configured: bool

    @classmethod
    def of(cls, row: ChannelSettings | None, channel: str) -> "ChannelSettingsView":
        if row is None:
            return cls(channel, True, None, ItemIdSource.SKU.value, OrderIdSource.NUMBER.value, False)
        return cls(row.channel_slug, row.enabled, row.api_key_hint, row.item_id, row.order_id, bool(row.api_key_encrypted))


def validate_channel_update(
    *, channel: str, api_key: str | None, item_id: str | None, order_id: str | None
) -> dict[str, str]:
    errors: dict[str, str] = {}
    if not channel or len(channel) > 255:
        errors["channel"] = "Choose a channel."
    if api_key is not None:
        key = api_key.strip()
        if not key:
            errors["apiKey"] = "The API key is empty. Paste the key from your VTmarketing account settings."
        elif len(key) > MAX_API_KEY_LENGTH or any(c.isspace() or not c.isprintable() for c in key):
            errors["apiKey"] = "That does not look like an API key: it must be one line of printable characters."
    if item_id is not None and item_id not in ITEM_ID_VALUES:
        errors["itemId"] = f"Item id must be one of: {', '.join(ITEM_ID_VALUES)}."
    if order_id is not None and order_id not in ORDER_ID_VALUES:
        errors["orderId"] = f"Order id must be one of: {', '.join(ORDER_ID_VALUES)}."
    return errors


class ChannelSettingsService:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    async def installation(self, saleor_api_url: str) -> Installation:
        async with self.ctx.db.session() as session:
            installation = await InstallationRepository(session).by_api_url(saleor_api_url)
        if installation is None:
            raise UnknownInstallationUrl(f"No installation for {saleor_api_url}.")
        return installation

    async def list(self, installation_id: int) -> list[ChannelSettingsView]:
        async with self.ctx.db.session() as session:
            rows = await ChannelSettingsRepository(session).list(installation_id)
        return [ChannelSettingsView.of(row, row.channel_slug) for row in rows]

    async def get(self, installation_id: int, channel: str) -> ChannelSettingsView:
        async with self.ctx.db.session() as session:
            row = await ChannelSettingsRepository(session).get(installation_id, channel)
        return ChannelSettingsView.of(row, channel)

    async def update(
        self,
        installation_id: int,
        channel: str,
        *,
        api_key: str | None = None,
        enabled: bool | None = None,
        item_id: str | None = None,
        order_id: str | None = None,
    ) -> ChannelSettingsView:
        """Partial update: what is None stays as stored (an omitted API key keeps the stored one)."""
        errors = validate_channel_update(channel=channel, api_key=api_key, item_id=item_id, order_id=order_id)
        if errors:
            raise InvalidChannelSettings(errors)
        async with self.ctx.db.transaction() as session:
            row = await ChannelSettingsRepository(session).get_or_create(installation_id, channel)
            if api_key is not None:
                key = api_key.strip()
                row.api_key_encrypted = self.ctx.secrets.encrypt(key)
                row.api_key_hint = mask_secret(key)
            if enabled is not None:
                row.enabled = enabled
            if item_id is not None:
                row.item_id = item_id
            if order_id is not None:
                row.order_id = order_id
            await session.flush()
            view = ChannelSettingsView.of(row, channel)
        if api_key is not None:
            await self._on_key_changed(installation_id, channel)
        return view

    async def api_key(self, installation_id: int, channel: str) -> str | None:
        async with self.ctx.db.session() as session:
            row = await ChannelSettingsRepository(session).get(installation_id, channel)
        return self.ctx.secrets.decrypt(row.api_key_encrypted) if row and row.api_key_encrypted else None

    async def _on_key_changed(self, installation_id: int, channel: str) -> None:
        """A new key ends the "VTmarketing refuses the key" problem shown in the dashboard."""
        async with self.ctx.db.session() as session:
            installation = await InstallationRepository(session).get(installation_id)
        if installation is not None:
            await ProblemReporter(self.ctx).dismiss(installation, [problems.key_rejected(channel)])
