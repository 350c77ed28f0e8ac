"""Serving a feed file to VTmarketing: the URL's token and channel open it (no session: a capability URL), the
current build's chunks are streamed from the database as stored (gzip) or decompressed on the fly."""

from __future__ import annotations

import logging
import re
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime, parsedate_to_datetime

from saleor_app.feed.exceptions import FeedNotBuiltYet, FeedNotFound
from saleor_app.feed.service import token_hash
from saleor_app.storage.db import Database
from saleor_app.storage.feeds import FeedRepository

log = logging.getLogger(__name__)

_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,128}")


@dataclass(frozen=True)
class FeedFile:
    installation_id: int
    channel: str
    build_id: int
    chunks: int
    rows: int
    csv_bytes: int
    gzip_bytes: int
    sha256: str
    built_at: datetime

    def etag(self, gzipped: bool) -> str:
        # One strong validator per representation (RFC 9110 8.8.3): the gzip bytes are not the CSV bytes.
        return f'"{self.sha256[:32]}{"-gzip" if gzipped else ""}"'

    @property
    def last_modified(self) -> str:
        return format_datetime(self.built_at, usegmt=True)

    def not_modified(self, if_none_match: str | None, if_modified_since: str | None) -> bool:
        """A conditional GET that matches this file (If-None-Match wins over If-Modified-Since)."""
        if if_none_match is not None:
            tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
            return "*" in tags or bool(tags & {self.etag(False), self.etag(True)})
        if if_modified_since:
            try:
                since = parsedate_to_datetime(if_modified_since)
            except (TypeError, ValueError):
                return False
            if since is None or since.tzinfo is None:
                return False
            return self.built_at.replace(microsecond=0) <= since
        return False


class FeedServer:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def open(self, token: str, filename: str) -> FeedFile:
        """The file at /api/feeds/<token>/<filename>; FeedNotFound for a wrong token, an unknown channel or a feed
        that is off (the same answer), FeedNotBuiltYet before the first build."""
        if not _TOKEN.fullmatch(token) or not filename.endswith(".csv"):
            raise FeedNotFound()
        async with self.db.session() as session:
            found = await FeedRepository(session).servable(token_hash(token))
        if found is None:
            raise FeedNotFound()
        feed, build = found
        if feed.channel_slug != filename[: -len(".csv")] or not feed.enabled:
            raise FeedNotFound()
        if build is None or build.sha256 is None or build.finished_at is None:
            raise FeedNotBuiltYet()
        return FeedFile(feed.installation_id, feed.channel_slug, build.id, build.chunks, build.rows, build.csv_bytes,
                        build.gzip_bytes, build.sha256, build.finished_at)

    async def gzip_chunks(self, file: FeedFile) -> AsyncIterator[bytes]:
        """The stored gzip stream, one chunk (one short query) at a time. A file replaced twice during one
        download (it is kept until the next swap) ends the stream early: the client sees a short body."""
        for seq in range(file.chunks):
            async with self.db.session() as session:
                data = await FeedRepository(session).chunk(file.build_id, seq)
            if data is None:
                log.warning("feed of channel %s was replaced during a download", file.channel)
                raise ConnectionAbortedError("feed file replaced during the download")
            yield data

    async def csv_chunks(self, file: FeedFile) -> AsyncIterator[bytes]:
        """The CSV itself, decompressed chunk by chunk for clients that do not accept gzip."""
        decompressor = zlib.decompressobj(31)
        async for data in self.gzip_chunks(file):
            out = decompressor.decompress(data)
            if out:
                yield out
        rest = decompressor.flush()
        if rest:
            yield rest


def accepts_gzip(accept_encoding: str | None) -> bool:
    """`Accept-Encoding` names gzip (or `*`) with a non-zero quality."""
    for part in (accept_encoding or "").split(","):
        name, _, params = part.strip().partition(";")
        if name.strip().lower() not in ("gzip", "x-gzip", "*"):
            continue
        quality = params.strip().lower()
        if quality.startswith("q="):
            try:
                if float(quality[2:]) <= 0:
                    continue
            except ValueError:
                continue
        return True
    return False
