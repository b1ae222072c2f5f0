"""Driving the console in Chromium: launching Debian's ``chromium`` through Playwright,
watching pages for Content Security Policy violations and script errors, full-page
screenshots, and signing in and out through the header and the login form.

The browser is the machine's ``chromium`` (``apt-get install chromium``), never one that
Playwright downloads; a machine without it fails the browser tests, it never skips them.
The machine's network is closed, so Chromium's background connections (updates, sync,
QUIC probes) are turned off: they would only fail and log.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import Browser, ConsoleMessage, Error, Page, Playwright, expect

__all__ = [
    "CHROMIUM_ARGS",
    "CSP",
    "Watch",
    "chromium_path",
    "launch",
    "screenshots_dir",
    "shot",
    "shot_path",
    "sign_in",
    "sign_out",
    "signed_in_name",
    "visit",
]

ROOT = Path(__file__).resolve().parents[2]

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

CSP = "Content Security Policy"
"""Part of the console message Chromium logs for every blocked script, style or fetch."""


def chromium_path() -> str:
    """Where the machine's Chromium is; fails (never skips) when it is not installed."""
    found = shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
    )
    assert found, "chromium is not installed: apt-get install -y chromium (see .ci/run)"
    return found


def launch(playwright: Playwright) -> Browser:
    """Headless Chromium, with its background networking off."""
    return playwright.chromium.launch(
        executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS
    )


def screenshots_dir() -> Path:
    """``$M3O_TEST_ARTIFACTS/screenshots``, else ``<repo>/test-artifacts/screenshots``."""
    artifacts = os.environ.get("M3O_TEST_ARTIFACTS")
    return (Path(artifacts) if artifacts else ROOT / "test-artifacts") / "screenshots"


def shot_path(name: str) -> Path:
    """Where the screenshot ``name`` goes: ``<screenshots>/<name>.png``, name made safe."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")
    return screenshots_dir() / f"{safe}.png"


def shot(page: Page, name: str) -> Path:
    """A full-page PNG of what ``page`` shows now, at :func:`shot_path`."""
    path = shot_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=path, full_page=True)
    return path


@dataclass
class Watch:
    """What went wrong in the pages it watches: CSP violations and uncaught script errors."""

    problems: list[str] = field(default_factory=list)

    def attach(self, page: Page) -> None:
        page.on("console", lambda message: self._console(page, message))
        page.on("pageerror", lambda error: self._error(page, error))

    def _console(self, page: Page, message: ConsoleMessage) -> None:
        if CSP in message.text:
            self.problems.append(f"{page.url}: {message.text}")

    def _error(self, page: Page, error: Error) -> None:
        self.problems.append(f"{page.url}: uncaught {error.name}: {error.message}")

    def assert_clean(self) -> None:
        assert not self.problems, "\n".join(self.problems)


def visit(page: Page, path: str) -> None:
    """Open ``path`` of the console; fails at once, naming it, unless it answers 200."""
    response = page.goto(path)
    assert response is not None, path
    assert response.status == 200, f"GET {path}: {response.status} {response.status_text}"


def signed_in_name(page: Page) -> str:
    """The name in the header's "signed in as" place ('' when nobody is signed in)."""
    names = page.locator("header .name")
    return names.inner_text().strip() if names.count() else ""


def sign_in(page: Page, who: str, password: str) -> None:
    """Fill in and send the login form (the page after it is left to the caller)."""
    visit(page, "/console/login")
    page.get_by_label("Email", exact=True).fill(who)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_load_state()


def sign_out(page: Page) -> None:
    """Press "Sign out" in the header; returns on the login page it leads to."""
    page.get_by_role("button", name="Sign out", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)
