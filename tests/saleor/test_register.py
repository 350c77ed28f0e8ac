"""The install handshake (tokenTargetUrl), in the order Saleor's SDK checks it."""

from __future__ import annotations

import json

from sqlalchemy import text

from saleor_app.storage.repositories import InstallationRepository
from tests.conftest import make_settings, start_app
from tests.fakes.saleor import FakeSaleor
from tests.paths import CAPTURED_DIR


async def installation_of(running_app, api_url: str):  # type: ignore[no-untyped-def]
    async with running_app.ctx.db.session() as session:
        return await InstallationRepository(session).by_api_url(api_url)


async def test_register_stores_the_installation(running_app, fake_saleor: FakeSaleor) -> None:  # type: ignore[no-untyped-def]
    response = await running_app.register(fake_saleor)
    assert response.status_code == 200, response.text
    assert response.json() == {"success": True}
    installation = await installation_of(running_app, fake_saleor.api_url)
    assert installation.app_id == fake_saleor.app_id
    assert json.loads(installation.jwks) == json.loads(fake_saleor.jwks_json())
    # The token is stored encrypted, and decrypts to what Saleor sent.
    assert fake_saleor.app_token not in installation.token_encrypted
    assert running_app.ctx.secrets.decrypt(installation.token_encrypted) == fake_saleor.app_token


async def test_token_is_not_in_the_database_in_plain_text(running_app, fake_saleor: FakeSaleor) -> None:  # type: ignore[no-untyped-def]
    await running_app.register(fake_saleor)
    async with running_app.ctx.db.session() as session:
        rows = (await session.execute(text("SELECT * FROM installations"))).all()
    assert rows and all(fake_saleor.app_token not in str(row) for row in rows)


def test_captured_register_request_shape() -> None:
    # Our fake sends what the real Saleor sent: the body and the headers we rely on.
    captured = json.loads((CAPTURED_DIR / "register-request.json").read_text())
    assert json.loads((CAPTURED_DIR / "register-request.body").read_bytes()).keys() == {"auth_token"}
    assert "Saleor-Api-Url" in captured["headers"]
    with FakeSaleor() as saleor:
        assert set(captured["headers"]) - {"Content-Length", "Host", "Accept", "Accept-Encoding", "Connection"} <= set(
            saleor.register_headers()
        )


async def test_reinstall_replaces_the_token(running_app, fake_saleor: FakeSaleor) -> None:  # type: ignore[no-untyped-def]
    await running_app.register(fake_saleor)
    first = await installation_of(running_app, fake_saleor.api_url)
    fake_saleor.app_token = "N" * 30
    response = await running_app.register(fake_saleor)
    assert response.status_code == 200
    second = await installation_of(running_app, fake_saleor.api_url)
    assert second.id == first.id
    assert running_app.ctx.secrets.decrypt(second.token_encrypted) == "N" * 30


async def test_missing_api_url_header_is_400(running_app, fake_saleor: FakeSaleor) -> None:  # type: ignore[no-untyped-def]
    headers = {k: v for k, v in fake_saleor.register_headers().items() if k.lower() != "saleor-api-url"}
    response = await running_app.client.post("/api/register", content=fake_saleor.register_body(), headers=headers)
    assert response.status_code == 400
    assert "Saleor-Api-Url" in response.json()["error"]["message"]


async def test_missing_token_is_400(running_app, fake_saleor: FakeSaleor) -> None:  # type: ignore[no-untyped-def]
    for body in (b"{}", b"not json", b'{"auth_token": 5}', b"[]"):
        response = await running_app.client.post("/api/register", content=body, headers=fake_saleor.register_headers())
        assert response.status_code == 400, body
        assert "auth_token" in response.json()["error"]["message"]


async def test_disallowed_saleor_is_403_with_a_message_the_dashboard_shows(tmp_path, database_url, fake_saleor) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(database_url, tmp_path, allowed_saleor_api_urls="https://shop.example.com/graphql/,https://*.trusted.com/graphql/")
    async with start_app(settings, run_worker=False) as running:
        response = await running.register(fake_saleor)
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "SALEOR_URL_PROHIBITED"
        assert response.json()["error"]["message"]
        assert fake_saleor.graphql_requests == []  # refused before any call to that URL
        assert await installation_of(running, fake_saleor.api_url) is None


async def test_allow_list_wildcards_admit_a_matching_saleor(tmp_path, database_url, fake_saleor) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(database_url, tmp_path, allowed_saleor_api_urls="http://127.0.0.1:*/graphql/")
    async with start_app(settings, run_worker=False) as running:
        assert (await running.register(fake_saleor)).status_code == 200


async def test_unproven_token_is_401(running_app, fake_saleor: FakeSaleor) -> None:  # type: ignore[no-untyped-def]
    body = json.dumps({"auth_token": "forged-token-000000000000000000"}).encode()
    response = await running_app.client.post("/api/register", content=body, headers=fake_saleor.register_headers())
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UNKNOWN_APP_ID"
    assert await installation_of(running_app, fake_saleor.api_url) is None


async def test_unreachable_saleor_is_401_quickly(running_app, fake_saleor: FakeSaleor) -> None:  # type: ignore[no-untyped-def]
    headers = dict(fake_saleor.register_headers(), **{"Saleor-Api-Url": "http://127.0.0.1:9/graphql/"})
    response = await running_app.client.post("/api/register", content=fake_saleor.register_body(), headers=headers)
    assert response.status_code == 401


async def test_jwks_unavailable_is_401(running_app, fake_saleor: FakeSaleor) -> None:  # type: ignore[no-untyped-def]
    fake_saleor.jwks_status_override = 500
    response = await running_app.register(fake_saleor)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "JWKS_NOT_AVAILABLE"
    assert await installation_of(running_app, fake_saleor.api_url) is None


async def test_two_saleors_install_one_deployment(running_app) -> None:  # type: ignore[no-untyped-def]
    with FakeSaleor() as one, FakeSaleor() as two:
        assert (await running_app.register(one)).status_code == 200
        assert (await running_app.register(two)).status_code == 200
        first, second = await installation_of(running_app, one.api_url), await installation_of(running_app, two.api_url)
        assert first.id != second.id
        assert running_app.ctx.secrets.decrypt(first.token_encrypted) == one.app_token
        assert running_app.ctx.secrets.decrypt(second.token_encrypted) == two.app_token


# --- refusals are logged ----------------------------------------------------------------------------------------------


def refusal_lines(caplog) -> list[str]:  # type: ignore[no-untyped-def]
    return [r.getMessage() for r in caplog.records if r.name == "saleor_app.errors" and "refused" in r.getMessage()]


async def test_every_refused_register_is_logged_with_the_url_and_the_reason_never_the_token(tmp_path, database_url, fake_saleor, caplog) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(database_url, tmp_path, allowed_saleor_api_urls="https://shop.example.com/graphql/")
    caplog.set_level("INFO")
    async with start_app(settings, run_worker=False) as running:
        assert (await running.register(fake_saleor)).status_code == 403  # not on the allow-list
        headers = dict(fake_saleor.register_headers(), **{"Saleor-Api-Url": "https://shop.example.com/graphql/"})
        body = json.dumps({"auth_token": fake_saleor.app_token + "x"}).encode()
        assert (await running.client.post("/api/register", content=b"{}", headers=headers)).status_code == 400
        assert (await running.client.post("/api/register", content=body, headers=headers)).status_code == 401
    lines = refusal_lines(caplog)
    assert len(lines) == 3, lines
    assert lines[0] == (f"register refused for {fake_saleor.api_url}: 403 SALEOR_URL_PROHIBITED: "
                        "This Saleor is not allowed to install this app (ALLOWED_SALEOR_API_URLS).")
    assert "https://shop.example.com/graphql/: 400 MISSING_AUTH_TOKEN" in lines[1]
    assert "https://shop.example.com/graphql/: 401 UNKNOWN_APP_ID" in lines[2]
    assert fake_saleor.app_token not in caplog.text


async def test_a_trailing_slash_difference_with_the_allow_list_still_installs(tmp_path, database_url, fake_saleor) -> None:  # type: ignore[no-untyped-def]
    allowed = fake_saleor.api_url.rstrip("/")  # the operator wrote .../graphql, Saleor says .../graphql/
    settings = make_settings(database_url, tmp_path, allowed_saleor_api_urls=allowed)
    async with start_app(settings, run_worker=False) as running:
        assert (await running.register(fake_saleor)).status_code == 200
        assert await installation_of(running, fake_saleor.api_url) is not None
