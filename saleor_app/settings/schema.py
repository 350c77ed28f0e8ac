"""The settings API the dashboard page talks to: the strawberry schema of resolvers.py's Query and Mutation.

Unexpected failures (a bug, a database outage) are logged here and masked in the answer; errors a resolver meant to
show keep their message and code.
"""

from __future__ import annotations

import logging
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaskErrors
from strawberry.tools import merge_types

from saleor_app.feed.graphql import FeedMutation, FeedQuery
from saleor_app.settings.resolvers import Mutation, Query, SettingsContext

__all__ = ["SettingsContext", "schema"]

log = logging.getLogger(__name__)


# --- the schema -------------------------------------------------------------------------------------------------


def _unexpected(error: GraphQLError) -> bool:
    """An exception our code did not mean to show (a bug, a database outage): masked in the answer."""
    return error.original_error is not None and not isinstance(error.original_error, GraphQLError)


class SettingsSchema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        for error in errors:
            if _unexpected(error):
                original = error.original_error
                log.error("settings API failed at %s", error.path, exc_info=(type(original), original, original.__traceback__))
            elif (error.extensions or {}).get("code"):
                log.info("settings API answered %s: %s", error.extensions["code"], error.message)
            else:  # a malformed query: its message may quote the request's values, so it is not logged
                log.debug("settings API refused a malformed query")


schema = SettingsSchema(
    # The product feed's fields live with the feed (saleor_app/feed/graphql.py).
    query=merge_types("Query", (Query, FeedQuery)),
    mutation=merge_types("Mutation", (Mutation, FeedMutation)),
    extensions=[lambda: MaskErrors(should_mask_error=_unexpected, error_message="Unexpected error; see the app's logs.")],
)
