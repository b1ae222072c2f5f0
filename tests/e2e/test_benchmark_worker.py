"""The gateway benchmark's processes start and answer (`benchmarks/gateway.py` judges the
hot path; these check, without wrk, that its worker and upstream still work with the code
as it is): the trivial upstream under uvicorn, and `m3o serve` through the benchmark's
worker, whose `/bench-off/...` forwards to it with every check off while `/v1` keeps them."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from e2e.serving import ADMIN_PASSWORD, Platform, eventually, serve
from support.ports import free_port

pytestmark = pytest.mark.e2e

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(name="upstream")
def upstream_fixture() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable, "-m", "uvicorn", "_gateway_upstream:app",
            "--app-dir", str(BENCHMARKS), "--host", "127.0.0.1", "--port", str(port),
            "--log-level", "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"the upstream exited: {process.communicate()[1]}")
        try:
            return httpx.post(f"{url}/Helloworld/Call", json={"name": "x"}).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        eventually(answers, "the benchmark's upstream answering", seconds=60)
        yield url
    finally:
        process.kill()
        process.communicate()


@pytest.fixture(name="worker")
def worker_fixture(tmp_path: Path, upstream: str) -> Iterator[Platform]:
    env = {**os.environ, "M3O_ADMIN_PASSWORD": ADMIN_PASSWORD, "M3O_BENCH_UPSTREAM": upstream}
    command = [sys.executable, str(BENCHMARKS / "_gateway_worker.py"), "serve"]
    platform = serve(tmp_path, env, command=command)
    try:
        yield platform
    finally:
        platform.process.kill()
        platform.process.communicate()


def test_the_benchmark_worker_forwards_with_checks_off_and_keeps_them_on_v1(
    worker: Platform,
) -> None:
    answer = httpx.post(f"{worker.url}/bench-off/Helloworld/Call", json={"name": "bench"})
    assert answer.status_code == 200
    assert answer.json() == {"message": "Hello bench"}
    assert "x-request-id" in answer.headers  # through the gateway's own middleware
    refused = httpx.post(f"{worker.url}/v1/helloworld/call", json={"name": "bench"})
    assert refused.status_code == 401
    assert refused.json()["detail"] == "Unauthorized"
