"""What a delivery's verdict says of the channel's key, read from the verdict the worker settles with."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from saleor_app.saleor import problems
from saleor_app.settings.key_status import record_delivery_verdict
from saleor_app.storage.models import Delivery, utcnow
from saleor_app.storage.repositories import ChannelSettingsRepository
from tests.conftest import configure, installation_id


@dataclass
class Verdict:  # the fields of delivery/worker.py's Verdict that the hook reads
    status: str
    reason: str
    problem: tuple[str, str] | None = None


async def stored(running_app, inst: int):  # type: ignore[no-untyped-def]
    async with running_app.ctx.db.session() as session:
        return await ChannelSettingsRepository(session).get(inst, "default-channel")


async def test_a_refusal_is_named_with_vtmarketings_words_whatever_note_precedes_them(running_app, installed) -> None:  # type: ignore[no-untyped-def]
    await configure(running_app, installed, "default-channel", api_key="vtm-key-usd-12345678")
    inst = await installation_id(running_app, installed)
    delivery = Delivery(installation_id=inst, channel_slug="default-channel", order_number="1042", updated_at=utcnow())
    refused = Verdict(
        "failed",
        "Recovered by reconciliation (no webhook arrived). VTmarketing refused the event (HTTP 401: Invalid API key)",
        (problems.key_rejected("default-channel"), "…"),
    )
    async with running_app.ctx.db.transaction() as session:
        await record_delivery_verdict(session, delivery, refused)
    row = await stored(running_app, inst)
    assert row.key_status == "refused"
    assert row.key_status_message == "VTmarketing refused this key for order #1042: HTTP 401: Invalid API key."

    # A failure that is not about the key (VTmarketing refused the event's content) changes nothing.
    other = Verdict("failed", "VTmarketing refused the event (HTTP 400: Missing event information)")
    async with running_app.ctx.db.transaction() as session:
        await record_delivery_verdict(session, delivery, other)
    assert (await stored(running_app, inst)).key_status == "refused"

    # A verdict reached with the key as it was before the latest change is ignored.
    stale = Delivery(installation_id=inst, channel_slug="default-channel", order_number="1043",
                     updated_at=utcnow() - timedelta(minutes=5))
    async with running_app.ctx.db.transaction() as session:
        await record_delivery_verdict(session, stale, Verdict("delivered", "VTmarketing accepted the event (ok)"))
    assert (await stored(running_app, inst)).key_status == "refused"  # the key was saved after that claim

    async with running_app.ctx.db.transaction() as session:
        await record_delivery_verdict(session, delivery, Verdict("delivered", "VTmarketing accepted the event (ok)"))
    row = await stored(running_app, inst)
    assert row.key_status == "accepted" and row.key_status_message == "VTmarketing accepted order #1042 with this key."
