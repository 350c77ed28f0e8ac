"""The install handshake (`POST /api/register`) under hostile input: arbitrary bodies and headers, and Saleor API
URLs crafted to make the app call somewhere it must not (itself, a private address, a host that only looks allowed).

Every answer is a 4xx with a JSON error and a human message (never a 5xx); a URL that ALLOWED_SALEOR_API_URLS does
not allow is refused with 403 before any outbound call; nothing is stored but a genuine installation, and a stored
installation is never changed by a request that is not Saleor's."""

from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from saleor_app.saleor.exceptions import SaleorError
from saleor_app.storage.models import Installation
from tests.conftest import make_settings, start_app
from tests.fakes.saleor import FakeSaleor
from tests.hostile import FUZZ, assert_clear_answer
from sqlalchemy import select

ALLOWED = "http://127.0.0.1:*/graphql/,https://*.saleor.cloud/graphql/"


class OutboundSpy:
    """Stands in front of the app's Saleor client: records every URL the app wants to call. Calls to 127.0.0.1
    reach the real client (the fake Saleor, or a closed port); nothing else ever leaves the machine."""

    def __init__(self, client) -> None:  # type: ignore[no-untyped-def]
        self.urls: list[str] = []
        self._execute, self._fetch_jwks = client.execute, client.fetch_jwks
        client.execute, client.fetch_jwks = self.execute, self.fetch_jwks

    def _check(self, url: str) -> None:
        self.urls.append(url)
        try:
            host = httpx.URL(url).host
        except Exception:  # noqa: BLE001 - the real client could not call it either
            raise SaleorError("unusable URL") from None
        if host != "127.0.0.1":
            raise SaleorError("not leaving the test machine")

    async def execute(self, api_url: str, *args, **kwargs):  # type: ignore[no-untyped-def]
        self._check(api_url)
        return await self._execute(api_url, *args, **kwargs)

    async def fetch_jwks(self, api_url: str) -> str:
        self._check(api_url)
        return await self._fetch_jwks(api_url)


def legit(url: str) -> bool:
    """What ALLOWED means: plain http://127.0.0.1:<port>/graphql/ or https://<sub>.saleor.cloud/graphql/ (with or
    without the trailing slash: that difference is not a refusal)."""
    try:
        parsed = httpx.URL(url)
    except Exception:  # noqa: BLE001
        return False
    if parsed.userinfo or parsed.query or parsed.fragment or parsed.path not in ("/graphql/", "/graphql"):
        return False
    if parsed.scheme == "http":
        return parsed.host == "127.0.0.1"
    return parsed.scheme == "https" and parsed.host.endswith(".saleor.cloud") and parsed.port is None


@pytest.fixture
async def guarded(database_url, tmp_path, fake_vtm):  # type: ignore[no-untyped-def]
    settings = make_settings(database_url, tmp_path, fake_vtm.api_url, allowed_saleor_api_urls=ALLOWED)
    async with start_app(settings, run_worker=False) as running:
        running.spy = OutboundSpy(running.ctx.saleor)
        yield running


async def installations(running_app) -> list[Installation]:  # type: ignore[no-untyped-def]
    async with running_app.ctx.db.session() as session:
        return list(await session.scalars(select(Installation).order_by(Installation.id)))


async def register(running_app, body: bytes, headers) -> httpx.Response:  # type: ignore[no-untyped-def]
    return await running_app.client.post("/api/register", content=body, headers=headers)


def field_value(text: str) -> bytes:
    raw = text.encode("utf-8")
    return bytes(b for b in raw if b == 9 or (b >= 32 and b != 127)).strip(b" \t")


# --- strategies ---------------------------------------------------------------------------------------------------

hostile_urls = st.one_of(
    st.builds(
        lambda *parts: "".join(parts),
        st.sampled_from(["http", "https", "HTTP", "ftp", "", "javascript", "file"]),
        st.sampled_from(["://", ":/", ":///", "://\\", ":\\\\"]),
        st.sampled_from(["", "127.0.0.1:1@", "x.saleor.cloud@", "user:pass@", "a@b@", "127.0.0.1%40"]),
        st.sampled_from(["127.0.0.1", "10.0.0.1", "169.254.169.254", "localhost", "[::1]", "[::ffff:127.0.0.1]",
                         "0.0.0.0", "127.1", "0x7f000001", "2130706433", "evil.example", "x.saleor.cloud",
                         "evil.example/.saleor.cloud", "evil.example#.saleor.cloud", "evil.example?.saleor.cloud",
                         "evil.example\\.saleor.cloud", "evil.example%2f.saleor.cloud", "x.saleor.cloud.evil.example",
                         "X.SALEOR.CLOUD", "saleor.cloud", "127.0.0.1.nip.io", "\u2488.saleor.cloud", ""]),
        st.sampled_from(["", ":1", ":8000", ":443", ":99999", ":-1", ":abc", ":1@10.0.0.1"]),
        st.sampled_from(["/graphql/", "/graphql", "", "/graphql/?x=1", "/graphql/#f", "/x/../graphql/", "/%2e%2e/graphql/",
                         "//graphql/", "/graphql/@10.0.0.1/"]),
        st.sampled_from(["", "@10.0.0.1/graphql/", "/.saleor.cloud/graphql/", "#.saleor.cloud/graphql/", " ", "\t"]),
    ),
    st.text(max_size=80),
)
bodies = st.one_of(
    st.binary(max_size=512),
    st.builds(lambda token: json.dumps({"auth_token": token}).encode(),
              st.none() | st.integers() | st.text(max_size=40) | st.lists(st.text(max_size=5), max_size=3)),
    st.builds(lambda value: json.dumps(value).encode(), st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=3)),
)


# --- tests ----------------------------------------------------------------------------------------------------------


@FUZZ
@given(body=bodies, headers=st.lists(st.tuples(st.sampled_from(["Saleor-Api-Url", "Saleor-Domain", "Content-Type", "X-Other"]),
                                               st.text(max_size=60).map(field_value)), max_size=4))
async def test_arbitrary_bodies_and_headers_get_a_clear_4xx_and_store_nothing(guarded, fake_saleor, body, headers) -> None:  # type: ignore[no-untyped-def]
    response = await register(guarded, body, headers)
    assert_clear_answer(response, fake_saleor.app_token)
    assert 400 <= response.status_code < 500
    assert await installations(guarded) == []
    assert all(legit(url) for url in guarded.spy.urls), guarded.spy.urls


@FUZZ
@given(url=hostile_urls)
@example(url="http://127.0.0.1:1@10.0.0.1/graphql/")
@example(url="https://evil.example/.saleor.cloud/graphql/")
@example(url="https://evil.example#.saleor.cloud/graphql/")
@example(url="http://127.0.0.1:99999/graphql/")
async def test_no_outbound_call_to_a_url_the_allow_list_does_not_allow(guarded, fake_saleor, url) -> None:  # type: ignore[no-untyped-def]
    """With Saleor's real token in the body: whatever the URL, the app may only ever call an allowed Saleor."""
    value = field_value(url)
    headers = dict(fake_saleor.register_headers(), **{"Saleor-Api-Url": value})
    called = len(guarded.spy.urls)
    response = await register(guarded, fake_saleor.register_body(), headers)
    assert_clear_answer(response, fake_saleor.app_token)
    new_calls = guarded.spy.urls[called:]
    assert all(legit(call) for call in new_calls), f"{value!r} made the app call {new_calls}"
    if response.status_code == 200:
        assert value.decode("latin-1") == fake_saleor.api_url
    else:
        assert 400 <= response.status_code < 500
        if not legit(value.decode("latin-1")):
            assert response.status_code in (400, 403) and new_calls == [], (value, response.text)
    assert [i.saleor_api_url for i in await installations(guarded)] in ([], [fake_saleor.api_url])


# The app itself, its loopback aliases, and private or link-local addresses, when only the Saleor is allowed.
NOT_ALLOWED_EXACT = [
    "http://127.0.0.1:8000/graphql/", "http://localhost:8000/graphql/", "http://[::1]:8000/graphql/",
    "http://0.0.0.0:8000/graphql/", "http://10.0.0.1/graphql/", "http://192.168.1.1/graphql/",
    "http://169.254.169.254/latest/meta-data/", "http://127.0.0.1:8000/api/register",
]
# Hosts that only look allowed by a wildcard pattern of ALLOWED.
NOT_ALLOWED_WILDCARDS = [
    "http://127.0.0.1:1@10.0.0.1/graphql/", "http://127.0.0.1:80@169.254.169.254/graphql/",
    "https://evil.example/.saleor.cloud/graphql/", "https://evil.example/?.saleor.cloud/graphql/",
    "https://evil.example#.saleor.cloud/graphql/", "https://evil.example\\.saleor.cloud/graphql/",
    "https://x.saleor.cloud:443@evil.example/graphql/", "https://x.saleor.cloud.evil.example/graphql/",
    "http://127.0.0.1:99999/graphql/", "http://127.0.0.1:0/graphql/",
]


@pytest.mark.parametrize("allowed", ["exact", "wildcards"])
async def test_disallowed_urls_are_403_before_any_outbound_call(database_url, tmp_path, fake_vtm, fake_saleor, allowed) -> None:  # type: ignore[no-untyped-def]
    patterns = fake_saleor.api_url if allowed == "exact" else ALLOWED
    settings = make_settings(database_url, tmp_path, fake_vtm.api_url, allowed_saleor_api_urls=patterns)
    async with start_app(settings, run_worker=False) as running:
        spy = OutboundSpy(running.ctx.saleor)
        for url in NOT_ALLOWED_EXACT if allowed == "exact" else NOT_ALLOWED_WILDCARDS:
            headers = dict(fake_saleor.register_headers(), **{"Saleor-Api-Url": url})
            response = await register(running, fake_saleor.register_body(), headers)
            assert response.status_code == 403, (url, response.text)
            assert response.json()["error"]["code"] == "SALEOR_URL_PROHIBITED"
            assert_clear_answer(response, fake_saleor.app_token)
            assert spy.urls == [] and fake_saleor.graphql_requests == [] and fake_saleor.jwks_requests == 0, url
        assert await installations(running) == []
        # The allowed Saleor still installs.
        assert (await running.register(fake_saleor)).status_code == 200


@FUZZ
@given(body=bodies, api_url=st.sampled_from(["ours", "other-port"]))
async def test_a_stored_installation_is_not_changed_by_hostile_registers(guarded, fake_saleor, body, api_url) -> None:  # type: ignore[no-untyped-def]
    if not await installations(guarded):
        assert (await guarded.register(fake_saleor)).status_code == 200
    (before,) = await installations(guarded)
    url = fake_saleor.api_url if api_url == "ours" else "http://127.0.0.1:9/graphql/"
    response = await register(guarded, body, dict(fake_saleor.register_headers(), **{"Saleor-Api-Url": url}))
    assert_clear_answer(response, fake_saleor.app_token)
    if response.status_code == 200:  # only Saleor's own token can re-install
        assert json.loads(body)["auth_token"] == fake_saleor.app_token
    (after,) = await installations(guarded)
    assert (after.token_encrypted, after.status, after.jwks, after.app_id) == (
        before.token_encrypted, before.status, before.jwks, before.app_id)


async def test_oversized_register_body_is_413(guarded, fake_saleor) -> None:  # type: ignore[no-untyped-def]
    body = json.dumps({"auth_token": fake_saleor.app_token, "padding": "x" * 70_000}).encode()
    response = await register(guarded, body, fake_saleor.register_headers())
    assert response.status_code == 413
    assert_clear_answer(response, fake_saleor.app_token)
    assert await installations(guarded) == []


async def test_register_with_saleor_refusing_or_down_is_401_and_stores_nothing(guarded) -> None:  # type: ignore[no-untyped-def]
    with FakeSaleor() as saleor:
        saleor.revoke_app_token()  # Saleor does not confirm the token
        response = await guarded.register(saleor)
        assert response.status_code == 401 and response.json()["error"]["code"] == "UNKNOWN_APP_ID"
        assert_clear_answer(response, saleor.app_token)
    with FakeSaleor() as saleor:
        saleor.graphql_status_override = 500
        response = await guarded.register(saleor)
        assert response.status_code == 401
        assert_clear_answer(response, saleor.app_token)
    assert await installations(guarded) == []
