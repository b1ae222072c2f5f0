"""First-start set-up shared by both profiles: the admin account."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from m3o.runtime.errors import Conflict
from m3o.runtime.service import Clients
from m3o.services.auth.proto import auth_pb2 as auth_pb
from m3o.services.auth.proto.client import AuthClient

__all__ = ["ADMIN_ACCOUNT", "AdminAccount", "ensure_admin"]

ADMIN_ACCOUNT = "admin"


@dataclass(frozen=True, slots=True)
class AdminAccount:
    created: bool
    generated_password: str | None
    """The password, when this start generated it (to show once); else None."""


async def ensure_admin(clients: Clients, password: str, password_file: Path | None) -> AdminAccount:
    """Create the ``admin`` account unless it exists.

    An existing admin keeps its password (change it with auth's ChangeSecret). Without a
    configured password one is generated; it is written to ``password_file`` (mode 0600)
    when given, so the CLI on the same machine can log in.
    """
    generated = None
    if not password:
        generated = password = secrets.token_urlsafe(18)
    try:
        await clients.get(AuthClient).generate(
            auth_pb.GenerateRequest(
                id=ADMIN_ACCOUNT,
                type="user",
                name=ADMIN_ACCOUNT,
                scopes=["admin"],
                secret=password,
            )
        )
    except Conflict:
        return AdminAccount(created=False, generated_password=None)
    if generated is not None and password_file is not None:
        _save_password(password_file, generated)
    return AdminAccount(created=True, generated_password=generated)


def _save_password(path: Path, password: str) -> None:
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(password + "\n")
