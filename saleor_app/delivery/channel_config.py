"""What the worker needs to know of a channel to send its orders, cached per process: the installation's Saleor URL
and token, the channel's VTmarketing key and choices. Without it every delivery read two rows in a session of its
own and decrypted two secrets.

An entry is loaded with one query, its secrets decrypted once, and kept for at most CHANNEL_CONFIG_SECONDS. A change
(a key saved in the settings page or with `channels set`, sending turned off, a re-install or an uninstall) reaches
the worker:
- at once in the process that made it: the writer calls `invalidate` after its commit;
- at once in every worker process on PostgreSQL: the writer sends NOTIFY (`notify_config_changed`) in its
  transaction, and each worker's listener (delivery/signal.py) drops its entries when the commit delivers it;
- within CHANNEL_CONFIG_SECONDS in any case (SQLite, where `channels set` runs beside `serve` without a channel to
  tell it; a notification lost while a listener reconnects).
A delivery already in flight finishes with what it read, as it always did.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from saleor_app.delivery.signal import CONFIG_CHANNEL
from saleor_app.secrets import SecretBox, SecretUnreadable
from saleor_app.storage.db import Database
from saleor_app.storage.models import InstallationStatus, ItemIdSource, KeyStatus, OrderIdSource, utcnow
from saleor_app.storage.repositories import AppProblemRepository, InstallationRepository

# The longest a change made by another process goes unseen by a worker (docs/operations.md). Decrypted secrets stay
# in memory no longer than this either.
CHANNEL_CONFIG_SECONDS = 5.0
MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class ChannelConfig:
    installation_id: int
    channel_slug: str
    saleor_api_url: str | None  # None: no such installation
    installed: bool  # the installation exists and is active
    token: str | None  # the Saleor app token; None when no key reads it
    has_key: bool  # the channel has a stored VTmarketing API key
    api_key: str | None  # None when there is none, or no key reads it
    enabled: bool
    item_id: str
    order_id: str
    key_accepted: bool  # VTmarketing already accepted this key: a delivered order need not say so again
    reported_problems: frozenset[str]  # the installation's problems shown in the dashboard (usually none)
    read_at: datetime  # when the rows were read (a verdict about this key is judged against later key changes)


async def notify_config_changed(session: AsyncSession) -> None:
    """Inside the transaction that changed an installation or a channel's settings: PostgreSQL tells every
    listening worker at commit."""
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        await session.execute(text(f"NOTIFY {CONFIG_CHANNEL}"))


class ChannelConfigCache:
    def __init__(self, db: Database, secrets: SecretBox, *, max_age: float = CHANNEL_CONFIG_SECONDS) -> None:
        self._db = db
        self._secrets = secrets
        self.max_age = max_age
        self._entries: dict[tuple[int, str], tuple[float, ChannelConfig]] = {}
        self._loading: dict[tuple[int, str], asyncio.Future[ChannelConfig]] = {}
        self._generation = 0  # bumped by every invalidation: a load that started before one is not kept

    async def get(self, installation_id: int, channel_slug: str) -> ChannelConfig:
        key = (installation_id, channel_slug)
        cached = self._entries.get(key)
        if cached is not None and time.monotonic() - cached[0] < self.max_age:
            return cached[1]
        loading = self._loading.get(key)
        if loading is None:  # one load per entry, however many deliveries of the channel start at once
            loading = self._loading[key] = asyncio.ensure_future(self._load(key))
            loading.add_done_callback(lambda _: self._loading.pop(key, None))
        return await asyncio.shield(loading)

    async def fresh(self, installation_id: int, channel_slug: str) -> ChannelConfig:
        """Read from the database now (and keep it), e.g. to check a refusal against the latest token."""
        self._entries.pop((installation_id, channel_slug), None)
        return await self._load((installation_id, channel_slug))

    def key_accepted(self, config: ChannelConfig) -> None:
        """This process just recorded that VTmarketing accepts the key `config` holds: its next deliveries need not
        say so again (an entry read again since, or a change meanwhile, is left alone)."""
        key = (config.installation_id, config.channel_slug)
        cached = self._entries.get(key)
        if cached is not None and cached[1] is config:
            self._entries[key] = (cached[0], replace(config, key_accepted=True))

    def invalidate(self, installation_id: int | None = None) -> None:
        """Forget an installation's entries (all, without an id); the next delivery reads them again."""
        self._generation += 1
        if installation_id is None:
            self._entries.clear()
        else:
            for key in [key for key in self._entries if key[0] == installation_id]:
                del self._entries[key]

    async def _load(self, key: tuple[int, str]) -> ChannelConfig:
        generation, started = self._generation, time.monotonic()
        read_at = utcnow()
        async with self._db.session() as session:
            row = await InstallationRepository(session).channel_config(*key)
            problems = frozenset(await AppProblemRepository(session).keys(key[0])) if row is not None else frozenset()
        config = self._config_of(key, row, read_at, problems)
        if generation == self._generation:
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[key] = (started, config)
        return config

    def _config_of(self, key: tuple[int, str], row, read_at: datetime,  # type: ignore[no-untyped-def]
                   problems: frozenset[str]) -> ChannelConfig:
        installation_id, channel_slug = key
        if row is None:
            return ChannelConfig(installation_id, channel_slug, None, False, None, False, None, False,
                                 ItemIdSource.SKU.value, OrderIdSource.NUMBER.value, False, problems, read_at)
        has_key = row.channel_id is not None and bool(row.api_key_encrypted)
        return ChannelConfig(
            installation_id=installation_id,
            channel_slug=channel_slug,
            saleor_api_url=row.saleor_api_url,
            installed=row.status == InstallationStatus.ACTIVE.value,
            token=self._readable(row.token_encrypted),
            has_key=has_key,
            api_key=self._readable(row.api_key_encrypted) if has_key else None,
            enabled=bool(row.enabled),
            item_id=row.item_id or ItemIdSource.SKU.value,
            order_id=row.order_id or OrderIdSource.NUMBER.value,
            key_accepted=row.key_status == KeyStatus.ACCEPTED.value,
            reported_problems=problems,
            read_at=read_at,
        )

    def _readable(self, ciphertext: str | None) -> str | None:
        if not ciphertext:
            return None
        try:
            return self._secrets.decrypt(ciphertext)
        except SecretUnreadable:
            return None
