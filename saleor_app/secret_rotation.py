"""Re-encrypting every stored secret under the current SECRET_KEY (the `rotate-secrets` command).

To change SECRET_KEY: set the new key as SECRET_KEY and the old one in SECRET_KEY_FALLBACKS, restart, run
`saleor-vtmarketing rotate-secrets`; once it reports nothing unreadable, SECRET_KEY_FALLBACKS can go.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from saleor_app.secrets import SecretBox, SecretUnreadable
from saleor_app.storage.db import Database
from saleor_app.storage.feeds import FeedRepository
from saleor_app.storage.repositories import ChannelSettingsRepository, InstallationRepository


@dataclass
class RotationReport:
    tokens: int = 0
    api_keys: int = 0
    feed_urls: int = 0
    # What no key can read, and what to do about each (one line per secret).
    unreadable: list[str] = field(default_factory=list)


async def rotate_stored_secrets(db: Database, secrets: SecretBox) -> RotationReport:
    """One transaction: every Saleor token, API key and feed URL token that some key reads is written again with the
    current key."""
    report = RotationReport()
    async with db.transaction() as session:
        installations = InstallationRepository(session)
        urls = {}
        for installation in await installations.list():
            urls[installation.id] = installation.saleor_api_url
            try:
                await installations.set_token_ciphertext(installation.id, secrets.rotate(installation.token_encrypted))
                report.tokens += 1
            except SecretUnreadable:
                report.unreadable.append(
                    f"{installation.saleor_api_url}: the Saleor token cannot be read with any key: reinstall the app "
                    "in that Saleor (Apps → VTmarketing)."
                )
        channels = ChannelSettingsRepository(session)
        for row in await channels.with_api_keys():
            assert row.api_key_encrypted is not None
            try:
                await channels.set_api_key_ciphertext(row.id, secrets.rotate(row.api_key_encrypted))
                report.api_keys += 1
            except SecretUnreadable:
                report.unreadable.append(
                    f"{urls.get(row.installation_id, row.installation_id)} channel {row.channel_slug}: the VTmarketing "
                    "API key cannot be read with any key: save it again in the app's settings page (or `channels set "
                    "--api-key`)."
                )
        feeds = FeedRepository(session)
        for feed in await feeds.list():
            try:
                await feeds.set_token_ciphertext(feed.id, secrets.rotate(feed.token_encrypted))
                report.feed_urls += 1
            except SecretUnreadable:
                # The feed is still served (its URL is looked up by hash); only showing the URL again needs the key.
                report.unreadable.append(
                    f"{urls.get(feed.installation_id, feed.installation_id)} channel {feed.channel_slug}: the product "
                    "feed's URL cannot be shown again: press New URL on the app's page (or `feeds rotate`) and give "
                    "VTmarketing the new URL."
                )
    return report
