"""The image (``Dockerfile``, ``.dockerignore``): multi-stage, dependencies from uv.lock, a
final stage without installers that runs ``m3o`` as a non-root user and declares no
HEALTHCHECK, a build context without local state or secrets, and hadolint's rules."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from support.deploy_files import DOCKERFILE, ROOT


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def arguments(self, keyword: str) -> list[str]:
        return [arguments for word, arguments in self.instructions if word == keyword]


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    joined = re.sub(
        r"\\\n",
        " ",
        "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")),
    )
    found = []
    for line in joined.splitlines():
        if line.strip():
            word, _, arguments = line.strip().partition(" ")
            found.append((word.upper(), " ".join(arguments.split())))
    return found


def _stages() -> list[Stage]:
    stages: list[Stage] = []
    for word, arguments in _instructions(DOCKERFILE.read_text()):
        if word == "FROM":
            base, _, name = arguments.partition(" AS ")
            stages.append(Stage(base, name))
        elif stages:
            stages[-1].instructions.append((word, arguments))
    return stages


def test_the_image_is_built_in_stages_and_the_last_copies_only_the_environment() -> None:
    *builders, final = _stages()
    assert builders, "a build stage installs, the final stage only runs"
    copies = final.arguments("COPY")
    assert copies == [f"--from={builders[-1].name} /opt/m3o /opt/m3o"]
    assert {s.base for s in _stages()} == {final.base}, "one base: the venv's Python is the same"


def test_dependencies_come_from_the_lock_without_dev_dependencies() -> None:
    *builders, _ = _stages()
    syncs = [r for s in builders for r in s.arguments("RUN") if "uv sync" in r]
    assert syncs
    for sync in syncs:
        assert "--locked" in sync
        assert "--no-dev" in sync
        assert "--mount=type=cache" in sync, "uv's download cache stays out of the layers"


def test_the_final_stage_has_no_installer_and_runs_m3o_as_a_non_root_user() -> None:
    final = _stages()[-1]
    runs = " ".join(final.arguments("RUN"))
    assert "pip uninstall" in runs
    assert "pip install" not in runs
    assert "uv " not in runs
    user = final.arguments("USER")[-1]
    assert user.split(":")[0] not in ("root", "0")
    assert user.split(":")[0].isdigit(), "numeric, so Kubernetes can check runAsNonRoot"
    assert final.arguments("ENTRYPOINT") == ['["m3o"]']


def test_the_image_declares_no_healthcheck() -> None:
    assert all(not s.arguments("HEALTHCHECK") for s in _stages())


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path (or a folder above it) decides."""

    def regex(pattern: str) -> re.Pattern[str]:
        parts = []
        for piece in re.split(r"(\*\*/|\*|\?)", pattern.strip("/")):
            parts.append({"**/": "(.*/)?", "*": "[^/]*", "?": "[^/]"}.get(piece, re.escape(piece)))
        return re.compile("".join(parts) + "(/.*)?")

    decided = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        if regex(pattern.lstrip("!")).fullmatch(path):
            decided = not negated
    return decided


def test_the_build_context_holds_the_project_and_no_local_state_or_secrets() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    for needed in (
        "pyproject.toml",
        "uv.lock",
        "README.md",
        "src/m3o/cli.py",
        "src/m3o/migrations/script.py.mako",
    ):
        assert not _ignored(needed, patterns), needed
    for kept_out in (
        ".env",
        "secrets/stripe.env",
        ".git/config",
        ".venv/bin/python",
        ".m3o/m3o.db",
        "tests/conftest.py",
        "src/m3o/__pycache__/cli.cpython-311.pyc",
        "compose.yaml",
        "deploy/kubernetes/config.yaml",
    ):
        assert _ignored(kept_out, patterns), kept_out


def test_hadolint_finds_nothing() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    linted = subprocess.run(
        [str(hadolint), str(DOCKERFILE)], capture_output=True, text=True, check=False, timeout=60
    )
    assert linted.returncode == 0, linted.stdout + linted.stderr
