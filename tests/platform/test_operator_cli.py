"""Operators see the events consumers gave up on and send them back, and check balances."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import orjson
from sqlalchemy import insert
from typer.testing import CliRunner

from m3o.cli import app
from m3o.events.customers import TOPIC, Event, EventType
from m3o.platform.operator import open_database, open_event_bus
from m3o.runtime.events import Delivery
from m3o.services.balance.tables import accounts


async def _dead_letter_one(data_dir: Path) -> None:
    async with open_event_bus(data_dir, {}) as bus:

        async def fail(delivery: Delivery) -> None:
            raise RuntimeError("mailchimp said no")

        bus.subscribe(TOPIC, "mailchimp-customers", fail, max_attempts=1)
        await bus.start()
        await bus.publisher.publish(TOPIC, Event(type=EventType.EventTypeSignup))
        for _ in range(200):
            if await bus.dead_letters():
                break
            await asyncio.sleep(0.02)
        await bus.stop()


def test_dead_letters_are_listed_and_replayed(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    asyncio.run(_dead_letter_one(data_dir))
    runner = CliRunner()

    listed = runner.invoke(app, ["events", "dead-letters", "--data-dir", str(data_dir)])
    assert listed.exit_code == 0, listed.output
    [letter] = orjson.loads(listed.output)
    assert letter["topic"] == "customers"
    assert letter["group"] == "mailchimp-customers"
    assert letter["type"] == "EventTypeSignup"
    assert letter["error"].endswith("mailchimp said no")

    replayed = runner.invoke(app, ["events", "replay", letter["id"], "--data-dir", str(data_dir)])
    assert replayed.exit_code == 0, replayed.output
    again = runner.invoke(app, ["events", "replay", letter["id"], "--data-dir", str(data_dir)])
    assert again.exit_code == 1
    assert '"code":409' in again.output

    waiting = runner.invoke(app, ["events", "dead-letters", "--data-dir", str(data_dir)])
    assert orjson.loads(waiting.output) == []


async def _account_without_ledger(data_dir: Path) -> None:
    async with open_database(data_dir, {}) as database, database.sessions.begin() as session:
        await session.execute(
            insert(accounts).values(
                customer_id="cust-1",
                balance=5_000,
                recorded=0,
                at_zero=False,
                version=1,
                updated=datetime.now(UTC),
            )
        )


def test_balance_check_reports_a_balance_its_ledger_does_not_explain(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    runner = CliRunner()
    clean = runner.invoke(app, ["balance", "check", "--data-dir", str(data_dir)])
    assert clean.exit_code == 0, clean.output
    assert "every balance equals its ledger" in clean.output

    asyncio.run(_account_without_ledger(data_dir))
    found = runner.invoke(app, ["balance", "check", "--data-dir", str(data_dir)])
    assert found.exit_code == 1, found.output
    [difference] = orjson.loads(found.output)
    assert difference["customer_id"] == "cust-1"
    assert difference["ledger"] == 0
    assert difference["stored"] == 5_000
