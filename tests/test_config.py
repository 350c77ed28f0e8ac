"""Configuration: one typed object, checked at start with a readable error."""

from __future__ import annotations

import pytest

from saleor_app.config import ConfigError, Settings, load_settings


def test_defaults_are_the_embedded_setup(monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.is_sqlite and settings.resolved_database_url.endswith("data/saleor-vtmarketing.db")
    assert settings.vtmarketing_api_url == "https://api.vtcdn.net/v1/event/"
    assert settings.delivery_concurrency == 64 and settings.delivery_max_age_seconds == 24 * 3600


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


# --- ALLOWED_SALEOR_API_URLS -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("value, entries", [
    ("https://shop.example.com/graphql/", ["https://shop.example.com/graphql/"]),
    (" https://a.example.com/graphql/ , https://*.saleor.cloud/graphql/ ,",
     ["https://a.example.com/graphql/", "https://*.saleor.cloud/graphql/"]),
    ("http://127.0.0.1:*", ["http://127.0.0.1:*"]),
    ("http://[::1]:8000/graphql/", ["http://[::1]:8000/graphql/"]),
    ("", []),
])
def test_allow_list_entries_are_absolute_urls(value: str, entries: list[str]) -> None:
    assert Settings(allowed_saleor_api_urls=value).allowed_url_patterns == entries


@pytest.mark.parametrize("value, says", [
    ("shop.example.com/graphql/", "not an absolute http(s) URL"),
    ("https://a.example.com/graphql/ https://b.example.com/graphql/", "commas, not spaces or semicolons"),
    ("https://a.example.com/graphql/;https://b.example.com/graphql/", "commas, not spaces or semicolons"),
    ('"https://shop.example.com/graphql/"', "remove the quotes"),
    ("'https://shop.example.com/graphql/'", "remove the quotes"),
    ("ftp://shop.example.com/graphql/", "not an absolute http(s) URL"),
    ("https://user@shop.example.com/graphql/", "not an absolute http(s) URL"),
    ("https://shop.example.com/graphql/?x=1", "not an absolute http(s) URL"),
    ("https:///graphql/", "not an absolute http(s) URL"),
    ("*", "not an absolute http(s) URL"),
])
def test_garbage_in_the_allow_list_stops_the_app_naming_the_variable(monkeypatch, value: str, says: str) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ALLOWED_SALEOR_API_URLS", value)
    with pytest.raises(ConfigError) as error:
        load_settings()
    (problem,) = error.value.problems
    assert problem.startswith("ALLOWED_SALEOR_API_URLS: ") and says in problem, problem


@pytest.mark.parametrize("allowed, url", [
    ("https://shop.example.com/graphql/", "https://shop.example.com/graphql"),
    ("https://shop.example.com/graphql", "https://shop.example.com/graphql/"),
    ("https://*.saleor.cloud/graphql", "https://acme.saleor.cloud/graphql/"),
    ("https://Shop.Example.com/graphql/", "https://shop.example.com/graphql/"),
])
def test_a_trailing_slash_or_the_hosts_case_is_not_a_refusal(allowed: str, url: str) -> None:
    assert Settings(allowed_saleor_api_urls=allowed).is_saleor_api_url_allowed(url)


@pytest.mark.parametrize("url", [
    "https://shop.example.com/graphql//", "https://shop.example.com/graphql/x", "https://shop.example.com/",
    "http://shop.example.com/graphql/", "https://shop.example.com.evil.example/graphql/",
])
def test_only_the_slash_is_forgiven(url: str) -> None:
    assert not Settings(allowed_saleor_api_urls="https://shop.example.com/graphql/").is_saleor_api_url_allowed(url)


# --- values that cannot run -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, value, says", [
    ("LOG_FORMAT", "xml", "must be one of auto, json, text"),
    ("LOG_FORMAT", "", "must be one of"),
    ("MAX_WEBHOOK_BODY_BYTES", "0", "greater than 0"),
    ("MAX_WEBHOOK_BODY_BYTES", "-5", "greater than 0"),
    ("DATA_DIR", "", "is empty"),
    ("DATA_DIR", "   ", "is empty"),
    ("PORT", "http", "valid integer"),
    ("PORT", "70000", "less than or equal to 65535"),
])
def test_each_unusable_value_is_one_problem_naming_its_variable(monkeypatch, name: str, value: str, says: str) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as error:
        load_settings()
    (problem,) = error.value.problems
    assert problem.startswith(f"{name}: ") and says in problem and "\n" not in problem, problem


def test_log_format_is_read_case_insensitively(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LOG_FORMAT", " JSON ")
    assert load_settings().log_format == "json"


def test_secrets_are_not_repeated_in_errors(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DATABASE_URL", "mysql://user:hunter2-password@db/x")
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert "hunter2" not in str(error.value) and "DATABASE_URL" in str(error.value)


# --- the port and APP_URL ---------------------------------------------------------------------------------------------


def test_app_url_follows_the_port_until_it_is_given(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("APP_URL", raising=False)
    monkeypatch.setenv("PORT", "8080")
    settings = load_settings()
    assert (settings.port, settings.app_url, settings.app_url_given) == (8080, "http://localhost:8080", False)
    moved = settings.with_port(9000)  # serve --port 9000
    assert (moved.port, moved.app_url) == (9000, "http://localhost:9000")
    monkeypatch.setenv("APP_URL", "https://vtm.example.com/")
    given = load_settings()
    assert given.app_url_given and given.with_port(9000).app_url == "https://vtm.example.com"
