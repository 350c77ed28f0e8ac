"""Installations: the install handshake, and checking that a webhook really comes from an installed Saleor."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import TypeVar

from saleor_app.config import Settings
from saleor_app.delivery.channel_config import ChannelConfigCache, notify_config_changed
from saleor_app.saleor.client import SaleorClient
from saleor_app.saleor.exceptions import (
    InvalidSignature,
    JwksNotAvailable,
    MissingSaleorApiUrl,
    SaleorError,
    SaleorUrlProhibited,
    UnknownAppId,
    UnknownInstallation,
)
from saleor_app.saleor.url_guard import UnsafeSaleorUrl
from saleor_app.saleor.signature import DashboardTokenError, SignatureError, verify_saleor_signature
from saleor_app.secrets import SecretBox
from saleor_app.storage.db import Database
from saleor_app.storage.models import Installation
from saleor_app.storage.repositories import InstallationRepository

log = logging.getLogger(__name__)
T = TypeVar("T")

# A forged or stale signature may make us refetch a JWKS; not more often than this per installation.
JWKS_REFETCH_MIN_INTERVAL = 10.0
INSTALLATION_CACHE_SECONDS = 5.0


def deleted_app_id_of(body: bytes) -> str | None:
    """The app id an APP_DELETED payload names (manifest/app_deleted.subscription.graphql), or None."""
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    app = payload.get("app") if isinstance(payload, dict) else None
    app_id = app.get("id") if isinstance(app, dict) else None
    return app_id if isinstance(app_id, str) and app_id else None


def saleor_api_url_from(headers: Mapping[str, str]) -> str | None:
    """`Saleor-Api-Url` (Saleor ≥3.9), else derived from `Saleor-Domain` like the SDK does for older versions."""
    url = headers.get("saleor-api-url")
    if url:
        return url.strip()
    domain = headers.get("saleor-domain")
    return f"https://{domain.strip()}/graphql/" if domain else None


class InstallationService:
    def __init__(self, settings: Settings, db: Database, saleor: SaleorClient, secrets: SecretBox, *,
                 channel_configs: ChannelConfigCache | None = None) -> None:
        self.settings = settings
        # The worker's cache of installations and channels: told of a re-install or an uninstall at once.
        self.channel_configs = channel_configs
        self.db = db
        self.saleor = saleor
        self.secrets = secrets
        self._last_jwks_refetch: dict[int, float] = {}
        # The keys that refetch got, offered while the rate limit holds (see _refetch_jwks).
        self._refetched_jwks: dict[int, str] = {}
        # Webhooks look their installation up by API URL on every request; a few seconds of memory spare the
        # database that read. Changes made by this process update or drop the entry at once; another process's
        # (a re-install, an uninstall) show after at most INSTALLATION_CACHE_SECONDS.
        self._by_api_url: dict[str, tuple[float, Installation | None]] = {}

    async def register(self, headers: Mapping[str, str], auth_token: str | None) -> Installation:
        """The SDK's register handler, in its order: URL, allow-list, token, proof, JWKS, store."""
        api_url = headers.get("saleor-api-url")
        if not api_url:
            raise MissingSaleorApiUrl("Missing Saleor-Api-Url header.")
        if not api_url.startswith(("http://", "https://")):
            raise MissingSaleorApiUrl("Saleor-Api-Url must be an absolute http(s) URL.")
        if not self.settings.is_saleor_api_url_allowed(api_url):
            raise SaleorUrlProhibited("This Saleor is not allowed to install this app (ALLOWED_SALEOR_API_URLS).")
        try:
            # With or without an allow-list, before any outbound call: the token never reaches a refused host.
            await self.saleor.url_guard.check(api_url)
        except UnsafeSaleorUrl as exc:
            log.warning("register refused for %s: %s", api_url, exc.message)
            raise SaleorUrlProhibited(exc.message) from None
        if not auth_token or not isinstance(auth_token, str):
            raise MissingSaleorApiUrl("Missing auth_token in the request body.", code="MISSING_AUTH_TOKEN")
        try:
            identity = await self.saleor.app_identity(api_url, auth_token)
        except SaleorError as exc:
            log.warning("register refused for %s: token not proven (%s)", api_url, exc)
            raise UnknownAppId("Saleor did not confirm the app token; try installing again.") from None
        try:
            jwks = await self.saleor.fetch_jwks(api_url)
        except SaleorError as exc:
            log.warning("register refused for %s: %s", api_url, exc)
            raise JwksNotAvailable("Saleor's signing keys (/.well-known/jwks.json) could not be fetched.") from None
        async with self.db.transaction() as session:
            installation = await InstallationRepository(session).save_registration(
                saleor_api_url=api_url, app_id=identity.app_id, token_encrypted=self.secrets.encrypt(auth_token),
                jwks=jwks, saleor_time=identity.saleor_time,
            )
            await notify_config_changed(session)
        self._by_api_url.pop(api_url, None)
        if self.channel_configs is not None:
            self.channel_configs.invalidate(installation.id)
        log.info("installed for %s (app %s, installation %s)", api_url, identity.app_id, installation.id)
        return installation

    async def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> Installation:
        """The installation a signed webhook belongs to; raises Unauthorized when it is not Saleor's."""
        api_url = saleor_api_url_from(headers)
        if not api_url:
            raise UnknownInstallation("Missing Saleor-Api-Url header.")
        installation = await self._installation_by_api_url(api_url)
        if installation is None or not installation.is_active:
            raise UnknownInstallation("This Saleor has not installed the app.")
        signature = headers.get("saleor-signature")
        try:
            await self.verify_with_fresh_keys(installation, lambda jwks: verify_saleor_signature(signature, body, jwks))
        except SignatureError as exc:
            raise InvalidSignature(f"Invalid Saleor-Signature: {exc}") from None
        return installation

    async def _installation_by_api_url(self, api_url: str) -> Installation | None:
        cached = self._by_api_url.get(api_url)
        if cached is not None and time.monotonic() - cached[0] < INSTALLATION_CACHE_SECONDS:
            return cached[1]
        async with self.db.session() as session:
            installation = await InstallationRepository(session).by_api_url(api_url)
        if len(self._by_api_url) > 10_000:  # unknown URLs from forged requests must not grow it without end
            self._by_api_url.clear()
        self._by_api_url[api_url] = (time.monotonic(), installation)
        return installation

    async def verify_with_fresh_keys(self, installation: Installation, verify: Callable[[str], T]) -> T:
        """Run a check against the installation's JWKS; on an unknown key or a failed check, refetch the JWKS once
        (rate-limited), check again, and keep the new keys only if they verify. Errors of `verify` propagate."""
        try:
            return verify(installation.jwks)
        except (SignatureError, DashboardTokenError) as exc:
            if exc.kind not in ("unknown_kid", "invalid", "invalid_signature"):
                raise
            fresh_jwks = await self._refetch_jwks(installation)
            if fresh_jwks is None:
                raise
        result = verify(fresh_jwks)
        installation.jwks = fresh_jwks
        async with self.db.transaction() as session:
            await InstallationRepository(session).update_jwks(installation.id, fresh_jwks)
        log.info("Saleor signing keys changed for installation %s; stored the new ones", installation.id)
        return result

    async def _refetch_jwks(self, installation: Installation) -> str | None:
        """Saleor rotates its single key without overlap: fetch the keys once more (rate-limited). None: nothing new."""
        now = time.monotonic()
        if now - self._last_jwks_refetch.get(installation.id, -1e9) < JWKS_REFETCH_MIN_INTERVAL:
            # Rate-limited, but the keys fetched moments ago may be new: a forged request can trigger that refetch
            # just before Saleor's first webhook signed by a rotated key, which must not be refused for it.
            recent = self._refetched_jwks.get(installation.id)
            return recent if recent is not None and recent != installation.jwks else None
        self._last_jwks_refetch[installation.id] = now
        self._refetched_jwks.pop(installation.id, None)
        try:
            jwks = await self.saleor.fetch_jwks(installation.saleor_api_url)
        except SaleorError as exc:
            log.warning("JWKS refetch failed for installation %s: %s", installation.id, exc)
            return None
        self._refetched_jwks[installation.id] = jwks
        return None if jwks == installation.jwks else jwks

    async def app_deleted(self, installation: Installation, body: bytes) -> str:
        """APP_DELETED, signed by this Saleor: uninstall only if it names the app installed now. Saleor retries a
        webhook for a while, so the deletion of a previous app (before a re-install) may arrive late; it must not
        end the live installation, whose orders would then be refused and lost. Returns the outcome."""
        deleted_app_id = deleted_app_id_of(body)
        if deleted_app_id != installation.app_id:
            log.warning(
                "installation %s: ignored APP_DELETED for app %s (the installed app is %s)",
                installation.id, deleted_app_id or "unknown", installation.app_id,
            )
            return "ignored"
        await self.mark_uninstalled(installation, "Saleor reported the app deleted (APP_DELETED)")
        return "stored"

    async def mark_uninstalled(self, installation: Installation, reason: str) -> None:
        async with self.db.transaction() as session:
            await InstallationRepository(session).mark_uninstalled(installation.id, reason)
            await notify_config_changed(session)
        self._by_api_url.pop(installation.saleor_api_url, None)
        if self.channel_configs is not None:
            self.channel_configs.invalidate(installation.id)
        log.warning("installation %s marked uninstalled: %s", installation.id, reason)
