"""Configuration: one typed object, checked at start with a readable error."""

from __future__ import annotations

import pytest

from saleor_app.config import ConfigError, Settings, load_settings


def test_defaults_are_the_embedded_setup(monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.is_sqlite and settings.resolved_database_url.endswith("data/saleor-vtmarketing.db")
    assert settings.vtmarketing_api_url == "https://api.vtcdn.net/v1/event/"
    assert settings.delivery_concurrency == 16 and settings.delivery_max_age_seconds == 24 * 3600


def test_bad_values_are_named_in_one_readable_error(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("APP_URL", "vtm.example.com")
    monkeypatch.setenv("LOG_LEVEL", "loud")
    monkeypatch.setenv("DATABASE_URL", "mysql://x")
    with pytest.raises(ConfigError) as error:
        load_settings()
    message = str(error.value)
    assert "APP_URL" in message and "LOG_LEVEL" in message and "DATABASE_URL" in message
    assert "absolute http(s) URL" in message


def test_short_database_urls_get_the_async_driver() -> None:
    assert Settings(database_url="postgresql://u@h/db").database_url == "postgresql+asyncpg://u@h/db"
    assert Settings(database_url="sqlite:///x.db").database_url == "sqlite+aiosqlite:///x.db"


def test_secret_key_is_generated_once_on_the_embedded_default(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(data_dir=tmp_path / "data")
    first = settings.effective_secret_key()
    assert "SECRET_KEY is not set" in caplog.text
    assert Settings(data_dir=tmp_path / "data").effective_secret_key() == first
    assert oct((tmp_path / "data" / "secret.key").stat().st_mode)[-3:] == "600"


def test_postgresql_needs_an_explicit_secret_key() -> None:
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        Settings(database_url="postgresql+asyncpg://u@h/db").effective_secret_key()


def test_allow_list_with_wildcards() -> None:
    settings = Settings(allowed_saleor_api_urls="https://shop.example.com/graphql/, https://*.saleor.cloud/graphql/")
    assert settings.is_saleor_api_url_allowed("https://shop.example.com/graphql/")
    assert settings.is_saleor_api_url_allowed("https://acme.saleor.cloud/graphql/")
    assert not settings.is_saleor_api_url_allowed("https://evil.example.com/graphql/")
    assert not settings.is_saleor_api_url_allowed("http://127.0.0.1:8000/graphql/")
    assert Settings().is_saleor_api_url_allowed("http://anything/graphql/")  # unset: allow all (warned at start)


def test_issue_named_variables_are_read(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DELIVERY_MAX_AGE", "7200")
    monkeypatch.setenv("RECONCILE_INTERVAL", "0")
    monkeypatch.setenv("DELIVERY_RETRY_BASE_SECONDS", "0.5")
    settings = load_settings()
    assert (settings.delivery_max_age_seconds, settings.reconcile_interval_seconds, settings.delivery_retry_base_seconds) == (7200, 0, 0.5)
