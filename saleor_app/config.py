"""The app's configuration: one typed object read from the environment, checked at start."""

from __future__ import annotations

import fnmatch
import logging
import re
import secrets
from functools import cached_property
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, PrivateAttr, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger(__name__)

DEFAULT_DATA_DIR = Path("data")


class ConfigError(Exception):
    """Raised at start when the environment does not describe a runnable app. Each problem is one line that names
    the variable to fix and why, e.g. `DATA_DIR: cannot write to /data (Read-only file system)`."""

    def __init__(self, *problems: str) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True)

    app_url: str = Field(
        default="",
        description="Public base URL of the app, as Saleor and the dashboard reach it (used in the manifest). "
        "Default: http://localhost:PORT.",
    )
    port: int = Field(default=8000, ge=0, le=65535, description="TCP port `serve` listens on (`serve --port` wins).")
    database_url: str = Field(
        default="",
        description="SQLAlchemy URL. Default: a SQLite file under DATA_DIR. PostgreSQL: postgresql+asyncpg://…",
    )
    data_dir: Path = Field(default=DEFAULT_DATA_DIR, description="Folder for the SQLite file and the generated key.")
    secret_key: str = Field(default="", description="Encrypts API keys and Saleor tokens at rest.")
    secret_key_fallbacks: str = Field(
        default="",
        description="Comma-separated previous SECRET_KEYs: still read, never written (see `rotate-secrets`).",
    )
    allowed_saleor_api_urls: str = Field(
        default="",
        description="Comma-separated absolute Saleor API URLs allowed to install the app; `*` wildcards allowed.",
    )
    allow_private_saleor_urls: bool = Field(
        default=False,
        description="Let a Saleor on a private, loopback or link-local address install the app (development only).",
    )
    vtmarketing_api_url: str = Field(default="https://api.vtcdn.net/v1/event/")
    log_level: str = Field(default="INFO")
    log_format: str = Field(default="auto", description="json, text or auto (text on a terminal).")

    # Delivery
    # VTmarketing takes ~100 ms per event, so a worker delivers at most concurrency / 0.1 s: 16 capped it at 160/s.
    # At 64 the CPU (~3 ms per delivery) is the limit instead; the VTmarketing client keeps pools of 8 connections.
    delivery_concurrency: int = Field(default=64, ge=1, le=256)
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
    max_webhook_body_bytes: int = Field(default=1024 * 1024, gt=0)
    # The settings page: how often its delivery log asks for news while the tab is visible (10x slower when hidden).
    page_poll_seconds: float = Field(default=3.0, ge=0.1, le=300)

    _app_url_given: bool = PrivateAttr(default=False)

    @field_validator("app_url", "vtmarketing_api_url")
    @classmethod
    def _absolute_http_url(cls, value: str, info: ValidationInfo) -> str:
        if value == "" and info.field_name == "app_url":
            return value  # APP_URL left out (or empty): it follows PORT, see _app_url_follows_port
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

    @field_validator("log_format")
    @classmethod
    def _known_format(cls, value: str) -> str:
        value = value.strip().lower()
        if value not in LOG_FORMATS:
            raise ValueError(f"must be one of {', '.join(LOG_FORMATS)}")
        return value

    @field_validator("data_dir", mode="before")
    @classmethod
    def _data_dir_given(cls, value: object) -> object:
        # An empty value would silently mean the working folder: say so instead.
        if isinstance(value, str) and not value.strip():
            raise ValueError("is empty: name a folder (default ./data), or leave the variable out")
        return value

    @field_validator("allowed_saleor_api_urls")
    @classmethod
    def _allow_list(cls, value: str) -> str:
        parse_allow_list(value)
        return value.strip()

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

    @model_validator(mode="after")
    def _app_url_follows_port(self) -> "Settings":
        self._app_url_given = bool(self.app_url)
        if not self.app_url:
            self.app_url = f"http://localhost:{self.port}"
        return self

    @property
    def app_url_given(self) -> bool:
        """APP_URL was set, rather than derived from the port."""
        return self._app_url_given

    def with_port(self, port: int) -> "Settings":
        """These settings for a server on `port` (`serve --port`); APP_URL follows unless it was given."""
        update: dict[str, object] = {"port": port}
        if not self.app_url_given:
            update["app_url"] = f"http://localhost:{port}"
        return self.model_copy(update=update)

    @cached_property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{(self.data_dir / 'saleor-vtmarketing.db').as_posix()}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    @property
    def secret_key_fallback_list(self) -> list[str]:
        return [key.strip() for key in self.secret_key_fallbacks.split(",") if key.strip()]

    @property
    def allowed_url_patterns(self) -> list[str]:
        return parse_allow_list(self.allowed_saleor_api_urls)

    def is_saleor_api_url_allowed(self, url: str) -> bool:
        """`url` matches a pattern, and its host[:port] matches the pattern's: a `*` may not reach across the host
        (`https://*.saleor.cloud/graphql/` must not admit `https://evil.example/.saleor.cloud/graphql/`). Only plain
        URLs qualify: no user info (`http://127.0.0.1:1@10.0.0.1/`), query, fragment, or odd host characters.
        Scheme and host compare case-insensitively, and a trailing slash on either side makes no difference."""
        patterns = self.allowed_url_patterns
        if not patterns:
            return True
        netloc = _plain_url_netloc(url)
        if netloc is None:
            return False
        url, netloc = _comparable(url), netloc.lower()
        for pattern in patterns:
            pattern = _comparable(pattern)
            if fnmatch.fnmatchcase(url, pattern) and fnmatch.fnmatchcase(netloc, urlsplit(pattern).netloc):
                return True
        return False

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


LOG_FORMATS = ("auto", "json", "text")

# One allow-list entry: an absolute http(s) URL whose host (and port) may hold `*` wildcards, without user info,
# query or fragment. E.g. https://shop.example.com/graphql/, https://*.saleor.cloud/graphql/, http://127.0.0.1:*
_ALLOW_ENTRY = re.compile(
    r"https?://(?:[A-Za-z0-9*-]+(?:\.[A-Za-z0-9*-]+)*\.?|\[[0-9A-Fa-f:.]+\])(?::(?:[0-9]{1,5}|\*))?(?:/[^\s?#\\]*)?",
    re.IGNORECASE,
)
_ALLOW_EXAMPLE = "e.g. https://shop.example.com/graphql/,https://*.saleor.cloud/graphql/"


def parse_allow_list(value: str) -> list[str]:
    """The entries of ALLOWED_SALEOR_API_URLS; ValueError (naming the entry) for anything that is not a list of
    absolute http(s) URLs separated by commas. An unusable entry must stop the app: ignoring it would refuse the
    merchant's Saleor at install time, far from the typo, and a garbled list could admit more than meant."""
    value = value.strip()
    if not value:
        return []
    if any(quote in value for quote in "\"'`"):
        raise ValueError(f"remove the quotes: give the URLs bare, {_ALLOW_EXAMPLE}")
    entries = []
    for entry in (part.strip() for part in value.split(",")):
        if not entry:
            continue  # "a,,b" or a trailing comma
        if ";" in entry or any(char.isspace() for char in entry):
            raise ValueError(f"separate the URLs with commas, not spaces or semicolons: {entry!r} ({_ALLOW_EXAMPLE})")
        if not _ALLOW_ENTRY.fullmatch(entry):
            raise ValueError(
                f"{entry!r} is not an absolute http(s) URL (scheme, host, optional port and path; no user, query or "
                f"fragment); give each Saleor API URL in full, {_ALLOW_EXAMPLE}"
            )
        entries.append(entry)
    return entries


def _comparable(url: str) -> str:
    """`url` with its scheme and host lower-cased and one trailing slash less: how two spellings of one URL compare."""
    scheme, _, rest = url.partition("://")
    host, slash, path = rest.partition("/")
    url = f"{scheme.lower()}://{host.lower()}{slash}{path}"
    return url[:-1] if url.endswith("/") else url


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


# Values never repeated in an error message: they may be secrets (a DATABASE_URL holds its password).
_UNQUOTED_INPUTS = {"SECRET_KEY", "METRICS_TOKEN", "DATABASE_URL"}


def _env_name(field_name: str) -> str:
    field = Settings.model_fields.get(field_name)
    return ((field.alias if field is not None else None) or field_name).upper()


def load_settings(**overrides: object) -> Settings:
    """Read the environment; raise ConfigError with one line per variable that is wrong."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = _env_name(str(err["loc"][0])) if err["loc"] else "?"
            message = err["msg"].removeprefix("Value error, ")
            given = err.get("input")
            if name not in _UNQUOTED_INPUTS and isinstance(given, (str, int, float)) and given != "" and repr(given) not in message:
                message = f"{message} (got {given!r})"
            problems.append(f"{name}: {message}")
        raise ConfigError(*problems) from None
