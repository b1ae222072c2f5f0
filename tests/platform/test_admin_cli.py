"""`m3o admin rotate-key` and `m3o admin reset` work on the data directory, offline."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from m3o.cli import app
from m3o.platform.data_dir import KEK_FILE, key_encryption_key
from m3o.platform.operator import open_database
from m3o.runtime.clock import utc_now
from m3o.runtime.config import ConfigError
from m3o.runtime.store import transaction
from m3o.services.auth import tables
from m3o.services.auth.key_encryption import KeyEncryption, parse_kek
from m3o.services.auth.signing_keys import KeyRing


async def _start_keys(data_dir: Path, kek: str) -> list[str]:
    """Make a signing key as `m3o serve` would; returns the stored private keys."""
    async with open_database(data_dir, {}) as database:
        ring = KeyRing(
            database.sessions,
            clock=utc_now,
            publish_retired=timedelta(days=90),
            reload_every=timedelta(minutes=1),
            encryption=KeyEncryption(parse_kek(kek)),
        )
        await ring.ensure()
        await ring.sign({"sub": "x"})
        async with transaction(database.sessions) as session:
            return list(await session.scalars(select(tables.keys.c.private_key)))


def test_rotate_key_replaces_the_key_file_and_reencrypts_the_signing_keys(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    key_file = data_dir / KEK_FILE
    old = key_encryption_key(key_file, set())
    before = asyncio.run(_start_keys(data_dir, old))

    rotated = CliRunner().invoke(app, ["admin", "rotate-key", "--data-dir", str(data_dir)])
    assert rotated.exit_code == 0, rotated.output
    new = key_file.read_text().strip()
    assert new != old
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert not (data_dir / f"{KEK_FILE}.new").exists()
    assert old not in rotated.output and new not in rotated.output

    after = asyncio.run(_start_keys(data_dir, new))  # opens with the new key alone
    assert len(after) == len(before) == 1
    assert after != before
    with pytest.raises(ConfigError):
        asyncio.run(_start_keys(data_dir, old))


def test_rotate_key_refuses_a_key_set_in_config(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    env = {"M3O_AUTH__KEY_ENCRYPTION_KEY": "A" * 43 + "="}
    refused = CliRunner().invoke(app, ["admin", "rotate-key", "--data-dir", str(data_dir)], env=env)
    assert refused.exit_code == 1
    assert "rotate it there" in refused.output
    assert not (data_dir / KEK_FILE).exists()


def test_admin_reset_without_a_data_directory_says_so(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    answer = CliRunner().invoke(app, ["admin", "reset", "--data-dir", str(missing)])
    assert answer.exit_code == 1
    assert str(missing) in answer.output
    assert not missing.exists()
