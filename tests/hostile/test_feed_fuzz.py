"""The feed URL under hostile input: any token and file name (NUL, controls, unicode, long, near misses of the real
token) gets the one 404 (never a 5xx, never a hint of which part was wrong), and the real URL still serves."""

from __future__ import annotations

from urllib.parse import quote, unquote

import httpx

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tests.feed.conftest import CHANNEL, build, stock_shop, turn_on
from tests.hostile import FUZZ, assert_no_secret

segments = st.one_of(
    st.text(max_size=80),
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-", min_size=16, max_size=130),
    st.sampled_from(["", ".", "..", "%00", "\x00", "a" * 5000, "default-channel.csv", "DEFAULT-CHANNEL.csv"]),
)


@pytest.fixture
async def served(running_app, installed):  # type: ignore[no-untyped-def]
    """A built feed: (path prefix, its token, the 404 a near miss of the token gets)."""
    stock_shop(installed)
    on = await turn_on(running_app, installed)
    assert (await build(running_app, installed)).ok
    base, token, _ = on.url.rsplit("/", 2)
    prefix = base.removeprefix(running_app.ctx.settings.app_url)
    near_miss = token[:-1] + ("A" if token[-1] != "A" else "B")
    reference = await running_app.client.get(f"{prefix}/{near_miss}/{CHANNEL}.csv")
    assert reference.status_code == 404
    assert (await running_app.client.get(f"{prefix}/{token}/{CHANNEL}.csv")).status_code == 200
    return prefix, token, reference


@FUZZ
@given(token_part=segments, name=segments)
@example(token_part="0/0", name="")  # found by CI: a redirect to `/api/feeds/0/0`, then the route's 404
async def test_any_token_and_file_name_get_the_same_404(running_app, served, token_part: str, name: str) -> None:  # type: ignore[no-untyped-def]
    prefix, token, reference = served
    if token_part == token:
        return
    response = await running_app.client.get(f"{prefix}/{quote(token_part, safe='')}/{quote(name, safe='')}")
    assert_no_secret(response, token)
    if not response.request.url.path.startswith(prefix + "/"):
        return  # dot segments the client removed took it out of the feeds' path (`/api/feeds/../..` is the home page)
    if response.status_code == 307 and response.request.url.path.endswith("/"):
        # An empty file name leaves a trailing slash, and where the path without it matches a route (a `/` in the
        # token, once decoded, makes two parts of it) the router redirects there, whatever the token: that tells
        # nothing. The same rules then hold where it points.
        location = httpx.URL(response.headers["location"])
        assert unquote(location.path) == unquote(response.request.url.path).rstrip("/"), location
        response = await running_app.client.get(location)
        assert_no_secret(response, token)
    assert response.status_code == 404, response.text
    # Either the feed route's one 404, byte for byte, or (an empty part, a `/` once decoded, a dot segment the client
    # removes) a path no route matches at all, which tells nothing about tokens either.
    assert response.content in (reference.content, b'{"detail":"Not Found"}'), (token_part, name, response.text)
    if token_part and name and "/" not in token_part + name and token_part not in (".", "..") and name not in (".", ".."):
        assert response.content == reference.content, (token_part, name)
