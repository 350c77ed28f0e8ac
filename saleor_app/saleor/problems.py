"""Problems a merchant must act on, shown in the Saleor dashboard without opening the app (appProblemCreate,
Saleor 3.22+). One problem per kind and channel: the app remembers what it reported and reports it once, then
dismisses it by key when the cause is gone. On older Saleor versions it does nothing and says so once."""

from __future__ import annotations

import asyncio
import logging

from packaging.version import InvalidVersion, Version

from saleor_app.context import AppContext
from saleor_app.saleor.exceptions import SaleorError
from saleor_app.secrets import TOKEN_UNREADABLE, SecretUnreadable
from saleor_app.storage.models import Installation
from saleor_app.storage.repositories import AppProblemRepository, ChannelNameRepository, InstallationRepository

log = logging.getLogger(__name__)

MIN_VERSION = Version("3.22")


def key_rejected(channel: str) -> str:
    return f"vtmarketing-key-rejected:{channel}"[:128]


def deliveries_failed(channel: str) -> str:
    return f"deliveries-failed:{channel}"[:128]


MANAGE_ORDERS_LOST = "manage-orders-lost"
_CHANNEL_KEY_PREFIXES = ("vtmarketing-key-rejected:", "deliveries-failed:")


def channel_of(key: str) -> str | None:
    """The channel slug a problem key is about, if it is about one."""
    for prefix in _CHANNEL_KEY_PREFIXES:
        if key.startswith(prefix):
            return key[len(prefix):] or None
    return None


def name_channel(message: str, slug: str, name: str | None) -> str:
    """The worker only knows slugs and writes "channel <slug>"; the merchant knows the channel by its name."""
    if not name or name == slug:
        return message
    return message.replace(f"channel {slug}", f"channel {name} ({slug})")


class ProblemReporter:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self._told_unsupported: set[int] = set()
        self._versions: dict[int, str] = {}
        self._version_lock = asyncio.Lock()  # concurrent failures ask Saleor's version once

    async def _supported(self, installation: Installation, token: str) -> bool:
        async with self._version_lock:
            version = self._versions.get(installation.id) or await self._version(installation, token)
        if not version:
            return False  # could not tell; ask again next time
        self._versions[installation.id] = version
        try:
            supported = Version(version).release[:2] >= MIN_VERSION.release[:2]
        except InvalidVersion:
            supported = False
        if not supported and installation.id not in self._told_unsupported:
            self._told_unsupported.add(installation.id)
            log.info("Saleor %s has no app problems (3.22+): problems are shown only on the app's page", version,
                     extra={"installation": installation.id})
        return supported

    async def _version(self, installation: Installation, token: str) -> str | None:
        version = installation.saleor_version
        if version is None:
            result = await self.ctx.saleor.execute(installation.saleor_api_url, token, "shop_version.query.graphql")
            version = ((result.data or {}).get("shop") or {}).get("version")
            if not version:
                return None
            async with self.ctx.db.transaction() as session:
                stored = await InstallationRepository(session).get(installation.id)
                if stored is not None:
                    stored.saleor_version = version
            installation.saleor_version = version
        return version

    def _token(self, installation: Installation) -> str | None:
        """The app token, or None when no key reads it (the dashboard cannot be told anything without it)."""
        try:
            return self.ctx.secrets.decrypt(installation.token_encrypted)
        except SecretUnreadable:
            log.warning("dashboard problems not updated: %s", TOKEN_UNREADABLE, extra={"installation": installation.id})
            return None

    async def report(self, installation: Installation, key: str, message: str) -> None:
        async with self.ctx.db.session() as session:
            if await AppProblemRepository(session).get(installation.id, key) is not None:
                return  # already shown: one problem per kind and channel
            slug = channel_of(key)
            if slug:
                message = name_channel(message, slug, (await ChannelNameRepository(session).names(installation.id)).get(slug))
        token = self._token(installation)
        if token is None:
            return
        try:
            if not await self._supported(installation, token):
                return
        except SaleorError as exc:
            log.warning("could not ask Saleor's version: %s", exc, extra={"installation": installation.id})
            return
        # Claim the key first: concurrent deliveries (or workers) failing alike report it once.
        async with self.ctx.db.transaction() as session:
            if not await AppProblemRepository(session).claim(installation.id, key, message):
                return
        self.ctx.channel_configs.invalidate(installation.id)  # the worker's list of reported problems
        try:
            result = await self.ctx.saleor.execute(
                installation.saleor_api_url, token, "since-3.22/app_problem_create.mutation.graphql",
                {"input": {"message": message[:2048], "key": key}},
            )
            errors = ((result.data or {}).get("appProblemCreate") or {}).get("errors") or result.errors
        except SaleorError as exc:
            errors = [str(exc)]
        if errors:
            log.warning("could not report problem %s: %s", key, errors, extra={"installation": installation.id})
            async with self.ctx.db.transaction() as session:  # let a later failure try again
                await AppProblemRepository(session).remove(installation.id, key)

    async def dismiss(self, installation: Installation, keys: list[str]) -> None:
        async with self.ctx.db.session() as session:
            present = await AppProblemRepository(session).present(installation.id, keys)
        if not present:
            return  # the common case: nothing was reported, nothing to ask Saleor
        token = self._token(installation)
        if token is None:
            return
        try:
            result = await self.ctx.saleor.execute(
                installation.saleor_api_url, token, "since-3.22/app_problem_dismiss.mutation.graphql", {"keys": present}
            )
        except SaleorError as exc:
            log.warning("could not dismiss problems %s: %s", present, exc, extra={"installation": installation.id})
            return
        if ((result.data or {}).get("appProblemDismiss") or {}).get("errors") or result.errors:
            log.warning("Saleor refused to dismiss %s", present, extra={"installation": installation.id})
            return
        async with self.ctx.db.transaction() as session:
            for key in present:
                await AppProblemRepository(session).remove(installation.id, key)
        self.ctx.channel_configs.invalidate(installation.id)
