"""The operator's CLI: channel settings (keys masked) and the delivery log, on the same records as the page."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from typer.testing import CliRunner

from saleor_app.cli import app
from saleor_app.config import Settings
from saleor_app.context import AppContext
from saleor_app.storage.repositories import DeliveryRepository, InstallationRepository, NewDelivery

API_URL = "https://shop.example.com/graphql/"


@pytest.fixture
def env(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    values = {
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}",
        "SECRET_KEY": "cli-test-secret",
        "ALLOWED_SALEOR_API_URLS": "https://*.example.com/graphql/",
        "LOG_FORMAT": "text",
        "COLUMNS": "200",  # rich tables would wrap at 80 columns
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)

    async def seed() -> None:
        ctx = AppContext.create(Settings())
        await ctx.db.migrate()
        async with ctx.db.transaction() as session:
            installation = await InstallationRepository(session).save_registration(
                saleor_api_url=API_URL, app_id="QXBwOjQ=", token_encrypted=ctx.secrets.encrypt("t" * 30), jwks='{"keys": []}'
            )
            repo = DeliveryRepository(session)
            for number, status in (("1", "failed"), ("2", "delivered"), ("3", "failed")):
                await repo.add_all_if_new([NewDelivery(installation.id, f"order-{number}", number, "default-channel",
                                                       json.dumps({"order": {"id": f"order-{number}"}}), "webhook", status=status,
                                                       reason="VTmarketing refused the event" if status == "failed" else "ok")])
        await ctx.aclose()

    asyncio.run(seed())
    return tmp_path


def run(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_channels_set_and_list_mask_the_key(env) -> None:  # type: ignore[no-untyped-def]
    result = run("channels", "set", "--saleor-api-url", API_URL, "--channel", "default-channel",
                 "--api-key", "secret-api-key-9876", "--item-id", "variant-id")
    assert result.exit_code == 0, result.output
    assert "9876" in result.output and "secret-api-key" not in result.output
    listed = run("channels", "list")
    assert listed.exit_code == 0
    assert "default-channel" in listed.output and "variant-id" in listed.output
    assert "secret-api-key" not in listed.output
    assert b"secret-api-key-9876" not in (env / "cli.db").read_bytes()
    # Partial update: the key stays, the toggle changes.
    assert run("channels", "set", "--saleor-api-url", API_URL, "--channel", "default-channel", "--disabled").exit_code == 0
    assert "False" in run("channels", "list").output and "9876" in run("channels", "list").output


def test_channels_set_rejects_bad_values_readably(env) -> None:  # type: ignore[no-untyped-def]
    result = run("channels", "set", "--saleor-api-url", API_URL, "--channel", "c", "--item-id", "ean")
    assert result.exit_code == 1 and "Item id must be one of" in result.output
    result = run("channels", "set", "--saleor-api-url", "https://unknown.example.com/graphql/", "--channel", "c")
    assert result.exit_code == 1 and "No installation" in result.output


def test_deliveries_list_and_retry(env) -> None:  # type: ignore[no-untyped-def]
    listed = run("deliveries", "list", "--status", "failed")
    assert listed.exit_code == 0
    assert "refused" in listed.output and listed.output.count("failed") >= 2
    assert run("deliveries", "list", "--status", "nonsense").exit_code == 1
    retried = run("deliveries", "retry", "--all-failed")
    assert retried.exit_code == 0 and "2 failed deliveries queued again" in retried.output
    assert "pending" in run("deliveries", "list").output
    assert run("deliveries", "retry").exit_code == 2  # neither an id nor --all-failed


def test_every_command_has_help() -> None:
    for command in (["serve"], ["migrate"], ["worker"], ["backfill"], ["reconcile"], ["installations"],
                    ["channels", "set"], ["channels", "list"], ["deliveries", "list"], ["deliveries", "retry"]):
        result = run(*command, "--help")
        assert result.exit_code == 0 and "Usage" in result.output, command


def test_deliveries_list_shows_times_in_this_machines_zone_with_the_next_try(env, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from datetime import datetime, timezone

    from sqlalchemy import update

    from saleor_app.storage.models import Delivery

    next_try = datetime(2026, 11, 27, 10, 0, 5, tzinfo=timezone.utc)

    async def make_one_retrying() -> None:
        ctx = AppContext.create(Settings())
        async with ctx.db.transaction() as session:
            await session.execute(
                update(Delivery).where(Delivery.order_number == "1")
                .values(status="retrying", next_attempt_at=next_try, reason="VTmarketing could not take the event (HTTP 503)")
            )
        await ctx.aclose()

    asyncio.run(make_one_retrying())
    monkeypatch.setenv("TZ", "Asia/Kolkata")  # UTC+05:30
    time.tzset()
    try:
        listed = run("deliveries", "list", "--status", "retrying")
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert listed.exit_code == 0, listed.output
    assert "next try" in listed.output
    assert "2026-11-27 15:30:05 IST" in listed.output  # 10:00:05 UTC, in the machine's zone, named
    assert "10:00:05" not in listed.output
# --- help that says what to give ---------------------------------------------------------------------------------------


def every_command():  # type: ignore[no-untyped-def]
    import typer.main

    root = typer.main.get_command(app)
    stack = [((), root)]
    while stack:
        path, command = stack.pop()
        if hasattr(command, "commands"):
            stack.extend(((*path, name), sub) for name, sub in command.commands.items())
        if path:
            yield path, command


def test_help_has_no_type_tags_and_every_command_and_option_says_what_it_does() -> None:
    import re

    commands = list(every_command())
    assert {"serve", "worker", "migrate", "healthcheck", "backfill", "reconcile", "installations"} <= {p[-1] for p, _ in commands}
    for path, command in commands:
        result = run(*path, "--help")
        assert result.exit_code == 0 and "Usage" in result.output, path
        tags = re.findall(r"<(?:bool|str|int|float|text|path)>", result.output, re.IGNORECASE)
        assert not tags, f"{' '.join(path)} --help shows {tags}:\n{result.output}"
        assert (command.help or "").strip(), f"{' '.join(path)} has no description"
        for param in command.params:
            if getattr(param, "hidden", False) or param.name == "help":
                continue
            assert (getattr(param, "help", None) or "").strip(), f"{' '.join(path)} {param.name} says nothing"
        if not hasattr(command, "commands"):  # a leaf command shows how it is typed
            assert "Example" in command.help, f"{' '.join(path)} has no example"


# --- channels set on a Saleor that has not (or no longer) installed the app -----------------------------------------------


def test_channels_set_on_an_unknown_saleor_says_how_to_install(env) -> None:  # type: ignore[no-untyped-def]
    result = run("channels", "set", "--saleor-api-url", "https://other.example.com/graphql/", "--channel", "c",
                 "--api-key", "k-1234")
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert "No installation for https://other.example.com/graphql/" in text
    assert "manifest URL http://localhost:8000/api/manifest" in text and "Install from manifest" in text
    assert f"Installed: {API_URL}" in text


def test_channels_set_accepts_the_url_without_its_trailing_slash(env) -> None:  # type: ignore[no-untyped-def]
    result = run("channels", "set", "--saleor-api-url", API_URL.rstrip("/"), "--channel", "default-channel", "--disabled")
    assert result.exit_code == 0, result.output


def test_channels_set_on_an_uninstalled_saleor_says_to_install_again(env) -> None:  # type: ignore[no-untyped-def]
    async def uninstall() -> None:
        ctx = AppContext.create(Settings())
        async with ctx.db.transaction() as session:
            repo = InstallationRepository(session)
            await repo.mark_uninstalled((await repo.by_api_url(API_URL)).id, "Saleor reported the app deleted")
        await ctx.aclose()

    asyncio.run(uninstall())
    result = run("channels", "set", "--saleor-api-url", API_URL, "--channel", "default-channel", "--api-key", "k-1234")
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert f"The app is no longer installed in {API_URL} (Saleor reported the app deleted)" in text
    assert "manifest URL" in text and "channel settings are kept" in text


# --- backfill's dates --------------------------------------------------------------------------------------------------


def test_backfill_refuses_until_before_since(env) -> None:  # type: ignore[no-untyped-def]
    result = run("backfill", "--saleor-api-url", API_URL, "--channel", "default-channel",
                 "--since", "2026-02-01", "--until", "2026-01-31")
    assert result.exit_code == 2
    assert "--until (2026-01-31) is before --since (2026-02-01)" in " ".join(result.output.split())
    assert run("backfill", "--saleor-api-url", API_URL, "--channel", "c", "--since", "yesterday").exit_code == 2
