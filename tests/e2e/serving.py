"""Running `m3o serve` for end-to-end tests: a subprocess on a free port, driven over HTTP."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from support.ports import free_port

ADMIN_PASSWORD = "e2e-admin-password"
M3O = [sys.executable, "-m", "m3o"]
CODE_SENTENCE = re.compile(
    r"please copy and paste this verification code into the signup form:\s*([A-Z]{8})\s+"
    r"This code expires"
)
RESET_TOKEN = re.compile(r"reset token is\s+([A-Za-z0-9_-]{43})\b")

T = TypeVar("T")

STARTUP_SECONDS = 90
"""How long `m3o serve` may take to become healthy (a few seconds on a quiet machine; the
deadline is generous for a busy CI machine, and a healthy platform returns at once)."""


@dataclass
class Platform:
    url: str
    process: subprocess.Popen[str]
    data_dir: Path

    def post(self, path: str, body: dict[str, Any], token: str = "") -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.post(f"{self.url}{path}", json=body, headers=headers, timeout=30)

    def admin_token(self) -> str:
        response = self.post("/auth/token", {"id": "admin", "secret": ADMIN_PASSWORD})
        assert response.status_code == 200, response.text
        token: str = response.json()["token"]["access_token"]
        return token

    def latest_email(self, to: str, template: str, pattern: re.Pattern[str]) -> str:
        """The first group of ``pattern`` in the newest ``template`` email to ``to``."""
        admin = self.admin_token()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            listed = self.post("/emails/listOutbox", {"to": to, "limit": 10}, admin)
            assert listed.status_code == 200, listed.text
            for email in listed.json().get("emails", []):
                found = pattern.search(email.get("text", ""))
                if email.get("template_id") == template and found:
                    return found.group(1)
            time.sleep(0.1)
        raise AssertionError(f"no {template} email to {to} in the outbox")

    def stop(self) -> str:
        """Stop it as Ctrl-C does; returns what it wrote on stderr."""
        self.process.send_signal(signal.SIGINT)
        _, err = self.process.communicate(timeout=30)
        return err


def serve(
    data_dir: Path,
    env: Mapping[str, str],
    *,
    stdout: int = subprocess.DEVNULL,
    command: Sequence[str] = (*M3O, "serve"),
) -> Platform:
    """Start `m3o serve` (or ``command``, taking its options) on ``data_dir`` at a free
    port; returns once it is healthy."""
    port = free_port()
    process = subprocess.Popen(
        [*command, "--data-dir", str(data_dir), "--port", str(port)],
        env=env,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        if process.poll() is not None:
            raise AssertionError(f"m3o serve exited: {process.communicate()[1]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=0.5).status_code == 200:
                return Platform(url, process, data_dir)
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            process.communicate()
            raise AssertionError(f"m3o serve was not healthy within {STARTUP_SECONDS} s")
        time.sleep(0.05)


def serving(tmp_path: Path, extra_env: Mapping[str, str] = {}) -> Iterator[Platform]:
    """Start `m3o serve` in ``tmp_path``; yields once it is healthy, kills it after."""
    platform = serve(tmp_path, {**os.environ, "M3O_ADMIN_PASSWORD": ADMIN_PASSWORD, **extra_env})
    try:
        yield platform
    finally:
        platform.process.kill()
        platform.process.communicate()


def eventually(check: Callable[[], T], what: str = "the condition", seconds: float = 20) -> T:
    """``check()``'s first truthy result, asked again every 0.1 s for up to ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {seconds} s (last: {result!r})")
        time.sleep(0.1)
