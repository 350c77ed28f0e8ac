"""The manifest Saleor fetches at install, and the GraphQL documents the app ships."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from graphql import build_schema, parse, validate

from saleor_app.saleor.documents import all_documents, manifest_dir
from saleor_app.saleor.manifest import WEBHOOKS, build_manifest
from tests.paths import REPO_ROOT, SCHEMA_3_20, SCHEMA_3_23

SCHEMAS = {"3.20": SCHEMA_3_20, "3.23": SCHEMA_3_23}
_schema_cache: dict = {}


def schema(version: str):  # type: ignore[no-untyped-def]
    if version not in _schema_cache:
        _schema_cache[version] = build_schema(SCHEMAS[version].read_text())
    return _schema_cache[version]


@pytest.mark.parametrize("version", ["3.20", "3.23"])
def test_every_document_validates_against_both_saleor_schemas(version: str) -> None:
    documents = {name: text for name, text in all_documents().items() if not name.startswith("since-3.22/")}
    assert len(documents) >= 7
    for name, text in documents.items():
        errors = validate(schema(version), parse(text))
        assert errors == [], f"{name} on Saleor {version}: {[e.message for e in errors]}"


def test_version_gated_documents_need_3_22() -> None:
    # appProblemCreate/Dismiss exist from Saleor 3.22: valid on 3.23, invalid on 3.20, so the app asks the version
    # first (saleor/problems.py) and never sends them to an older Saleor.
    gated = {name: text for name, text in all_documents().items() if name.startswith("since-3.22/")}
    assert len(gated) == 2
    for name, text in gated.items():
        assert validate(schema("3.23"), parse(text)) == [], name
        assert validate(schema("3.20"), parse(text)) != [], name


def test_a_document_with_an_unknown_field_would_be_caught() -> None:
    # The validation above is not vacuous: a field Saleor lacks fails it.
    errors = validate(schema("3.20"), parse("query { shop { version notAField } }"))
    assert errors


def test_manifest_fields_follow_app_url() -> None:
    manifest = build_manifest("https://vtm.example.com/")
    assert manifest["id"] and manifest["name"] and manifest["version"]
    assert manifest["permissions"] == ["MANAGE_ORDERS"]
    assert manifest["appUrl"] == "https://vtm.example.com/app"
    assert manifest["tokenTargetUrl"] == "https://vtm.example.com/api/register"
    assert manifest["homepageUrl"] == "https://vtm.example.com/"
    assert manifest["supportUrl"].startswith("https://vtm.example.com/")
    assert manifest["brand"]["logo"]["default"] == "https://vtm.example.com/brand/logo.png"
    events = {hook["asyncEvents"][0]: hook for hook in manifest["webhooks"]}
    assert set(events) == {"ORDER_CONFIRMED", "APP_DELETED"}
    order_hook = events["ORDER_CONFIRMED"]
    assert order_hook["targetUrl"] == "https://vtm.example.com/api/webhooks/order-confirmed"
    assert "subscription" in order_hook["query"] and "fragment OrderSummary on Order" in order_hook["query"]


def test_required_saleor_version_admits_3_20_and_3_23() -> None:
    spec = build_manifest("http://x")["requiredSaleorVersion"]
    # Saleor matches with npm semver ranges; ">=3.20 <4" is a plain range we can check by hand.
    lower, upper = re.fullmatch(r">=(\d+\.\d+) <(\d+)", spec).groups()  # type: ignore[union-attr]
    for version in ("3.20.0", "3.20.119", "3.23.28"):
        major, minor = (int(x) for x in version.split(".")[:2])
        assert (major, minor) >= tuple(int(x) for x in lower.split(".")) and major < int(upper)


async def test_manifest_webhooks_are_the_handlers_routes(running_app) -> None:  # type: ignore[no-untyped-def]
    manifest = (await running_app.client.get("/api/manifest")).json()
    for hook in manifest["webhooks"]:
        path = hook["targetUrl"].removeprefix(running_app.ctx.settings.app_url)
        response = await running_app.client.post(path, content=b"{}")
        # Mounted (not 404/405): an unsigned request is refused by the handler itself.
        assert response.status_code in (400, 401), (path, response.status_code)
    assert {h["targetUrl"].rsplit("/", 1)[1] for h in manifest["webhooks"]} == {h.path.rsplit("/", 1)[1] for h in WEBHOOKS}


@pytest.mark.parametrize("version", ["3.20", "3.23"])
def test_subscriptions_select_only_event_and_name_their_event(version: str) -> None:
    # Saleor's rule for manifest subscriptions: one top-level field, `event`, with a fragment on the event type.
    for hook in WEBHOOKS:
        document = parse(hook.query)
        operation = next(d for d in document.definitions if d.kind == "operation_definition")
        assert operation.operation.value == "subscription"
        assert [s.name.value for s in operation.selection_set.selections] == ["event"]
        type_name = "".join(part.capitalize() for part in hook.event.split("_"))
        assert f"on {type_name}" in hook.query
        assert validate(schema(version), document) == []


async def test_manifest_endpoint_serves_it(running_app) -> None:  # type: ignore[no-untyped-def]
    response = await running_app.client.get("/api/manifest")
    assert response.status_code == 200
    assert response.json()["tokenTargetUrl"].endswith("/api/register")


def test_documents_ship_inside_the_wheel(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(REPO_ROOT)],
        check=True,
    )
    wheel = next(tmp_path.glob("saleor_vtmarketing-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for document in manifest_dir().rglob("*.graphql"):
        assert f"saleor_app/_manifest/{document.relative_to(manifest_dir()).as_posix()}" in names
    assert any(n.startswith("saleor_app/storage/migrations/versions/") for n in names)


# --- the install screen: id, about, logo, homepage and support pages ------------------------------------------------


def test_manifest_id_is_outside_saleors_own_namespace() -> None:
    manifest = build_manifest("https://vtm.example.com")
    # Saleor's own apps are `saleor.app.*` / `saleor.io.*`; ours must not look like one (nor clash with one).
    assert not manifest["id"].startswith("saleor."), manifest["id"]
    assert "vtmarketing" in manifest["id"] and len(manifest["id"]) <= 256


def test_about_says_what_the_app_does() -> None:
    about = build_manifest("https://vtm.example.com")["about"]
    for words in ("confirmed order", "VTmarketing", "API key", "channel"):
        assert words in about, words


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk (the first chunk, right after the signature)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


async def test_logo_is_what_saleor_accepts(running_app) -> None:  # type: ignore[no-untyped-def]
    import mimetypes
    from urllib.parse import urlsplit

    url = (await running_app.client.get("/api/manifest")).json()["brand"]["logo"]["default"]
    path = urlsplit(url).path
    # PROTOCOL.md §1: the URL's path makes `mimetypes` guess image/png; the file is a square PNG of ≥ 256 px,
    # served as image/png, at most 10 MB.
    assert mimetypes.guess_type(path)[0] == "image/png"
    logo = await running_app.client.get(path)
    assert logo.status_code == 200 and logo.headers["content-type"] == "image/png"
    width, height = png_size(logo.content)
    assert width == height >= 256
    assert len(logo.content) <= 10 * 1024 * 1024


async def test_homepage_and_support_pages_exist_and_say_what_an_installer_needs(running_app) -> None:  # type: ignore[no-untyped-def]
    from urllib.parse import urlsplit

    from saleor_app import __version__

    manifest = (await running_app.client.get("/api/manifest")).json()
    for key in ("homepageUrl", "supportUrl"):
        page = await running_app.client.get(urlsplit(manifest[key]).path)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html"), key
    home = (await running_app.client.get("/")).text
    assert manifest["about"] in home.replace("&#39;", "'")
    assert f'id="version">{__version__}<' in home
    assert "http://127.0.0.1:8000/api/manifest" in home  # the manifest URL to paste
    assert "Install from manifest" in home and "Install external app" in home  # 3.23 dashboards and older
    assert 'href="/docs"' in home and 'id="support"' in home  # supportUrl's anchor is on the page
    assert "/static/app.css" in home and "/static/home.css" in home  # the settings page's look
    docs = await running_app.client.get("/docs")
    assert docs.status_code == 200 and "<h2>Quick start</h2>" in docs.text and "make run" in docs.text
    assert "<script" not in home + docs.text  # public pages run no script
    assert (await running_app.client.get("/static/home.css")).headers["content-type"].startswith("text/css")


async def test_public_pages_follow_an_app_url_with_a_path(tmp_path, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import make_settings, start_app

    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'app.db'}", tmp_path, fake_vtm.api_url,
                             app_url="https://shop.example.com/vtm")
    async with start_app(settings, run_worker=False) as running:
        home = (await running.client.get("/")).text
        assert 'href="/vtm/docs"' in home and 'src="/vtm/brand/logo.png"' in home
        assert "https://shop.example.com/vtm/api/manifest" in home
