"""How fast `m3o serve` becomes healthy, on a new data directory and again on the same
one, and how much memory it holds with every service.

Targets (issue: foundation): healthy within 5 s of starting, under 400 MB resident.
Baseline, measured in the same run: a bare Starlette app under uvicorn (the floor of any
Python web process on this machine). Prints one line per measurement and the ratios.

    uv run python benchmarks/serve_startup.py [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

BASELINE_APP = """
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

async def healthz(request):
    return JSONResponse({"status": "ok"})

app = Starlette(routes=[Route("/healthz", healthz)])
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(command: list[str], port: int, env: dict[str, str], cwd: str) -> tuple[float, float]:
    started = time.perf_counter()
    proc = subprocess.Popen(
        command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = started + 60
        while time.perf_counter() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                raise SystemExit(f"{command[0]} exited with {proc.returncode}")
            time.sleep(0.02)
        else:
            raise SystemExit("not healthy within 60 s")
        elapsed = time.perf_counter() - started
        time.sleep(1.0)  # let start-up work (seeding, consumers) settle
        return elapsed, rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def measure_serving(command: list[str], env: dict[str, str], cwd: str) -> tuple[float, float]:
    """:func:`measure` of ``command`` given ``--port`` and a free port to serve on."""
    port = free_port()
    return measure([*command, "--port", str(port)], port, env, cwd)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    env = {**os.environ, "M3O_ADMIN_PASSWORD": "benchmark-password"}
    serve_times, serve_rss, base_times, base_rss = [], [], [], []
    restart_times: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "baseline_app.py").write_text(BASELINE_APP)
        for _ in range(args.runs):
            baseline = [sys.executable, "-m", "uvicorn", "baseline_app:app"]
            t, m = measure_serving(baseline, env, tmp)
            base_times.append(t)
            base_rss.append(m)
            serve = [sys.executable, "-m", "m3o", "serve", "--data-dir", tempfile.mkdtemp(dir=tmp)]
            for times in (serve_times, restart_times):  # a new data directory, then again
                t, m = measure_serving(serve, env, tmp)
                times.append(t)
                serve_rss.append(m)
    st, sm = statistics.median(serve_times), max(serve_rss)
    rt = statistics.median(restart_times)
    bt, bm = statistics.median(base_times), max(base_rss)
    print(f"baseline (bare uvicorn app): healthy in {bt:.2f} s, {bm:.0f} MB resident")
    print(f"m3o serve (first start, every service): healthy in {st:.2f} s, {sm:.0f} MB resident")
    print(f"m3o serve (again on the same data): healthy in {rt:.2f} s")
    print(
        f"ratio start-up {st / bt:.1f}x (again: {rt / bt:.1f}x), "
        f"memory {sm / bm:.1f}x of the baseline"
    )
    print(
        f"targets: healthy <= 5 s: {'met' if st <= 5 else 'MISSED'}; "
        f"resident < 400 MB: {'met' if sm < 400 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
