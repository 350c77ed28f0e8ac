"""Finding 6 of issue 12: register must not be a proxy into the app's own network.

With ALLOW_PRIVATE_SALEOR_URLS off (the default), a Saleor-Api-Url whose host is, or resolves to, a loopback,
private, link-local (cloud metadata), reserved or otherwise non-public address is refused with a 4xx before any
outbound call, with or without ALLOWED_SALEOR_API_URLS: the caller's token never leaves the app. The fake Saleor
listens on 127.0.0.1 and counts every request it gets: it must get none. The Saleor client checks again at every
connection (a name that resolves elsewhere later, DNS rebinding, is refused too)."""

from __future__ import annotations

import pytest

from saleor_app.saleor.client import SaleorClient
from saleor_app.saleor.exceptions import SaleorError
from tests.conftest import make_settings, start_app
from tests.fakes.saleor import FakeSaleor


def hostile_urls(port: int) -> list[str]:
    """Every way to name the fake Saleor (127.0.0.1:port) or another internal host."""
    return [
        f"http://127.0.0.1:{port}/graphql/",
        f"http://localhost:{port}/graphql/",
        f"http://LOCALHOST.:{port}/graphql/",
        f"http://app.localhost:{port}/graphql/",
        f"http://127.1:{port}/graphql/",
        f"http://0x7f000001:{port}/graphql/",
        f"http://2130706433:{port}/graphql/",
        f"http://017700000001:{port}/graphql/",
        f"http://[::1]:{port}/graphql/",
        f"http://[::ffff:127.0.0.1]:{port}/graphql/",
        f"http://[::ffff:7f00:1]:{port}/graphql/",
        f"http://0.0.0.0:{port}/graphql/",
        "http://169.254.169.254/graphql/",
        "http://[fd00:ec2::254]/graphql/",
        "http://10.0.0.7/graphql/",
        "http://192.168.1.1/graphql/",
        "http://100.64.0.1/graphql/",
        f"http://user@127.0.0.1:{port}/graphql/",
        f"http://shop.example.com@127.0.0.1:{port}/graphql/",
        f"http://127.0.0.1:{port}@shop.example.com/graphql/",
        f"ftp://127.0.0.1:{port}/graphql/",
        "file:///etc/passwd",
    ]


@pytest.mark.parametrize("allow_list", ["", "http://*/graphql/,http://*:*/graphql/"])  # other schemes stop the app
async def test_register_refuses_private_hosts_and_never_calls_them(allow_list, database_url, tmp_path, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(database_url, tmp_path, fake_vtm.api_url, allow_private_saleor_urls=False,
                             allowed_saleor_api_urls=allow_list)
    with FakeSaleor() as saleor:
        async with start_app(settings, run_worker=False) as running:
            for url in hostile_urls(saleor._server.port):
                headers = {**saleor.register_headers(), "Saleor-Api-Url": url}
                response = await running.client.post("/api/register", content=saleor.register_body(), headers=headers)
                assert 400 <= response.status_code < 500, (url, response.status_code, response.text)
                error = response.json()["error"]
                assert error["message"] and saleor.app_token not in response.text, (url, error)
            # Not one request reached the fake Saleor: no token was sent anywhere.
            assert saleor.graphql_requests == [] and saleor.jwks_requests == 0


async def test_the_refusal_names_the_address_and_the_development_switch(database_url, tmp_path, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(database_url, tmp_path, fake_vtm.api_url, allow_private_saleor_urls=False)
    with FakeSaleor() as saleor:
        async with start_app(settings, run_worker=False) as running:
            response = await running.register(saleor)
            assert response.status_code == 403
            error = response.json()["error"]
            assert error["code"] == "SALEOR_URL_PROHIBITED"
            assert "127.0.0.1" in error["message"] and "ALLOW_PRIVATE_SALEOR_URLS" in error["message"]
        # With the switch on (a Saleor on localhost or in docker), the same Saleor installs the app.
        settings = make_settings(database_url, tmp_path, fake_vtm.api_url, allow_private_saleor_urls=True)
        async with start_app(settings, run_worker=False) as running:
            assert (await running.register(saleor)).status_code == 200


@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.255.255.254", "10.1.2.3", "172.16.0.1", "192.168.0.1", "169.254.169.254", "100.64.0.1",
    "0.0.0.0", "224.0.0.1", "240.0.0.1", "255.255.255.255", "::1", "::", "fe80::1", "fc00::1", "fd00:ec2::254",
    "::ffff:127.0.0.1", "::ffff:169.254.169.254", "::127.0.0.1", "64:ff9b::a9fe:a9fe", "2002:7f00:1::1", "ff02::1",
])
def test_non_public_addresses(address: str) -> None:
    from saleor_app.saleor.url_guard import non_public_reason

    assert non_public_reason(address) is not None


@pytest.mark.parametrize("address", ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111", "::ffff:93.184.216.34"])
def test_public_addresses(address: str) -> None:
    from saleor_app.saleor.url_guard import non_public_reason

    assert non_public_reason(address) is None


async def test_a_name_is_refused_if_any_of_its_addresses_is_private() -> None:
    from saleor_app.saleor.url_guard import SaleorUrlGuard, UnsafeSaleorUrl

    async def resolve(host: str, port: int) -> list[str]:
        return {"shop.example.com": ["93.184.216.34"], "mixed.example.com": ["93.184.216.34", "10.0.0.5"]}[host]

    guard = SaleorUrlGuard(allow_private=False, resolve=resolve)
    await guard.check("https://shop.example.com/graphql/")
    with pytest.raises(UnsafeSaleorUrl, match="10.0.0.5"):
        await guard.check("https://mixed.example.com/graphql/")


async def test_every_connection_is_checked_again_dns_rebinding_included(fake_saleor: FakeSaleor) -> None:
    """A name that was public at install and resolves to the app's own network later: the client refuses to
    connect, and the request never leaves (the fake Saleor, on 127.0.0.1, sees nothing)."""
    from saleor_app.saleor.url_guard import SaleorUrlGuard

    answers = {"rebind.example.com": ["93.184.216.34"]}

    async def resolve(host: str, port: int) -> list[str]:
        return answers[host]

    guard = SaleorUrlGuard(allow_private=False, resolve=resolve)
    url = f"http://rebind.example.com:{fake_saleor._server.port}/graphql/"
    await guard.check(url)  # what register saw
    answers["rebind.example.com"] = ["127.0.0.1"]  # what the attacker's DNS answers afterwards
    client = SaleorClient(timeout=2.0, url_guard=guard)
    try:
        with pytest.raises(SaleorError, match="127.0.0.1"):
            await client.app_id(url, fake_saleor.app_token)
        with pytest.raises(SaleorError, match="127.0.0.1"):
            await client.fetch_jwks(url)
    finally:
        await client.aclose()
    assert fake_saleor.graphql_requests == [] and fake_saleor.jwks_requests == 0


async def test_the_guard_connects_to_the_address_it_checked(fake_saleor: FakeSaleor) -> None:
    """The connection goes to the address the guard checked, not to a second resolution of the name: a name no
    resolver knows (`saleor.invalid`) reaches the fake Saleor because the guard (told here that 127.0.0.1 is fine)
    handed that address over."""
    from saleor_app.saleor.url_guard import SaleorUrlGuard

    async def resolve(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    class LenientGuard(SaleorUrlGuard):
        async def public_addresses(self, host, port, *, error=Exception):  # type: ignore[no-untyped-def]
            return await resolve(host, port)

    guard = LenientGuard(allow_private=False)
    client = SaleorClient(timeout=5.0, url_guard=guard)
    try:
        url = f"http://saleor.invalid:{fake_saleor._server.port}/graphql/"
        assert await client.app_id(url, fake_saleor.app_token) == fake_saleor.app_id
    finally:
        await client.aclose()
    assert len(fake_saleor.graphql_requests) == 1
