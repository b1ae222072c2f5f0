"""The trivial upstream of benchmarks/gateway.py: a plain HTTP JSON app (raw ASGI).

Any ``POST /<Service>/<Method>`` with ``{"name": x}`` answers ``{"message": "Hello x"}``, the
way an ``http`` upstream of the catalog is called. Served by uvicorn (httptools, uvloop) in
its own process:

    python -m uvicorn _gateway_upstream:app --app-dir benchmarks --port 8081
"""

from __future__ import annotations

from typing import Any

import orjson

_HEADERS = [(b"content-type", b"application/json")]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    try:
        request = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError:
        request = {}
    name = request.get("name", "") if isinstance(request, dict) else ""
    answer = orjson.dumps({"message": f"Hello {name}"})
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [*_HEADERS, (b"content-length", str(len(answer)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": answer})
