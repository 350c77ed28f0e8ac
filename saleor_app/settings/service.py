"""Per-channel VTmarketing settings: one service for the CLI and the dashboard's settings API."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from saleor_app.context import AppContext
from saleor_app.delivery.channel_config import notify_config_changed
from saleor_app.delivery.service import DeliveryService
from saleor_app.saleor.exceptions import SaleorError, SaleorPermissionDenied
from saleor_app.saleor import problems
from saleor_app.saleor.problems import ProblemReporter
from saleor_app.secrets import TOKEN_UNREADABLE, SecretUnreadable, api_key_unreadable, mask_secret
from saleor_app.settings.exceptions import InvalidChannelSettings, UnknownInstallationUrl
from saleor_app.settings.key_status import record_test_verdict
from saleor_app.storage.models import ChannelSettings, Installation, ItemIdSource, OrderIdSource, utcnow
from saleor_app.storage.repositories import ChannelNameRepository, ChannelSettingsRepository, InstallationRepository

log = logging.getLogger(__name__)

ITEM_ID_VALUES = [v.value for v in ItemIdSource]
ORDER_ID_VALUES = [v.value for v in OrderIdSource]
MAX_API_KEY_LENGTH = 512


@dataclass(frozen=True)
class ChannelSettingsView:
    """What may be shown of a channel's settings: never the key, only its hint.

    `enabled` says whether orders are sent: never for a channel without a key, whatever its stored switch says.
    `key_status` is what VTmarketing last said of the stored key (accepted, refused, or None: not known yet)."""

    channel: str
    enabled: bool
    api_key_hint: str | None
    item_id: str
    order_id: str
    configured: bool
    key_status: str | None = None
    key_status_message: str | None = None
    key_status_at: datetime | None = None

    @classmethod
    def of(cls, row: ChannelSettings | None, channel: str) -> "ChannelSettingsView":
        if row is None:
            return cls(channel, False, None, ItemIdSource.SKU.value, OrderIdSource.NUMBER.value, False)
        configured = bool(row.api_key_encrypted)
        return cls(
            row.channel_slug, row.enabled and configured, row.api_key_hint, row.item_id, row.order_id, configured,
            row.key_status if configured else None, row.key_status_message if configured else None,
            row.key_status_at if configured else None,
        )


@dataclass(frozen=True)
class ChannelUpdate:
    """A saved update: the settings as stored now, and which fields really changed (empty: nothing to save)."""

    view: ChannelSettingsView
    changed: tuple[str, ...]


def validate_channel_update(
    *, channel: str, api_key: str | None, item_id: str | None, order_id: str | None
) -> dict[str, str]:
    errors: dict[str, str] = {}
    if not channel or len(channel) > 255 or not channel.isprintable():  # never stored: NUL, controls, …
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
        result = await self.apply(
            installation_id, channel, api_key=api_key, enabled=enabled, item_id=item_id, order_id=order_id
        )
        return result.view

    async def apply(
        self,
        installation_id: int,
        channel: str,
        *,
        api_key: str | None = None,
        enabled: bool | None = None,
        item_id: str | None = None,
        order_id: str | None = None,
    ) -> ChannelUpdate:
        """`update`, telling which fields changed. Sending cannot be turned on for a channel without a key."""
        errors = validate_channel_update(channel=channel, api_key=api_key, item_id=item_id, order_id=order_id)
        if errors:
            raise InvalidChannelSettings(errors)
        changed: list[str] = []
        async with self.ctx.db.transaction() as session:
            row = await ChannelSettingsRepository(session).get_or_create(installation_id, channel)
            if api_key is not None and not self._holds_key(row, api_key.strip()):
                key = api_key.strip()
                row.api_key_encrypted = self.ctx.secrets.encrypt(key)
                row.api_key_hint = mask_secret(key)
                row.key_changed_at = utcnow()
                row.key_status = row.key_status_message = row.key_status_at = None  # nothing known of the new key
                changed.append("apiKey")
            if enabled and not row.api_key_encrypted:
                raise InvalidChannelSettings(
                    {"enabled": "Save an API key first: without one, this channel's orders cannot be sent."}
                )  # the transaction rolls back: a row created just now is not kept
            for name, new, current in (
                ("enabled", enabled, row.enabled), ("itemId", item_id, row.item_id), ("orderId", order_id, row.order_id)
            ):
                if new is not None and new != current:
                    changed.append(name)
            if enabled is not None:
                row.enabled = enabled
            if item_id is not None:
                row.item_id = item_id
            if order_id is not None:
                row.order_id = order_id
            await session.flush()
            view = ChannelSettingsView.of(row, channel)
            if changed:
                await notify_config_changed(session)  # other processes' workers (delivery/channel_config.py)
        if changed:
            self.ctx.channel_configs.invalidate(installation_id)
        if "apiKey" in changed:
            await self._on_key_changed(installation_id, channel)
        return ChannelUpdate(view, tuple(changed))

    def _holds_key(self, row: ChannelSettings, key: str) -> bool:
        """The same key pasted again is no change (its status stays known)."""
        if not row.api_key_encrypted:
            return False
        try:
            return self.ctx.secrets.decrypt(row.api_key_encrypted) == key
        except SecretUnreadable:
            return False

    async def record_test_verdict(
        self, installation_id: int, channel: str, *, accepted: bool, detail: str, key_read_at: datetime
    ) -> None:
        """A test event with the stored key tells whether it works; success also ends a "key refused" problem."""
        async with self.ctx.db.transaction() as session:
            await record_test_verdict(
                session, installation_id, channel, accepted=accepted, detail=detail, key_read_at=key_read_at
            )
        self.ctx.channel_configs.invalidate(installation_id)  # what the worker knows of the key's status
        if accepted:
            await self._on_key_changed(installation_id, channel)

    async def channel_names(self, installation_id: int) -> dict[str, str]:
        """Channel names by slug, as Saleor last gave them to the page."""
        async with self.ctx.db.session() as session:
            return await ChannelNameRepository(session).names(installation_id)

    async def unreadable_keys(self, installation_id: int) -> list[str]:
        """Channels whose stored API key no key (SECRET_KEY, SECRET_KEY_FALLBACKS) can read."""
        async with self.ctx.db.session() as session:
            rows = await ChannelSettingsRepository(session).list(installation_id)
        return [row.channel_slug for row in rows if not self.ctx.secrets.readable(row.api_key_encrypted)]

    async def api_key(self, installation_id: int, channel: str) -> str | None:
        async with self.ctx.db.session() as session:
            row = await ChannelSettingsRepository(session).get(installation_id, channel)
        return self.ctx.secrets.decrypt(row.api_key_encrypted) if row and row.api_key_encrypted else None

    async def _on_key_changed(self, installation_id: int, channel: str) -> None:
        """A new key (or proof that the key works) ends the "VTmarketing refuses the key" dashboard problem."""
        async with self.ctx.db.session() as session:
            installation = await InstallationRepository(session).get(installation_id)
        if installation is not None:
            await ProblemReporter(self.ctx).dismiss(installation, [problems.key_rejected(channel)])


@dataclass(frozen=True)
class ChannelOverviewItem:
    """One channel as the merchant sees it: Saleor's facts (None when unknown), the settings and delivery counts."""

    settings: ChannelSettingsView
    counts: dict[str, int]
    saleor_id: str | None
    name: str
    currency_code: str | None
    is_active: bool | None
    exists_in_saleor: bool | None  # False: settings kept for a channel Saleor no longer has; None: Saleor not asked


@dataclass(frozen=True)
class ChannelOverview:
    channels: list[ChannelOverviewItem] = field(default_factory=list)
    error_code: str | None = None  # why only stored settings are shown
    error_message: str | None = None


async def channel_overview(ctx: AppContext, installation: Installation) -> ChannelOverview:
    """Every channel Saleor has (live, with the app token) with its settings and counts, then stored settings of
    channels Saleor no longer has. When Saleor cannot be asked: the stored settings and an error saying why."""
    stored = {view.channel: view for view in await ChannelSettingsService(ctx).list(installation.id)}
    counts = await DeliveryService(ctx).counts(installation.id)
    live: list[dict] | None = None
    error_code = error_message = None
    try:
        token = ctx.secrets.decrypt(installation.token_encrypted)
        live = await ctx.saleor.channels(installation.saleor_api_url, token)
    except SecretUnreadable:
        error_code = "TOKEN_UNREADABLE"
        error_message = f"{TOKEN_UNREADABLE} Showing the stored settings only."
    except SaleorPermissionDenied:
        error_code = "SALEOR_REFUSED"
        error_message = ("Saleor refused the app's token, so the channel list could not be read. "
                         "Showing the stored settings only.")
    except SaleorError as exc:
        log.warning("channels of installation %s could not be read: %s", installation.id, exc)
        error_code = "SALEOR_UNREACHABLE"
        error_message = ("Saleor could not be reached to list the channels. Showing the stored settings only; "
                         "reload to try again.")

    if live:
        await _remember_names(ctx, installation.id, live)
    unreadable = await ChannelSettingsService(ctx).unreadable_keys(installation.id)
    if unreadable:
        keys = api_key_unreadable(", ".join(unreadable))
        error_code = error_code or "API_KEY_UNREADABLE"
        error_message = f"{error_message} {keys}" if error_message else keys

    items: list[ChannelOverviewItem] = []
    seen: set[str] = set()
    for channel in live or []:
        slug = str(channel.get("slug") or "")
        if not slug or slug in seen:
            continue
        seen.add(slug)
        items.append(ChannelOverviewItem(
            settings=stored.get(slug) or ChannelSettingsView.of(None, slug), counts=counts.get(slug, {}),
            saleor_id=channel.get("id"), name=str(channel.get("name") or slug), currency_code=channel.get("currencyCode"),
            is_active=channel.get("isActive"), exists_in_saleor=True,
        ))
    for slug in sorted(set(stored) - seen):
        items.append(ChannelOverviewItem(
            settings=stored[slug], counts=counts.get(slug, {}), saleor_id=None, name=slug, currency_code=None,
            is_active=None, exists_in_saleor=False if live is not None else None,
        ))
    return ChannelOverview(items, error_code, error_message)


async def _remember_names(ctx: AppContext, installation_id: int, live: list[dict]) -> None:
    """Keep Saleor's channel names for the places that only know slugs (the worker's problems, the delivery log)."""
    names = {str(c["slug"]): str(c["name"])[:255] for c in live if c.get("slug") and c.get("name")}
    try:
        async with ctx.db.transaction() as session:
            await ChannelNameRepository(session).save(installation_id, names)
    except Exception:  # names are a nicety: never fail the channel list for them
        log.exception("channel names of installation %s could not be stored", installation_id)
