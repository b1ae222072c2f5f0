"""``m3o serve``: the local platform behind uvicorn until Ctrl-C."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import uvicorn

from m3o.platform.heap import freeze_started
from m3o.platform.local import StartupError, open_local
from m3o.runtime.logging import configure_logging

__all__ = ["StartupError", "serve_local"]


async def serve_local(
    data_dir: Path,
    host: str,
    port: int,
    env: Mapping[str, str],
    *,
    announce: Callable[[str], object],
) -> None:
    """Open the local platform in ``data_dir`` and serve it on ``host:port``.

    ``announce`` shows the operator the address and, on first start, the generated admin
    password (never logged). Stopping (SIGINT / SIGTERM) drains in-flight requests, then
    stops consumers and crons and closes the database. A data directory or configuration
    that cannot be used raises :class:`StartupError` or ``ConfigError``, one line each.
    """
    configure_logging("info", json=True)
    platform = await open_local(data_dir, env, address=(host, port))
    configure_logging(platform.config.server.log_level, json=platform.config.server.log_json)
    url = f"http://{host}:{port}"
    if platform.admin.generated_password is not None:
        announce(
            f"Created the admin account `admin` with password "
            f"{platform.admin.generated_password} (also in {platform.admin_password_file})."
        )
    elif platform.admin.created:
        announce("Created the admin account `admin` with the configured password.")
    server = uvicorn.Server(
        uvicorn.Config(
            platform.app,
            host=host,
            port=port,
            http="httptools",
            lifespan="on",
            log_config=None,
            access_log=False,
            # The client's address is the front's to work out, from api.trusted_proxies
            # only; uvicorn's own rule would believe X-Forwarded-For from 127.0.0.1.
            proxy_headers=False,
            timeout_graceful_shutdown=10,
        )
    )
    announce(f"M3O is serving on {url} (data in {data_dir}). Ctrl-C stops it.")
    announce(f"Open {url}/ in a browser for the console.")
    if not platform.config.emails.enabled:
        announce(
            "Emails (signup codes, password resets) stay in the local outbox: "
            "`m3o emails list --to <address>` shows them."
        )
    freeze_started()
    await server.serve()
