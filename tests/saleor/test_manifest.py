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
    assert "brand" not in manifest  # no PNG logo is served
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
