"""Secrets never rest in plain text: not in the tables, not in the logs."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from structlog.testing import capture_logs

from m3o.runtime.errors import TooManyRequests, Unauthorized
from m3o.services.auth import tables
from m3o.services.auth.proto import auth_pb2 as pb
from services.auth.support import SECRET, World, call


async def _table_text(world: World) -> str:
    """Every row of every auth table, as one string."""
    text: list[str] = []
    async with world.sessions() as session:
        for table in tables.metadata.sorted_tables:
            text.extend(str(tuple(row)) for row in await session.execute(select(table)))
    return "\n".join(text)


async def test_tables_hold_only_hashes_of_secrets_and_refresh_tokens(world: World) -> None:
    generated = (await world.generate("gen", secret="")).secret
    await world.generate("ann")
    first = await world.login("ann")
    second = await world.refresh(first.token.refresh_token)
    await world.auth.change_secret(
        pb.ChangeSecretRequest(id="ann", new_secret="changed secret"), call("ChangeSecret")
    )
    stored = await _table_text(world)
    for secret in (SECRET, generated, "changed secret"):
        assert secret not in stored
    for issued in (first, second):
        assert issued.token.refresh_token not in stored
        assert issued.token.access_token not in stored
    async with world.sessions() as session:
        hashes = (await session.scalars(select(tables.accounts.c.secret_hash))).all()
    assert hashes
    assert all(h.startswith("$argon2id$") for h in hashes)


async def test_logs_never_show_secrets_or_tokens(world: World) -> None:
    with capture_logs() as logs:
        await world.generate("ann")
        issued = await world.login("ann", address="203.0.113.9")
        refreshed = await world.refresh(issued.token.refresh_token)
        with pytest.raises(Unauthorized):
            await world.refresh(issued.token.refresh_token)  # reuse: logged as a warning
        for _ in range(6):
            with pytest.raises((Unauthorized, TooManyRequests)):
                await world.login("ann", "guess " + SECRET)
        with pytest.raises(Unauthorized):
            await world.auth.inspect(pb.InspectRequest(token="x." + SECRET), call("Inspect"))
    assert logs, "the scenario should log something"
    text = repr(logs)
    for secret in (
        SECRET,
        issued.token.access_token,
        issued.token.refresh_token,
        refreshed.token.access_token,
        refreshed.token.refresh_token,
    ):
        assert secret not in text
