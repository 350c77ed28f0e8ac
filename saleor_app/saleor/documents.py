"""The GraphQL documents in `manifest/`: what the app sends to Saleor and what it subscribes to.

They live as plain `.graphql` files at the top of the repository (so they can be validated against Saleor's
schemas) and ship inside the wheel as `saleor_app/_manifest` (see pyproject.toml).
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from pathlib import Path

FRAGMENTS = {"...OrderSummary": "order_summary.fragment.graphql"}


def manifest_dir() -> Path:
    packaged = Path(str(files("saleor_app"))) / "_manifest"
    if packaged.is_dir():
        return packaged
    # Source checkout or editable install: the documents sit beside the package.
    return Path(__file__).resolve().parents[2] / "manifest"


@cache
def load_document(name: str) -> str:
    """A document by file name, with the fragments it spreads appended (Saleor wants one self-contained text)."""
    folder = manifest_dir()
    text = (folder / name).read_text()
    for spread, fragment_file in FRAGMENTS.items():
        if spread in text:
            text = text.rstrip() + "\n\n" + (folder / fragment_file).read_text()
    return text


def all_documents() -> dict[str, str]:
    folder = manifest_dir()
    return {
        str(p.relative_to(folder)): load_document(str(p.relative_to(folder)))
        for p in sorted(folder.rglob("*.graphql"))
        if "fragment" not in p.name
    }
