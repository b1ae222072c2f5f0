"""The peer of benchmarks/gateway.py: HAProxy doing the simplest thing an operator might run
instead of our gateway, in front of the same upstream.

What it does with each ``POST /v1/bench/call`` (anything else: 404):

1. the API key: the second word of ``Authorization`` looked up in a map file (key -> key
   id); no entry: 401 in M3O's error format;
2. a per-key rate limit: the key id tracked in a stick table storing each entry's request
   rate over 1 s; over the limit: 429 (the benchmark sets the limit as high as the
   gateway's, so that every call is admitted, and checks afterwards that the table counted
   the calls);
3. the path rewritten to the upstream's ``/Helloworld/Call`` and the call forwarded.

One thread (``nbthread 1``), as the gateway is one worker process; no logging. Debian's
package: ``apt-get install haproxy``. Run in the foreground (``-db``) by the benchmark,
which stops it with the other processes.
"""

from __future__ import annotations

import socket
from pathlib import Path

__all__ = ["PATH", "TABLE", "check_command", "command", "config", "tracked"]

PATH = "/v1/bench/call"
"""The path the peer serves, the gateway's public path of the same call."""
TABLE = "per_key"
"""The stick table of per-key request rates."""
UNAUTHORIZED = '{"id":"v1","code":401,"detail":"Unauthorized","status":"Unauthorized"}'
TOO_MANY = '{"id":"v1","code":429,"detail":"Too many requests","status":"Too Many Requests"}'
NOT_FOUND = '{"id":"v1","code":404,"detail":"Not found","status":"Not Found"}'


def config(
    *,
    port: int,
    upstream: str,
    keys_map: Path,
    stats_socket: Path,
    rate_limit: int,
    upstream_path: str,
) -> str:
    """The configuration: listen on ``port``, forward to ``upstream`` (``host:port``)."""
    json = "content-type application/json string"
    return f"""\
global
    nbthread 1
    maxconn 4096
    stats socket {stats_socket} mode 600 level admin

defaults
    mode http
    option http-keep-alive
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 30s

frontend api
    bind 127.0.0.1:{port}
    http-request return status 404 {json} '{NOT_FOUND}' unless {{ path {PATH} }}
    http-request set-var(txn.key_id) req.hdr(authorization),word(2,' '),map({keys_map})
    http-request return status 401 {json} '{UNAUTHORIZED}' unless {{ var(txn.key_id) -m found }}
    http-request track-sc0 var(txn.key_id) table {TABLE}
    http-request return status 429 {json} '{TOO_MANY}' if {{ sc_http_req_rate(0) gt {rate_limit} }}
    http-request set-path {upstream_path}
    default_backend upstream

backend {TABLE}
    stick-table type string len 64 size 100k expire 10s store http_req_rate(1s)

backend upstream
    server upstream {upstream}
"""


def command(config_file: Path) -> list[str]:
    """HAProxy in the foreground on ``config_file``."""
    return ["haproxy", "-db", "-f", str(config_file)]


def check_command(config_file: Path) -> list[str]:
    """HAProxy checking ``config_file`` and exiting."""
    return ["haproxy", "-c", "-q", "-f", str(config_file)]


def tracked(stats_socket: Path) -> dict[str, int]:
    """The stick table's entries: key id -> its request rate over the last second."""
    with socket.socket(socket.AF_UNIX) as client:
        client.settimeout(5)
        client.connect(str(stats_socket))
        client.sendall(f"show table {TABLE}\n".encode())
        answer = b""
        while chunk := client.recv(65536):
            answer += chunk
    entries: dict[str, int] = {}
    for line in answer.decode().splitlines():
        fields = dict(part.split("=", 1) for part in line.split()[1:] if "=" in part)
        if "key" in fields:
            rate = next((v for k, v in fields.items() if k.startswith("http_req_rate")), "0")
            entries[fields["key"]] = int(rate)
    return entries
