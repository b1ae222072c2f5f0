"""What the public API's checks cost: one gateway process, every check on and every check off.

Targets (spec/gateway.md, "Speed", raised for the platform profile by the hot-path work),
with a trivial upstream on the same machine:
- with every check on, one gateway process serves >= 70% (local profile) or >= 80%
  (platform profile) of the requests per second the same process serves with every check
  off, measured side by side in this run;
- with every check off, it forwards >= 15% of the upstream's own rate (the forwarding
  ceiling);
- the gateway adds p50 <= 1 ms and p99 <= 5 ms over calling the upstream directly;
- the gateway process stays under 300 MB resident under load;
- platform profile: at most 4 Redis commands per call with checks on, in all processes
  together (``INFO commandstats``, commands inside scripts included).

What runs (each in its own process, all on this machine):
- the upstream: a plain HTTP JSON app under uvicorn (``benchmarks/_gateway_upstream.py``),
  published in the catalog as the ``http`` API ``bench`` (helloworld's descriptors, so
  ``/v1/bench/call`` is the declared endpoint ``Helloworld.Call``, priced 1 unit);
- ONE gateway worker (``benchmarks/_gateway_worker.py``): ``m3o serve`` for ``--profile
  local`` (SQLite counter store, every service in the process), ``m3o run gateway`` for
  ``--profile platform`` (Redis counter store, PostgreSQL, every service it calls in a
  process of its own over unix sockets). The same process also serves ``/bench-off/...``:
  the same application and forwarder with every check off (see the worker's docstring);
- the peer: HAProxy (``benchmarks/_gateway_peer.py``; Debian: ``apt-get install haproxy``)
  in front of the same upstream, serving the same ``/v1/bench/call`` with the same key:
  the key looked up in a map, a per-key rate limit in a stick table, one thread. Our
  figures are printed as ratios of the peer's too. Without HAProxy the benchmark stops
  saying how to install it; ``--no-peer`` runs it without the peer, on purpose only;
- wrk (required), with a Lua script that POSTs ``{"name": "bench"}`` with the key in
  ``Authorization``.

Every check on: key authentication (a real key of a real customer), scopes, the catalog,
the upstream token (auth.Grant), one admission of a priced call in the profile's counter
store (rate limit, cap, quota, balance debit, monthly counters), requests/Request events
published in batches (and consumed by usage). The rate limit is raised out of the way
(``M3O_V1__RATE_LIMITS__FREE``) so that every call is admitted, and every answer must be
200 for a run to count.

Each case runs twice: under load (``--connections``, default 32, the saturated throughput
and its latencies) and with one connection (the latency one call takes: the "added
latency" targets are judged there, where latency is not queueing). The baseline, measured
in the same run, is wrk calling the upstream directly. With ``--rounds`` above 1 the cases
take turns round after round, and each round's own checks on / checks off ratio is printed
with their median: on a shared machine a single run's ratio moves by 0.1 from one minute
to the next, a step smaller than that shows in the median of rounds.

    uv run python benchmarks/gateway.py [--profile local|platform] [--duration 10]
        [--connections 32] [--rounds 1] [--postgres URL] [--redis URL] [--no-peer]
        [--profiler cprofile|pyinstrument] [--profile-out F]

``--profiler`` adds two
more runs under load, checks off then on, with the gateway profiled (the measured runs are
not), and prints (and with ``--profile-out``, keeps) each profile; pyinstrument needs
``uv run --with pyinstrument``.
Processes, the temporary directory, the PostgreSQL database and the Redis database's keys
are removed at the end. Throughput moves by 10-15 % from run to run on a small shared
machine; for smaller steps, ``benchmarks/gateway_instructions.py`` counts the gateway's
instructions per call in the same set-up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pstats
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import _gateway_peer as haproxy
import httpx

from m3o.runtime.rpc.jsonmap import message_to_dict
from m3o.services.helloworld.catalog import descriptor_set
from m3o.services.publicapi.proto import publicapi_pb2 as publicapi_pb

HERE = Path(__file__).resolve().parent
M3O = [sys.executable, "-m", "m3o"]
WORKER = [sys.executable, str(HERE / "_gateway_worker.py")]
WORKER_PREFIX: list[str] = []
"""What the gateway worker's command is run under (``gateway_instructions.py``: callgrind)."""
READY_SECONDS = 90.0
"""How long a process may take to be ready (raised when the gateway runs under callgrind)."""
ADMIN_PASSWORD = "benchmark-admin-password"
API = "bench"
PRICE = 1
FUNDS = 10**12
RATE_LIMIT = 10**9
BODY = '{"name": "bench"}'
EXPECTED = {"message": "Hello bench"}
PLATFORM_SERVICES = ("auth", "customers", "projects", "publicapi", "balance", "usage", "v1")

TARGET_RATIO = {"local": 0.70, "platform": 0.80}
TARGET_FORWARDING = 0.15
TARGET_REDIS_PER_CALL = 4.0
TARGET_ADDED_P50_MS = 1.0
TARGET_ADDED_P99_MS = 5.0
TARGET_RSS_MB = 300.0

WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = '{body}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {key}"

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


# --- processes -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    stream: TextIO

    def tail(self) -> str:
        self.stream.flush()
        return self.log.read_text(errors="replace")[-3000:]

    def check(self) -> None:
        if self.popen.poll() is not None:
            raise SystemExit(f"{self.name} exited with {self.popen.returncode}:\n{self.tail()}")


class Processes:
    """Every process this benchmark starts; stopped (SIGTERM, then SIGKILL) in reverse."""

    def __init__(self, logs: Path) -> None:
        self._logs = logs
        self.started: list[Process] = []

    def start(
        self, name: str, command: list[str], env: dict[str, str], cwd: Path | None = None
    ) -> Process:
        log = self._logs / f"{name}.log"
        stream = log.open("w")
        popen = subprocess.Popen(command, env=env, cwd=cwd, stdout=stream, stderr=subprocess.STDOUT)
        process = Process(name, popen, log, stream)
        self.started.append(process)
        return process

    def stop(self) -> None:
        for process in reversed(self.started):
            if process.popen.poll() is None:
                process.popen.send_signal(signal.SIGTERM)
            try:
                process.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.popen.kill()
                process.popen.wait()
            process.stream.close()
        self.started.clear()


def wait_for(
    check: Callable[[], bool], what: str, processes: list[Process], seconds: float | None = None
) -> None:
    deadline = time.monotonic() + (READY_SECONDS if seconds is None else seconds)
    while time.monotonic() < deadline:
        for process in processes:
            process.check()
        try:
            if check():
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.1)
    raise SystemExit(f"{what}: not within {seconds:.0f} s")


def answers(url: str) -> Callable[[], bool]:
    return lambda: httpx.get(url, timeout=2).status_code == 200


# --- the profiles ----------------------------------------------------------------------------


@dataclass
class Gateway:
    url: str
    process: Process
    others: list[Process]
    """The platform profile's service processes."""
    counter_store: str
    redis_url: str | None = None


def start_local(procs: Processes, tmp: Path, upstream: str) -> Gateway:
    port = free_port()
    env = {
        **os.environ,
        "M3O_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "M3O_V1__RATE_LIMITS__FREE": str(RATE_LIMIT),
        "M3O_BENCH_UPSTREAM": upstream,
        **profiler_env(tmp),
    }
    data = str(tmp / "data")
    command = [*WORKER_PREFIX, *WORKER, "serve", "--data-dir", data, "--port", str(port)]
    gateway = procs.start("gateway", command, env)
    url = f"http://127.0.0.1:{port}"
    wait_for(answers(f"{url}/readyz"), "m3o serve ready", [gateway])
    return Gateway(url, gateway, [], "SQLite")


@contextmanager
def postgres_database(server_url: str) -> Iterator[str]:
    """A fresh database on ``server_url``'s server, dropped afterwards."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url
    from sqlalchemy.ext.asyncio import create_async_engine

    name = f"m3o_bench_{uuid.uuid4().hex[:10]}"
    server = make_url(server_url)

    async def execute(statement: str) -> None:
        engine = create_async_engine(server, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as conn:
                await conn.execute(text(statement))
        finally:
            await engine.dispose()

    try:
        asyncio.run(execute(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - whatever it is, the benchmark cannot run
        raise SystemExit(f"--profile platform needs PostgreSQL at {server_url}: {exc}") from None
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def redis_database(url: str) -> Iterator[str]:
    """``url``'s Redis database, which must be empty; emptied afterwards."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        size = client.dbsize()
    except redis.RedisError as exc:
        raise SystemExit(f"--profile platform needs Redis at {url}: {exc}") from None
    if size:
        raise SystemExit(f"Redis database {url} holds {size} keys: give an empty one (--redis)")
    try:
        yield url
    finally:
        client.flushdb()
        client.close()


def start_platform(
    procs: Processes, tmp: Path, upstream: str, database: str, redis_url: str
) -> Gateway:
    sockets = tmp / "s"
    sockets.mkdir()
    port = free_port()
    env = {
        **os.environ,
        "M3O_DATABASE__URL": database,
        "M3O_REDIS__URL": redis_url,
        "M3O_AUTH__SERVICE_SECRET": "benchmark-service-secret",
        "M3O_AUTH__KEY_ENCRYPTION_KEY": "cGxhdGZvcm0tdGVzdC1rZXktZW5jcnlwdGlvbi0zMmI=",
        "M3O_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "M3O_SERVER__SERVICE_ADDRESS_TEMPLATE": f"unix:{sockets}/{{service}}.sock",
        "M3O_SERVER__PORT": str(port),
        "M3O_V1__RATE_LIMITS__FREE": str(RATE_LIMIT),
        "M3O_V1__KEY_PEPPER": "benchmark-key-pepper",
    }
    migrated = subprocess.run(
        [*M3O, "migrate"], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    if migrated.returncode != 0:
        raise SystemExit(f"m3o migrate failed:\n{migrated.stdout}{migrated.stderr}")
    services = [procs.start(name, [*M3O, "run", name], env) for name in PLATFORM_SERVICES]
    for service in services:
        socket_path = sockets / f"{service.name}.sock"
        wait_for(socket_path.exists, f"{service.name} listening", [service])
    gateway = procs.start(
        "gateway",
        [*WORKER_PREFIX, *WORKER, "run", "gateway"],
        {**env, "M3O_BENCH_UPSTREAM": upstream, **profiler_env(tmp)},
    )
    url = f"http://127.0.0.1:{port}"
    wait_for(answers(f"{url}/readyz"), "m3o run gateway ready", [gateway, *services])
    return Gateway(url, gateway, services, "Redis", redis_url)


def start_gateway(
    stack: ExitStack, procs: Processes, tmp: Path, upstream: str, args: argparse.Namespace
) -> Gateway:
    """The gateway of ``args.profile`` (and, for the platform, its database, its Redis
    database and its services), forwarding to ``upstream``; ``stack`` removes them."""
    if args.profile == "local":
        return start_local(procs, tmp, upstream)
    database = stack.enter_context(postgres_database(args.postgres))
    redis_url = stack.enter_context(redis_database(args.redis))
    gateway = start_platform(procs, tmp, upstream, database, redis_url)
    stack.callback(procs.stop)  # the processes go before the database and Redis
    return gateway


def gateway_urls(gateway: Gateway) -> dict[str, str]:
    """The gateway's two cases: every check off, every check on."""
    return {
        "off": f"{gateway.url}/bench-off/Helloworld/Call",
        "on": f"{gateway.url}/v1/{API}/call",
    }


WORKER_OPTIONS: dict[str, str] = {}
"""``profiler``, from the command line."""


def profiler_env(tmp: Path) -> dict[str, str]:
    """What the gateway worker is told: the profiler to arm, if any."""
    env = {}
    if WORKER_OPTIONS.get("profiler"):
        env["M3O_BENCH_PROFILER"] = WORKER_OPTIONS["profiler"]
        env["M3O_BENCH_PROFILE_OUT"] = str(tmp / "profile.out")
    return env


# --- the API, a customer, a key --------------------------------------------------------------


def post(client: httpx.Client, path: str, body: dict[str, Any], token: str = "") -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = client.post(path, json=body, headers=headers)
    if response.status_code != 200:
        raise SystemExit(f"{path}: {response.status_code} {response.text}")
    answer: dict[str, Any] = response.json()
    return answer


@dataclass(frozen=True)
class Key:
    key: str
    id: str


def publish_and_get_key(gateway: Gateway, upstream: str) -> Key:
    """Publish ``bench`` (the upstream), make a funded customer and their key."""
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        admin_token: list[str] = []

        def admin_logged_in() -> bool:
            response = client.post("/auth/token", json={"id": "admin", "secret": ADMIN_PASSWORD})
            if response.status_code == 200:
                admin_token.append(response.json()["token"]["access_token"])
            return bool(admin_token)

        wait_for(admin_logged_in, "the admin account", [gateway.process, *gateway.others])
        admin = admin_token[0]
        request = publicapi_pb.PublishRequest(
            api=publicapi_pb.PublicAPI(
                name=API,
                display_name="Benchmark upstream",
                description="The trivial HTTP upstream of benchmarks/gateway.py.",
                category="example",
                pricing={"Helloworld.Call": PRICE},
                upstream=publicapi_pb.Upstream(address=upstream, protocol="http"),
                descriptors=descriptor_set(),
            )
        )
        post(client, "/publicapi/publish", message_to_dict(request), admin)
        email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
        password = "a benchmark password"
        customer = post(client, "/customers/create", {"email": email}, admin)["customer"]["id"]
        post(
            client,
            "/auth/generate",
            {
                "id": customer,
                "type": "customer",
                "scopes": ["customer"],
                "name": email,
                "secret": password,
            },
            admin,
        )
        post(client, "/customers/markVerified", {"id": customer}, admin)
        post(
            client,
            "/balance/increment",
            {
                "customer_id": customer,
                "delta": FUNDS,
                "reference": "Benchmark funds",
                "idempotency_key": f"funds-{customer}",
                "visible": True,
            },
            admin,
        )
        login = post(client, "/customers/login", {"email": email, "password": password})
        token = login["token"]["access_token"]
        generated = post(
            client, "/v1/api/keys/generate", {"scopes": [API], "description": "benchmark"}, token
        )
        return Key(str(generated["api_key"]), str(generated["api_key_id"]))


def check_answers(url: str, key: str, *, charged: bool, processes: list[Process]) -> None:
    """``url`` answers the upstream's greeting (once the catalog has the API)."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    def answered() -> bool:
        response = httpx.post(url, content=BODY, headers=headers, timeout=10)
        if response.status_code != 200:
            return False
        if response.json() != EXPECTED:
            raise SystemExit(f"{url} answered {response.text}")
        if charged and response.headers.get("X-M3O-Price") != str(PRICE):
            raise SystemExit(f"{url}: not charged ({dict(response.headers)})")
        return True

    wait_for(answered, f"{url} answering 200", processes, seconds=30)


# --- the peer --------------------------------------------------------------------------------


@dataclass
class Peer:
    url: str
    process: Process
    stats_socket: Path


def start_peer(procs: Processes, tmp: Path, upstream: str, key: Key) -> Peer:
    """HAProxy in front of ``upstream``, knowing ``key`` (see ``_gateway_peer.py``)."""
    keys_map = tmp / "peer-keys.map"
    keys_map.write_text(f"{key.key} {key.id}\n")
    stats_socket = tmp / "peer.sock"
    port = free_port()
    config_file = tmp / "peer.cfg"
    config_file.write_text(
        haproxy.config(
            port=port,
            upstream=upstream.removeprefix("http://"),
            keys_map=keys_map,
            stats_socket=stats_socket,
            rate_limit=RATE_LIMIT,
            upstream_path="/Helloworld/Call",
        )
    )
    checked = subprocess.run(
        haproxy.check_command(config_file), capture_output=True, text=True, timeout=30, check=False
    )
    if checked.returncode != 0:
        raise SystemExit(f"HAProxy refused its configuration:\n{checked.stdout}{checked.stderr}")
    process = procs.start("peer", haproxy.command(config_file), dict(os.environ))
    wait_for(stats_socket.exists, "HAProxy listening", [process], seconds=30)
    return Peer(f"http://127.0.0.1:{port}", process, stats_socket)


def check_peer_checks(peer: Peer, key: Key, processes: list[Process]) -> None:
    """The peer refuses a wrong key, and its stick table counted the key's calls."""
    url = f"{peer.url}{haproxy.PATH}"
    wrong = {"Authorization": "Bearer m3o_wrong", "Content-Type": "application/json"}
    refused = httpx.post(url, content=BODY, headers=wrong, timeout=10)
    if refused.status_code != 401:
        raise SystemExit(f"HAProxy let a wrong key through: {refused.status_code} {refused.text}")
    for process in processes:
        process.check()
    if key.id not in haproxy.tracked(peer.stats_socket):
        raise SystemExit(f"HAProxy's stick table {haproxy.TABLE} does not track the key")


# --- wrk and what the processes use ----------------------------------------------------------


@dataclass
class Run:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    failures: int
    """Socket errors, timeouts and non-2xx answers."""
    cpu: dict[str, float] = field(default_factory=dict)
    """Process name -> share of one core used during the run."""
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    redis_commands: dict[str, int] | None = None
    """Commands Redis processed during the run, by command (every process's)."""

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Sampler:
    """CPU used and peak resident memory of some processes while a run lasts."""

    def __init__(self, pids: dict[str, int]) -> None:
        self._pids = pids
        self._stop = threading.Event()
        self.peak: dict[str, float] = dict.fromkeys(pids, 0.0)
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> Sampler:
        self._started = time.monotonic()
        self._ticks = {name: _cpu_ticks(pid) for name, pid in self._pids.items()}
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        elapsed = time.monotonic() - self._started
        hz = os.sysconf("SC_CLK_TCK")
        self.cpu = {
            name: (_cpu_ticks(pid) - self._ticks[name]) / hz / elapsed
            for name, pid in self._pids.items()
        }

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            for name, pid in self._pids.items():
                self.peak[name] = max(self.peak[name], _rss_mb(pid))


def redis_commands(url: str | None) -> dict[str, int] | None:
    """Commands Redis has processed so far, by command (``INFO commandstats``)."""
    if url is None:
        return None
    import redis

    client = redis.Redis.from_url(url)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}


def wrk_script(tmp: Path, key: Key) -> Path:
    """wrk's Lua script, POSTing the body with ``key``, written in ``tmp``."""
    script = tmp / "post.lua"
    script.write_text(WRK_SCRIPT.format(body=BODY, key=key.key))
    return script


def wrk(
    url: str,
    script: Path,
    *,
    connections: int,
    threads: int,
    seconds: float,
    pids: dict[str, int],
    redis_url: str | None = None,
) -> Run:
    command = [
        "wrk",
        "-t",
        str(min(threads, connections)),
        "-c",
        str(connections),
        "-d",
        f"{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
    ]
    before = redis_commands(redis_url)
    with Sampler(pids) as sampler:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=seconds + 60, check=False
        )
    after = redis_commands(redis_url)
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRK_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise SystemExit(f"wrk failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    data = json.loads(line.removeprefix("WRK_JSON "))
    return Run(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        failures=sum(data[k] for k in ("connect", "read", "write", "status", "timeout")),
        cpu=sampler.cpu,
        peak_rss_mb=sampler.peak,
        redis_commands=None
        if before is None or after is None
        else {k: n - before.get(k, 0) for k, n in after.items() if n > before.get(k, 0)},
    )


def median_run(runs: list[Run]) -> Run:
    """The median of each figure over the rounds (failures and peaks: the worst)."""
    if len(runs) == 1:
        return runs[0]
    seconds = statistics.median(r.seconds for r in runs)
    return Run(
        requests=round(statistics.median(r.per_second for r in runs) * seconds),
        seconds=seconds,
        p50_ms=statistics.median(r.p50_ms for r in runs),
        p99_ms=statistics.median(r.p99_ms for r in runs),
        failures=sum(r.failures for r in runs),
        cpu={k: statistics.median(r.cpu[k] for r in runs) for k in runs[0].cpu},
        peak_rss_mb={k: max(r.peak_rss_mb[k] for r in runs) for k in runs[0].peak_rss_mb},
        redis_commands=runs[len(runs) // 2].redis_commands,
    )


# --- the report ------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def row(label: str, run: Run, gateway: bool) -> str:
    text = f"  {label:<32} {run.per_second:>9,.0f} {run.p50_ms:>8.2f} {run.p99_ms:>8.2f}"
    if gateway:
        cpu, rss = run.cpu.get("gateway", 0), run.peak_rss_mb.get("gateway", 0)
        text += f" {100 * cpu:>7.0f}% {rss:>7.0f} MB"
    else:
        text += f" {'':>8} {'':>10}"
    others = {k: v for k, v in run.cpu.items() if k != "gateway" and v >= 0.01}
    if others:
        text += "   other CPU: " + ", ".join(f"{k} {100 * v:.0f}%" for k, v in others.items())
    if run.failures:
        text += f"   {run.failures} FAILED requests: this run does not count"
    return text


def report(
    profile: str,
    gateway: Gateway,
    args: argparse.Namespace,
    load: dict[str, Run],
    single: dict[str, Run],
) -> None:
    print(
        f"gateway benchmark, profile {profile} ({gateway.counter_store} counter store), "
        f"{os.cpu_count()} cores; wrk {args.threads} thread(s), {args.duration:g} s per run, "
        f"{args.rounds} round(s) (medians)"
    )
    print(f"  {'':<32} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'gw CPU':>8} {'gw RSS':>10}")
    for title, runs in (
        (f"under load ({args.connections} connections):", load),
        ("one connection:", single),
    ):
        print(title)
        print(row("upstream directly (baseline)", runs["direct"], False))
        print(row("gateway, every check off", runs["off"], True))
        print(row("gateway, every check on", runs["on"], True))
        if "peer" in runs:
            print(row("peer: HAProxy, map + stick table", runs["peer"], False))
    on, off, direct = load["on"], load["off"], load["direct"]
    ratio = on.per_second / off.per_second
    target = TARGET_RATIO[profile]
    forwarding = off.per_second / direct.per_second
    print(
        f"throughput checks on / checks off: {ratio:.2f} (target >= {target:.2f}): "
        f"{verdict(ratio >= target)}; checks off / upstream directly: {forwarding:.2f} "
        f"(target >= {TARGET_FORWARDING:.2f}): {verdict(forwarding >= TARGET_FORWARDING)}"
    )
    s_on, s_off, s_direct = single["on"], single["off"], single["direct"]
    added_p50 = s_on.p50_ms - s_direct.p50_ms
    added_p99 = s_on.p99_ms - s_direct.p99_ms
    print(
        f"added latency over the upstream, one connection, checks on: p50 {added_p50:+.2f} ms "
        f"(target <= {TARGET_ADDED_P50_MS:g} ms): {verdict(added_p50 <= TARGET_ADDED_P50_MS)}; "
        f"p99 {added_p99:+.2f} ms (target <= {TARGET_ADDED_P99_MS:g} ms): "
        f"{verdict(added_p99 <= TARGET_ADDED_P99_MS)}"
    )
    print(
        f"  of which checks off (forwarding alone): p50 {s_off.p50_ms - s_direct.p50_ms:+.2f} ms, "
        f"p99 {s_off.p99_ms - s_direct.p99_ms:+.2f} ms; under load, checks on: "
        f"p50 {on.p50_ms - direct.p50_ms:+.2f} ms, p99 {on.p99_ms - direct.p99_ms:+.2f} ms"
    )
    if "peer" in load:
        report_peer(load, single)
    else:
        print("peer (HAProxy): not measured (--no-peer)")
    rss = max(r.peak_rss_mb.get("gateway", 0) for r in (*load.values(), *single.values()))
    print(
        f"gateway resident memory under load: {rss:.0f} MB peak (target < {TARGET_RSS_MB:.0f} "
        f"MB): {verdict(rss < TARGET_RSS_MB)}"
    )
    if on.redis_commands is not None:
        per_call = sorted(
            ((n / on.requests, name) for name, n in on.redis_commands.items()), reverse=True
        )
        total = sum(n for n, _ in per_call)
        print(
            f"Redis commands per call with checks on (every process, consumers included): "
            f"{total:.2f} (target <= {TARGET_REDIS_PER_CALL:g}): "
            f"{verdict(total <= TARGET_REDIS_PER_CALL)}: "
            + ", ".join(f"{name} {n:.2f}" for n, name in per_call if n >= 0.01)
        )
    failed = sum(r.failures for r in (*load.values(), *single.values()))
    if failed:
        print(f"INVALID: {failed} requests failed or were not answered 200")


def report_rounds(load: dict[str, list[Run]]) -> None:
    """With several rounds: the ratio of each round's two runs, measured a few seconds
    apart, and their median. The machine's speed drifts from minute to minute; a round's
    own ratio shares its minute, so their median moves less than the ratio of medians."""
    ratios = [
        on.per_second / off.per_second for on, off in zip(load["on"], load["off"], strict=True)
    ]
    if len(ratios) > 1:
        print(
            "checks on / checks off, round by round: "
            + ", ".join(f"{ratio:.2f}" for ratio in ratios)
            + f"; median {statistics.median(ratios):.2f}"
        )


def report_peer(load: dict[str, Run], single: dict[str, Run]) -> None:
    """Our figures as ratios of the peer's (HAProxy checking the same key)."""
    peer, direct = load["peer"], load["direct"]
    print(
        f"against the peer (HAProxy, one thread: the key in a map, a per-key rate limit in a "
        f"stick table), under load: checks on / peer {load['on'].per_second / peer.per_second:.3f}"
        f", checks off / peer {load['off'].per_second / peer.per_second:.3f}; "
        f"peer / upstream directly {peer.per_second / direct.per_second:.2f}"
    )
    s_peer, s_direct = single["peer"], single["direct"]
    print(
        f"  peer's added latency, one connection: p50 {s_peer.p50_ms - s_direct.p50_ms:+.2f} ms, "
        f"p99 {s_peer.p99_ms - s_direct.p99_ms:+.2f} ms"
    )


def print_profile(kind: str, out: Path, keep: Path | None) -> None:
    if not out.exists():
        print(f"no profile written ({out})")
        return
    if keep is not None:
        keep.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(out, keep)
        print(f"profile kept in {keep}")
    if kind == "cprofile":
        stats = pstats.Stats(str(out))
        stats.sort_stats("tottime").print_stats(30)
    else:
        print(out.read_text()[:20000])


# --- main ------------------------------------------------------------------------------------


def add_server_options(parser: argparse.ArgumentParser) -> None:
    """``--postgres`` and ``--redis``: the servers of the platform profile."""
    parser.add_argument(
        "--postgres",
        default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres",
        help="a PostgreSQL server (platform profile): a database is created and dropped",
    )
    parser.add_argument(
        "--redis",
        default="redis://127.0.0.1:6379/14",
        help="an empty Redis database (platform profile), emptied afterwards",
    )


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=["local", "platform"], default="local")
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured run")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of wrk before each")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--rounds", type=int, default=1, help="measure each case this often")
    add_server_options(parser)
    parser.add_argument(
        "--no-peer",
        action="store_true",
        help="leave out the peer (HAProxy), which is otherwise required",
    )
    parser.add_argument("--profiler", choices=["cprofile", "pyinstrument"], default="")
    parser.add_argument("--profile-out", type=Path, default=None, help="keep the profiles here")
    return parser.parse_args()


def _importable(module: str, option: str) -> None:
    try:
        __import__(module)
    except ImportError:
        raise SystemExit(f"{option}: run with `uv run --with {module} python ...`") from None


def require_tools(args: argparse.Namespace) -> None:
    """wrk, and the one-off packages the options ask for; stop with a clear message if not."""
    if shutil.which("wrk") is None:
        raise SystemExit(
            "wrk is not installed: this benchmark drives the load with it "
            "(Debian/Ubuntu: apt-get install wrk)"
        )
    if not args.no_peer and shutil.which("haproxy") is None:
        raise SystemExit(
            "HAProxy is not installed: this benchmark measures it side by side as the peer "
            "(Debian/Ubuntu: apt-get install haproxy). To run without the peer, say so: "
            "--no-peer"
        )
    if args.profiler == "pyinstrument":
        _importable("pyinstrument", "--profiler pyinstrument")
    WORKER_OPTIONS.update(profiler=args.profiler)


def start_upstream(procs: Processes) -> tuple[str, Process]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = procs.start(
        "upstream",
        [
            sys.executable, "-m", "uvicorn", "_gateway_upstream:app",
            "--app-dir", str(HERE), "--host", "127.0.0.1", "--port", str(port),
            "--http", "httptools", "--loop", "uvloop", "--no-access-log",
            "--log-level", "warning",
        ],
        dict(os.environ),
    )  # fmt: skip
    wait_for(
        lambda: httpx.post(f"{url}/Helloworld/Call", content=BODY).status_code == 200,
        "the upstream",
        [process],
    )
    return url, process


@dataclass
class Bench:
    """The three cases, ready for wrk."""

    args: argparse.Namespace
    gateway: Gateway
    upstream: Process
    peer: Peer | None
    urls: dict[str, str]
    script: Path

    def measure(self, case: str, connections: int) -> Run:
        """A warm-up, then one measured run of ``case`` with ``connections``."""
        others = self.gateway.others
        pids = {"gateway": self.gateway.process.popen.pid, "upstream": self.upstream.popen.pid}
        if self.peer is not None:
            pids["peer"] = self.peer.process.popen.pid
        pids.update({p.name: p.popen.pid for p in others})
        url = self.urls[case]
        options: dict[str, Any] = {
            "connections": connections,
            "threads": self.args.threads,
            "pids": pids,
        }
        wrk(url, self.script, seconds=self.args.warmup, **options)
        time.sleep(0.5)  # let the warm-up's events and debits settle
        run = wrk(
            url,
            self.script,
            seconds=self.args.duration,
            redis_url=self.gateway.redis_url,
            **options,
        )
        for process in (self.gateway.process, self.upstream, *others):
            process.check()
        if self.peer is not None:
            self.peer.process.check()
        if others:  # the platform's service processes, together
            run.cpu["services"] = sum(run.cpu.pop(p.name) for p in others)
            for process in others:
                run.peak_rss_mb.pop(process.name)
        time.sleep(1.0)
        return run

    def profile(self, case: str, out: Path) -> None:
        """One more run under load with the gateway's profiler on; print what it found."""
        out.unlink(missing_ok=True)
        gateway = self.gateway.process.popen
        gateway.send_signal(signal.SIGUSR1)
        wrk(
            self.urls[case],
            self.script,
            connections=self.args.connections,
            threads=self.args.threads,
            seconds=self.args.duration,
            pids={"gateway": gateway.pid},
        )
        gateway.send_signal(signal.SIGUSR2)
        time.sleep(3)
        print(f"\n--- profile of the gateway under load, every check {case} ---")
        keep = self.args.profile_out
        if keep is not None:
            keep = keep.with_name(f"{keep.stem}-{case}{keep.suffix}")
        print_profile(self.args.profiler, out, keep)


def main() -> None:
    args = arguments()
    require_tools(args)
    with ExitStack() as stack:
        tmp = Path(tempfile.mkdtemp(prefix="m3o-bench-"))
        stack.callback(shutil.rmtree, tmp, ignore_errors=True)
        logs = tmp / "logs"
        logs.mkdir()
        procs = Processes(logs)
        stack.callback(procs.stop)
        upstream, upstream_process = start_upstream(procs)
        gateway = start_gateway(stack, procs, tmp, upstream, args)
        key = publish_and_get_key(gateway, upstream)
        urls = {"direct": f"{upstream}/Helloworld/Call", **gateway_urls(gateway)}
        every = [gateway.process, upstream_process, *gateway.others]
        peer = None if args.no_peer else start_peer(procs, tmp, upstream, key)
        if peer is not None:
            urls["peer"] = f"{peer.url}{haproxy.PATH}"
            every.append(peer.process)
        for case, url in urls.items():
            check_answers(url, key.key, charged=case == "on", processes=every)
        if peer is not None:
            check_peer_checks(peer, key, every)
        script = wrk_script(tmp, key)
        bench = Bench(args, gateway, upstream_process, peer, urls, script)

        load: dict[str, list[Run]] = {case: [] for case in urls}
        single: dict[str, list[Run]] = {case: [] for case in urls}
        for _ in range(args.rounds):
            for case in urls:
                load[case].append(bench.measure(case, args.connections))
            for case in urls:
                single[case].append(bench.measure(case, 1))
        report(
            args.profile,
            gateway,
            args,
            {case: median_run(runs) for case, runs in load.items()},
            {case: median_run(runs) for case, runs in single.items()},
        )
        report_rounds(load)
        if args.profiler:
            for case in ("off", "on"):
                bench.profile(case, tmp / "profile.out")


if __name__ == "__main__":
    main()
