"""Hostile input against every door of the app (webhooks, register, settings API), generated with hypothesis.

Every answer must be a clear 4xx (JSON `{"error": {"code", "message"}}` with a human message) or a stored event:
never a 5xx, never a key or token in the body; and the database holds only what it should. Shared helpers below."""

from __future__ import annotations

import re

import httpx
from hypothesis import HealthCheck, settings

# One running app serves all examples of a test (function-scoped fixtures); examples are cheap HTTP calls.
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

_WORDS = re.compile(r"[A-Za-z]{2,}.*\s.*[A-Za-z]{2,}")  # "a sentence": at least two words


def assert_clear_answer(response: httpx.Response, *secrets: str | None) -> None:
    """< 500; a 4xx is the app's JSON error with a human message; no secret anywhere in the answer."""
    assert response.status_code < 500, f"{response.status_code}: {response.text[:500]}"
    if 400 <= response.status_code < 500:
        try:
            error = response.json()["error"]
        except (ValueError, KeyError, TypeError):
            raise AssertionError(f"{response.status_code} without a JSON error: {response.text[:300]!r}") from None
        assert isinstance(error.get("code"), str) and error["code"], error
        assert isinstance(error.get("message"), str) and _WORDS.search(error["message"]), error
    assert_no_secret(response, *secrets)


def assert_no_secret(response: httpx.Response, *secrets: str | None) -> None:
    text = response.text
    for secret in secrets:
        if secret:
            assert secret not in text, f"the answer contains a secret ({secret[:4]}…): {text[:300]}"
