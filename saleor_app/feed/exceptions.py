"""The feed's domain errors; saleor_app/errors.py turns them into HTTP answers."""

from __future__ import annotations

from saleor_app.errors import BadRequest, NotFound, ServiceUnavailable

RETRY_AFTER_SECONDS = 60


class FeedNotFound(NotFound):
    """Wrong token, unknown channel, or feed off: one answer for all three, byte for byte, so a caller learns
    nothing about which part of the URL was wrong."""

    def __init__(self) -> None:
        super().__init__("No such feed.")


class FeedNotBuiltYet(ServiceUnavailable):
    code = "FEED_NOT_BUILT_YET"
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}

    def __init__(self) -> None:
        super().__init__("The feed is being built for the first time; try again in a minute.")


class InvalidFeedSettings(BadRequest):
    """One or more fields are wrong; `fields` maps each (settings API name) to a message shown next to it."""

    code = "INVALID_FEED_SETTINGS"

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in fields.items()))
        self.fields = fields


class NoFeed(BadRequest):
    """The operation needs a feed the channel does not have (never turned on, or off)."""

    code = "NO_FEED"
