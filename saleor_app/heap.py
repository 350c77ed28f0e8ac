"""The garbage collector and the event loop. A full collection walks every object the process tracks, and about
130,000 of them (the imported libraries, the GraphQL schema, SQLAlchemy's tables, the settings) are made at start and
live as long as the process. With the worker delivering in the webhooks' loop, full collections came about once a
second and each blocked the loop ~120 ms: they were the webhook answers' p99 (docs/performance.md). Frozen once start-up
is done (gc.freeze(), the collector's own way to leave objects out of every later collection), a full collection walks
only what came after and takes ~10 ms."""

from __future__ import annotations

import gc
import logging

log = logging.getLogger(__name__)


def freeze_start_up_objects() -> int:
    """Call when the process has built everything it keeps (the app, its context, the worker) and before it takes
    work. Returns how many objects are frozen."""
    gc.collect()  # start-up's own cyclic garbage is freed first, not kept for the process's life
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.debug("%d objects made at start-up are left out of garbage collections", frozen)
    return frozen
