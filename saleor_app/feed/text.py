"""Plain text for feed cells: Saleor's rich-text (Editor.js JSON) descriptions flattened, and one-line cell text."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from typing import Any

DESCRIPTION_LIMIT = 1000  # characters: a feed row is not the product page
_SPACES = re.compile(r"\s+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# Editor.js block data keys that hold text a shopper reads (not styles, levels, URLs or files).
_TEXT_KEYS = ("title", "text", "content", "message", "caption", "items")


class _TextOnly(HTMLParser):
    """Collects the text of an HTML fragment (Editor.js inline markup such as <b>, <a>), entities decoded."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag == "br":
            self.parts.append(" ")


def html_to_text(fragment: str) -> str:
    parser = _TextOnly()
    parser.feed(fragment)
    parser.close()
    return "".join(parser.parts)


def one_line(value: object) -> str:
    """A cell's text: control characters and line breaks become spaces, runs of spaces one, stripped."""
    if not isinstance(value, str):
        return ""
    text = value.encode("utf-8", errors="replace").decode("utf-8")
    return _SPACES.sub(" ", _CONTROL.sub(" ", text)).strip()


def _strings(value: Any) -> list[str]:
    """Every string in a block's text-bearing data, in order (lists nest in newer Editor.js list blocks)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [text for item in value for text in _strings(item)]
    if isinstance(value, dict):
        return [text for key in _TEXT_KEYS if key in value for text in _strings(value[key])]
    return []


def description_text(description: object, limit: int = DESCRIPTION_LIMIT) -> str:
    """Saleor's `description` (a JSONString holding Editor.js blocks) as plain text of at most `limit` characters.
    Text that is not Editor.js JSON is taken as it is; a longer text is cut at a word boundary with an ellipsis."""
    if not isinstance(description, str) or not description.strip():
        return ""
    try:
        document = json.loads(description)
    except ValueError:
        document = description
    if isinstance(document, dict) and isinstance(document.get("blocks"), list):
        pieces = [text for block in document["blocks"] if isinstance(block, dict)
                  for text in _strings(block.get("data"))]
    elif isinstance(document, str):
        pieces = [document]
    else:
        pieces = []
    text = one_line(" ".join(html_to_text(piece) for piece in pieces))
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if " " in cut[limit // 2:]:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,.;:") + "…"
