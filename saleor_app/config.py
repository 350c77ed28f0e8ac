"""The app's configuration: one typed object read from the environment, checked at start."""

from __future__ import annotations

import fnmatch
import logging
import re
import secrets
from functools import cached_property
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger(__name__)

DEFAULT_DATA_DIR = Path("data")


class ConfigError(Exception):
    """Raised at start when the environment does not describe a runnable app; the message says what to fix."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True)

    app_url: str = Field(
        default="http://localhost:8000",
        description="Public base URL of the app, as Saleor and the dashboard reach it (used in the manifest).",
    )
    database_url: str = Field(
        default="",
        description="SQLAlchemy URL. Default: a SQLite file under DATA_DIR. PostgreSQL: postgresql+asyncpg://…",
    )
    data_dir: Path = Field(default=DEFAULT_DATA_DIR, description="Folder for the SQLite file and the generated key.")
    secret_key: str = Field(default="", description="Encrypts API keys and Saleor tokens at rest.")
    allowed_saleor_api_urls: str = Field(
        default="", description="Comma-separated Saleor API URLs allowed to install the app; `*` wildcards allowed."
    )
    vtmarketing_api_url: str = Field(default="https://api.vtcdn.net/v1/event/")
    log_level: str = Field(default="INFO")
    log_format: str = Field(default="auto", description="json, text or auto (text on a terminal).")

    # Delivery
    delivery_concurrency: int = Field(default=16, ge=1, le=256)
    delivery_max_age_seconds: float = Field(default=24 * 3600, gt=0, alias="DELIVERY_MAX_AGE")
    delivery_retry_base_seconds: float = Field(default=10.0, gt=0)
    delivery_retry_max_seconds: float = Field(default=3600.0, gt=0)
    delivery_lease_seconds: float = Field(default=120.0, gt=0)
    delivery_poll_seconds: float = Field(default=5.0, gt=0)
    vtmarketing_timeout_seconds: float = Field(default=10.0, gt=0)
    saleor_timeout_seconds: float = Field(default=10.0, gt=0)
    retention_days: int = Field(default=30, ge=1)
    reconcile_interval_seconds: float = Field(default=600.0, ge=0, alias="RECONCILE_INTERVAL")
    metrics_token: str = Field(default="")
    # Product feed
    feed_refresh_minutes: int = Field(default=60, ge=5, le=7 * 24 * 60, description="Default feed rebuild interval.")
    feed_schedule_seconds: float = Field(default=10.0, gt=0, le=3600, description="How often workers look for due feeds.")
    max_webhook_body_bytes: int = Field(default=1024 * 1024)
    # The settings page: how often its delivery log asks for news while the tab is visible (10x slower when hidden).
    page_poll_seconds: float = Field(default=3.0, ge=0.1, le=300)

    @field_validator("app_url", "vtmarketing_api_url")
    @classmethod
    def _absolute_http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an absolute http(s) URL, e.g. https://vtmarketing.example.com")
        return value.rstrip("/") if not value.endswith("/event/") else value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        value = value.upper()
        if value not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return value

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        if value and not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://", "sqlite://", "postgresql://")):
            raise ValueError("must be sqlite+aiosqlite:///path or postgresql+asyncpg://user@host/db")
        # Accept the short forms operators tend to paste and name the async driver for them.
        if value.startswith("sqlite://"):
            value = "sqlite+aiosqlite://" + value[len("sqlite://") :]
        if value.startswith("postgresql://"):
            value = "postgresql+asyncpg://" + value[len("postgresql://") :]
        return value

    @cached_property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{(self.data_dir / 'saleor-vtmarketing.db').as_posix()}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    @property
    def allowed_url_patterns(self) -> list[str]:
        return [p.strip() for p in self.allowed_saleor_api_urls.split(",") if p.strip()]

    def is_saleor_api_url_allowed(self, url: str) -> bool:
        """`url` matches a pattern, and its host[:port] matches the pattern's: a `*` may not reach across the host
        (`https://*.saleor.cloud/graphql/` must not admit `https://evil.example/.saleor.cloud/graphql/`). Only plain
        URLs qualify: no user info (`http://127.0.0.1:1@10.0.0.1/`), query, fragment, or odd host characters."""
        patterns = self.allowed_url_patterns
        if not patterns:
            return True
        netloc = _plain_url_netloc(url)
        if netloc is None:
            return False
        return any(
            fnmatch.fnmatchcase(url, pattern)
            and (not urlsplit(pattern).netloc or fnmatch.fnmatchcase(netloc, urlsplit(pattern).netloc))
            for pattern in patterns
        )

    def effective_secret_key(self) -> str:
        """SECRET_KEY, or on the embedded default a key generated once and kept in the data folder."""
        if self.secret_key:
            return self.secret_key
        if not self.is_sqlite:
            raise ConfigError("SECRET_KEY must be set when DATABASE_URL points at PostgreSQL (shared by all processes).")
        key_file = self.data_dir / "secret.key"
        if key_file.exists():
            return key_file.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(32)
        key_file.write_text(key)
        key_file.chmod(0o600)
        log.warning("SECRET_KEY is not set: generated one in %s. Back it up: without it stored keys are unreadable.", key_file)
        return key


_PLAIN_NETLOC = re.compile(r"(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")


def _plain_url_netloc(url: str) -> str | None:
    """The host[:port] of an absolute http(s) URL without user info, query or fragment; None for anything else."""
    if not url.isascii() or any(char.isspace() or not char.isprintable() or char == "\\" for char in url):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port  # raises for a port that is not a number in range
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or parts.query or parts.fragment or "#" in url or "?" in url:
        return None
    if not _PLAIN_NETLOC.fullmatch(parts.netloc) or port == 0:
        return None
    return parts.netloc


def load_settings(**overrides: object) -> Settings:
    """Read the environment; raise ConfigError with a readable list of what is wrong."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = str(err["loc"][0]).upper() if err["loc"] else "?"
            lines.append(f"  {name}: {err['msg']}")
        raise ConfigError("Invalid configuration:\n" + "\n".join(lines)) from None
