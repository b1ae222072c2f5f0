"""The project's own checks run with the suite, so a red lint is a red build.

Locally they can be left out of a run with ``M3O_SKIP_QUALITY=1`` (they take about 5 s with
mypy's cache, about 30 s without); each then shows as skipped, naming the variable. In CI
(``CI=true``) the variable is ignored: the checks always run there.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


BIN = Path(sys.executable).parent


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / args[0]), *args[1:]],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


def skipped_because(environ: Mapping[str, str]) -> str | None:
    """Why the checks are left out of this run, or None: they run."""
    if environ.get("CI", "").lower() in ("true", "1"):
        return None
    if environ.get("M3O_SKIP_QUALITY") == "1":
        return "M3O_SKIP_QUALITY=1: project checks left to CI"
    return None


@pytest.mark.parametrize(
    "environ",
    [{}, {"M3O_SKIP_QUALITY": "0"}, {"CI": "true", "M3O_SKIP_QUALITY": "1"}],
    ids=["unset", "not-1", "in-ci"],
)
def test_checks_run_unless_skipped_explicitly_and_always_in_ci(environ: dict[str, str]) -> None:
    assert skipped_because(environ) is None


def test_checks_are_skipped_locally_only_when_asked() -> None:
    reason = skipped_because({"M3O_SKIP_QUALITY": "1"})
    assert reason is not None
    assert "M3O_SKIP_QUALITY=1" in reason


@pytest.mark.parametrize(
    "command",
    [
        ("ruff", "check", "src", "tests", "benchmarks"),
        ("ruff", "format", "--check", "src", "tests", "benchmarks"),
        ("mypy", "src"),
        ("lint-imports",),
        ("m3o", "gen", "--check"),
    ],
    ids=["ruff-check", "ruff-format", "mypy-strict", "import-contracts", "generated-code-fresh"],
)
def test_project_check_passes(command: tuple[str, ...]) -> None:
    reason = skipped_because(os.environ)
    if reason is not None:
        pytest.skip(reason)
    result = run(*command)
    assert result.returncode == 0, result.stdout + result.stderr
