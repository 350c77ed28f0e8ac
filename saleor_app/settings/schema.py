"""The settings API the dashboard page talks to: the strawberry schema of resolvers.py's Query and Mutation.

Unexpected failures (a bug, a database outage) are logged here and masked in the answer; errors a resolver meant to
show keep their message and code.
"""

from __future__ import annotations

import logging
from typing import Any

import strawberry
from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
)
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
)
from strawberry.tools import merge_types

from saleor_app.feed.graphql import FeedMutation, FeedQuery
from saleor_app.settings.resolvers import Mutation, Query, SettingsContext

__all__ = ["SettingsContext", "schema"]

log = logging.getLogger(__name__)


# --- limits -----------------------------------------------------------------------------------------------------
# The page's deepest query has depth 3 (deliveries → items → attempts), no alias and a few hundred tokens. These
# bounds leave room and refuse, before any resolver runs, the documents that would make one request do the work of
# thousands (every webhook waits for the one event loop in the meantime). No introspection either: only the page
# uses this API, and introspection is where deep documents hide (the depth limit does not count it).
MAX_DEPTH = 6
MAX_ALIASES = 10
MAX_TOKENS = 2000
# Root fields that cost a round trip each (a page of deliveries; an outbound POST to VTmarketing).
ROOT_FIELD_LIMITS = {"deliveries": 2, "sendTestEvent": 1}


def _count_root_fields(selection_set: SelectionSetNode | None, fragments: dict[str, FragmentDefinitionNode],
                       counts: dict[str, int], seen: frozenset[str] = frozenset()) -> None:
    for selection in selection_set.selections if selection_set else ():
        if isinstance(selection, FieldNode):
            counts[selection.name.value] = counts.get(selection.name.value, 0) + 1
        elif isinstance(selection, InlineFragmentNode):
            _count_root_fields(selection.selection_set, fragments, counts, seen)
        elif isinstance(selection, FragmentSpreadNode) and selection.name.value not in seen:
            fragment = fragments.get(selection.name.value)
            if fragment is not None:
                _count_root_fields(fragment.selection_set, fragments, counts, seen | {selection.name.value})


class RootFieldLimit(ValidationRule):
    """At most ROOT_FIELD_LIMITS[name] of these root fields per operation, aliases and fragments included: one
    request sends at most one test event."""

    def __init__(self, context: ValidationContext) -> None:
        super().__init__(context)
        document = context.document
        fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        for operation in document.definitions:
            if not isinstance(operation, OperationDefinitionNode):
                continue
            counts: dict[str, int] = {}
            _count_root_fields(operation.selection_set, fragments, counts)
            for name, limit in ROOT_FIELD_LIMITS.items():
                if counts.get(name, 0) > limit:
                    context.report_error(GraphQLError(f"`{name}` may appear at most {limit} time(s) in a request."))


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
    extensions=[
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        lambda: MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
        lambda: QueryDepthLimiter(max_depth=MAX_DEPTH),
        DisableIntrospection,
        lambda: AddValidationRules([RootFieldLimit]),
        lambda: MaskErrors(should_mask_error=_unexpected, error_message="Unexpected error; see the app's logs."),
    ],
)
