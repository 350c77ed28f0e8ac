"""The one place that encrypts and decrypts secrets at rest (API keys, Saleor app tokens).

Everything else holds opaque ciphertext strings. Fernet (AES-128-CBC + HMAC-SHA256) from `cryptography`, with the
key derived from SECRET_KEY by HKDF so any length of SECRET_KEY works.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


class SecretUnreadable(Exception):
    """A stored secret could not be decrypted: SECRET_KEY changed since it was stored."""


class SecretBox:
    def __init__(self, secret_key: str) -> None:
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"saleor-vtmarketing", info=b"secrets-at-rest v1").derive(
            secret_key.encode()
        )
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken as exc:
            raise SecretUnreadable("stored secret cannot be decrypted with the current SECRET_KEY") from exc


def mask_secret(value: str | None) -> str | None:
    """What a person may see of a secret: its last four characters."""
    if not value:
        return None
    return "…" + value[-4:] if len(value) > 8 else "…"
