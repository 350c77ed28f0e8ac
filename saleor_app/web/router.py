"""The app's public face: the home page at `/` (the manifest's `homepageUrl` and `supportUrl`), the documentation
at `/docs` (the README this version ships with) and the logo Saleor shows on the install screen
(`brand.logo.default`). Nothing here needs a token, and nothing here says anything about an installation."""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from saleor_app import __version__
from saleor_app.saleor.manifest import ABOUT, APP_NAME, LOGO_PATH, PERMISSIONS, REQUIRED_SALEOR_VERSION, manifest_url

WEB_DIR = Path(__file__).resolve().parent
PACKAGE_DIR = WEB_DIR.parent
# No script at all on these pages; styles and images from the app only.
PUBLIC_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


@lru_cache(maxsize=1)
def _templates() -> Environment:
    return Environment(loader=FileSystemLoader(str(WEB_DIR / "templates")), autoescape=select_autoescape(["html"]))


@lru_cache(maxsize=8)
def _versioned(name: str) -> str:
    """`name` under web/static/ with its content hash, so a new version's CSS is not served from a stale cache."""
    digest = hashlib.sha256((WEB_DIR / "static" / name).read_bytes()).hexdigest()[:12]
    return f"{name}?v={digest}"


@lru_cache(maxsize=1)
def _logo() -> bytes:
    return (WEB_DIR / "brand" / "logo.png").read_bytes()


def _page(request: Request, template: str, **values: object) -> HTMLResponse:
    app_url = request.app.state.ctx.settings.app_url.rstrip("/")
    base_path = urlsplit(app_url).path.rstrip("/")
    html = _templates().get_template(template).render(
        base_path=base_path,
        app_css=f"{base_path}/static/{_versioned('app.css')}",
        home_css=f"{base_path}/static/{_versioned('home.css')}",
        logo_url=f"{base_path}{LOGO_PATH}",
        name=APP_NAME,
        version=__version__,
        **values,
    )
    return HTMLResponse(html, headers=PUBLIC_PAGE_HEADERS)


@router.api_route("/", methods=["GET", "HEAD"], response_class=HTMLResponse)
async def home(request: Request) -> HTMLResponse:
    app_url = request.app.state.ctx.settings.app_url
    return _page(request, "home.html", about=ABOUT, manifest_url=manifest_url(app_url), permissions=PERMISSIONS,
                 saleor_versions=REQUIRED_SALEOR_VERSION)


@router.api_route("/docs", methods=["GET", "HEAD"], response_class=HTMLResponse)
async def docs(request: Request) -> HTMLResponse:
    return _page(request, "docs.html", body=Markup(_readme_html()))


@router.api_route(LOGO_PATH, methods=["GET", "HEAD"])
async def logo() -> Response:
    # Saleor fetches it once after the install and stores it: square, 512 px, image/png (PROTOCOL.md §1).
    return Response(_logo(), media_type="image/png",
                    headers={"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"})


@lru_cache(maxsize=1)
def _readme_html() -> str:
    """The README of this version as HTML. Links into the repository (docs/…, bench/…) are not served by the app,
    so they become plain text; links to other sites and to headings stay."""
    from markdown_it import MarkdownIt

    html = MarkdownIt("commonmark", {"html": False}).enable("table").render(_readme_text())
    return re.sub(r'<a href="(?!https?://|#)[^"]*">(.*?)</a>', r"\1", html)


def _readme_text() -> str:
    # A source checkout has the README beside the package; an installed wheel carries it as its description.
    source = PACKAGE_DIR.parent / "README.md"
    if source.is_file() and (PACKAGE_DIR.parent / "pyproject.toml").is_file():
        return source.read_text(encoding="utf-8")
    return metadata.metadata("saleor-vtmarketing").get_payload() or "No documentation was installed with this copy."
