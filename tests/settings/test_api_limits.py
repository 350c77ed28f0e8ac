"""Finding 7 of issue 12: the settings API is bounded. One request cannot make the app do the work of thousands:
the body is at most 1 MiB (413 before parsing), aliases, depth and tokens are limited (the whole document is refused
before any resolver runs), one request sends at most one test event, and each installation may send a few a minute
(429 with a message the page shows)."""

from __future__ import annotations

import json

import httpx
import pytest
from sqlalchemy import event

from tests.conftest import RunningApp, configure
from tests.fakes.saleor import FakeSaleor
from tests.settings.test_api import TEST_EVENT, post_graphql


@pytest.fixture
async def installed(running_app: RunningApp, fake_saleor: FakeSaleor) -> FakeSaleor:
    assert (await running_app.register(fake_saleor)).status_code == 200
    await configure(running_app, fake_saleor)
    return fake_saleor


class StatementLog:
    """SQL statements the app runs while a request is answered."""

    def __init__(self, running_app: RunningApp) -> None:
        self.engine = running_app.ctx.db.engine.sync_engine
        self.statements: list[str] = []

    def _record(self, conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        self.statements.append(statement)

    def __enter__(self) -> "StatementLog":
        event.listen(self.engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._record)

    def touching(self, table: str) -> list[str]:
        return [s for s in self.statements if f"FROM {table}" in s or f"UPDATE {table}" in s]


def refused_before_running(response: httpx.Response, *needles: str) -> None:
    assert response.status_code in (200, 400), response.text
    body = response.json()
    assert body.get("data") is None, body
    assert any(needle in error["message"] for error in body["errors"] for needle in needles), body["errors"]


async def test_a_thousand_aliased_delivery_pages_are_refused_before_any_query(running_app, installed) -> None:  # type: ignore[no-untyped-def]
    document = "query { " + " ".join(f"a{i}: deliveries(first: 100) {{ items {{ id }} }}" for i in range(1000)) + " }"
    with StatementLog(running_app) as log:
        response = await post_graphql(running_app, installed, document)
    refused_before_running(response, "aliases", "tokens")  # whichever bound it meets first
    assert log.touching("deliveries") == []


async def test_aliases_depth_and_tokens_are_bounded(running_app, installed) -> None:  # type: ignore[no-untyped-def]
    eleven_aliases = "query { " + " ".join(f"a{i}: installation {{ status }}" for i in range(11)) + " }"
    refused_before_running(await post_graphql(running_app, installed, eleven_aliases), "aliases")
    deep = "query { deliveries { items { attempts { a { b { c { d { e } } } } } } } }"
    refused_before_running(await post_graphql(running_app, installed, deep), "exceeds maximum operation depth")
    introspection = "query { __schema { types { fields { type { ofType { ofType { ofType { name } } } } } } } }"
    refused_before_running(await post_graphql(running_app, installed, introspection), "introspection")
    many_tokens = "query { installation { " + "status " * 2500 + "} }"
    refused_before_running(await post_graphql(running_app, installed, many_tokens), "token")
    three_pages = "query { a: deliveries { hasMore } b: deliveries { hasMore } c: deliveries { hasMore } }"
    refused_before_running(await post_graphql(running_app, installed, three_pages), "`deliveries` may appear at most 2")
    # What the page sends is well within the bounds.
    ten_aliases = "query { " + " ".join(f"a{i}: installation {{ status }}" for i in range(10)) + " }"
    response = await post_graphql(running_app, installed, ten_aliases)
    assert response.status_code == 200 and "errors" not in response.json(), response.text


@pytest.mark.parametrize("document", [
    "mutation { " + " ".join(f'a{i}: sendTestEvent(channel: "default-channel") {{ ok }}' for i in range(300)) + " }",
    'mutation { a: sendTestEvent(channel: "default-channel") { ok } b: sendTestEvent(channel: "default-channel") { ok } }',
    'mutation { ...T ...T } fragment T on Mutation { sendTestEvent(channel: "default-channel") { ok } }',
    'mutation { ... on Mutation { sendTestEvent(channel: "default-channel") { ok } } '
    'sendTestEvent(channel: "default-channel") { ok } }',
], ids=["300-aliases", "2-aliases", "fragment-twice", "inline-fragment"])
async def test_one_request_sends_at_most_one_test_event(document, running_app, installed, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    response = await post_graphql(running_app, installed, document)
    refused_before_running(response, "sendTestEvent", "tokens")  # 300 aliases meet the token bound first
    assert fake_vtm.requests == []  # not one outbound POST


async def test_test_events_are_rate_limited_per_installation_with_a_429(running_app, installed, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    from saleor_app.context import TEST_EVENTS_PER_MINUTE

    for _ in range(TEST_EVENTS_PER_MINUTE):
        response = await post_graphql(running_app, installed, TEST_EVENT, {"channel": "default-channel"})
        assert response.status_code == 200 and response.json()["data"]["sendTestEvent"]["ok"], response.text
    response = await post_graphql(running_app, installed, TEST_EVENT, {"channel": "default-channel"})
    assert response.status_code == 429, response.text
    error = response.json()["error"]  # the app's error shape: the page shows `error.message` for any non-2xx
    assert error["code"] == "RATE_LIMITED"
    assert "Too many test events" in error["message"] and "Try again in" in error["message"]
    assert len(fake_vtm.requests) == TEST_EVENTS_PER_MINUTE
    # Other requests of the same installation are not limited.
    settings = await post_graphql(running_app, installed, "query { installation { status } }")
    assert settings.status_code == 200


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_body_over_1_mib_is_refused_with_413_before_parsing(chunked, running_app, installed) -> None:  # type: ignore[no-untyped-def]
    body = json.dumps({"query": "query($v: String) { installation { status } }",
                       "variables": {"v": "x" * (1024 * 1024)}}).encode()
    headers = {"Saleor-Api-Url": installed.api_url, "Authorization-Bearer": installed.dashboard_token(),
               "Content-Type": "application/json"}

    async def stream():  # type: ignore[no-untyped-def]
        for start in range(0, len(body), 65536):
            yield body[start:start + 65536]

    response = await running_app.client.post("/graphql", content=stream() if chunked else body, headers=headers)
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    # Just under the limit is read and answered.
    small = json.dumps({"query": "query($v: String) { installation { status } }", "variables": {"v": "x" * 1000}})
    assert (await running_app.client.post("/graphql", content=small, headers=headers)).status_code == 200
