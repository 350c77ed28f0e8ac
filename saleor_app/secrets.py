"""The one place that encrypts and decrypts secrets at rest (API keys, Saleor app tokens).

Everything else holds opaque ciphertext strings. Fernet (AES-128-CBC + HMAC-SHA256) from `cryptography`, with each
key derived from a SECRET_KEY string by HKDF so any length of SECRET_KEY works. `MultiFernet` holds the current key
and the old ones (SECRET_KEY_FALLBACKS): secrets are always written with the current key and read with any of them,
and `rotate()` re-encrypts a secret under the current key (the `rotate-secrets` command).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

# What to do when a secret cannot be read with any key: the same words on every surface (delivery log, settings
# page, CLI, reconciliation status). Putting the old key into SECRET_KEY_FALLBACKS is the operator's way out.
NO_KEY_READS_IT = "cannot be read with SECRET_KEY or SECRET_KEY_FALLBACKS (SECRET_KEY changed?)"
TOKEN_UNREADABLE = (
    f"The app's Saleor token {NO_KEY_READS_IT}: reinstall the app in Saleor (Apps → VTmarketing), "
    "or put the old key into SECRET_KEY_FALLBACKS."
)


def api_key_unreadable(channels: str | None = None) -> str:
    whose = f"The saved VTmarketing API key of {channels}" if channels else "The channel's saved VTmarketing API key"
    return (f"{whose} {NO_KEY_READS_IT}: save the API key again in the app's settings page, "
            "or put the old key into SECRET_KEY_FALLBACKS.")


API_KEY_UNREADABLE = api_key_unreadable()


class SecretUnreadable(Exception):
    """A stored secret could not be decrypted with the current key nor any fallback."""


def _fernet(secret_key: str) -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"saleor-vtmarketing", info=b"secrets-at-rest v1").derive(
        secret_key.encode()
    )
    return Fernet(base64.urlsafe_b64encode(derived))


class SecretBox:
    def __init__(self, secret_key: str, fallbacks: Sequence[str] = ()) -> None:
        self._keys = MultiFernet([_fernet(secret_key), *(_fernet(key) for key in fallbacks if key and key != secret_key)])

    def encrypt(self, plaintext: str) -> str:
        return self._keys.encrypt(plaintext.encode()).decode()  # always with the first (current) key

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._keys.decrypt(ciphertext.encode()).decode()
        except InvalidToken as exc:
            raise SecretUnreadable("stored secret cannot be decrypted with SECRET_KEY or SECRET_KEY_FALLBACKS") from exc

    def readable(self, ciphertext: str | None) -> bool:
        if not ciphertext:
            return True
        try:
            self.decrypt(ciphertext)
        except SecretUnreadable:
            return False
        return True

    def rotate(self, ciphertext: str) -> str:
        """The same secret encrypted under the current key; SecretUnreadable if no key reads it."""
        try:
            return self._keys.rotate(ciphertext.encode()).decode()
        except InvalidToken as exc:
            raise SecretUnreadable("stored secret cannot be decrypted with SECRET_KEY or SECRET_KEY_FALLBACKS") from exc


def mask_secret(value: str | None) -> str | None:
    """What a person may see of a secret: its last four characters."""
    if not value:
        return None
    return "…" + value[-4:] if len(value) > 8 else "…"
