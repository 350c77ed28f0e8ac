from __future__ import annotations

import pytest

from saleor_app.settings.service import ChannelSettingsService
from saleor_app.storage.repositories import InstallationRepository
from saleor_app.worker_runtime import build_worker
from tests.fakes.saleor import FakeSaleor


@pytest.fixture
async def installed(running_app, fake_saleor: FakeSaleor):  # type: ignore[no-untyped-def]
    response = await running_app.register(fake_saleor)
    assert response.status_code == 200, response.text
    return fake_saleor


async def installation_id(running_app, saleor: FakeSaleor) -> int:  # type: ignore[no-untyped-def]
    async with running_app.ctx.db.session() as session:
        return (await InstallationRepository(session).by_api_url(saleor.api_url)).id


async def configure(running_app, saleor: FakeSaleor, channel: str = "default-channel", **fields) -> None:  # type: ignore[no-untyped-def]
    fields.setdefault("api_key", "vtm-key-" + channel)
    await ChannelSettingsService(running_app.ctx).update(await installation_id(running_app, saleor), channel, **fields)


@pytest.fixture
def worker(running_app):  # type: ignore[no-untyped-def]
    return build_worker(running_app.ctx)
