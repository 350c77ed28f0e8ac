"""The feed file as the vendor documents it (`;`-separated, UTF-8, text in double quotes with inner quotes doubled,
numbers bare with a dot), gzip-compressed as it is written and handed out in chunks, so a build never holds the
whole file: memory stays flat whatever the catalogue's size."""

from __future__ import annotations

import csv
import hashlib
import io
import zlib
from typing import Iterable

from saleor_app.feed.rows import FEED_HEADER, FeedRow

CHUNK_BYTES = 256 * 1024  # of compressed data per stored chunk
_GZIP = 31  # zlib wbits: a gzip stream (header with mtime 0), servable as-is with Content-Encoding: gzip


class FeedFileWriter:
    def __init__(self, chunk_bytes: int = CHUNK_BYTES) -> None:
        self.chunk_bytes = chunk_bytes
        self._text = io.StringIO()
        # QUOTE_NONNUMERIC quotes every str (the header, ids, titles, even "") and leaves Decimal/int bare.
        self._csv = csv.writer(self._text, delimiter=";", quotechar='"', doublequote=True,
                               quoting=csv.QUOTE_NONNUMERIC, lineterminator="\r\n")
        self._compressor = zlib.compressobj(6, zlib.DEFLATED, _GZIP)
        self._compressed = bytearray()
        self._sha256 = hashlib.sha256()
        self.rows = 0
        self.csv_bytes = 0
        self.gzip_bytes = 0
        self._csv.writerow(FEED_HEADER)
        self._drain_text()

    def write(self, rows: Iterable[FeedRow]) -> None:
        for row in rows:
            self._csv.writerow(row.cells())
            self.rows += 1
        self._drain_text()

    def _drain_text(self) -> None:
        data = self._text.getvalue().encode("utf-8")
        self._text.seek(0)
        self._text.truncate()
        self._sha256.update(data)
        self.csv_bytes += len(data)
        self._compressed += self._compressor.compress(data)

    def full_chunks(self) -> list[bytes]:
        """Chunks of `chunk_bytes` ready to store (the rest waits for more rows or `finish`)."""
        chunks = []
        while len(self._compressed) >= self.chunk_bytes:
            chunks.append(bytes(self._compressed[: self.chunk_bytes]))
            del self._compressed[: self.chunk_bytes]
        self.gzip_bytes += sum(len(c) for c in chunks)
        return chunks

    def finish(self) -> list[bytes]:
        """The last chunks, the gzip trailer included."""
        self._compressed += self._compressor.flush()
        chunks = self.full_chunks()
        if self._compressed:
            chunks.append(bytes(self._compressed))
            self.gzip_bytes += len(self._compressed)
            self._compressed.clear()
        return chunks

    @property
    def sha256(self) -> str:
        return self._sha256.hexdigest()
