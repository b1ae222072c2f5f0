"""The security scan: checkov over the Kubernetes manifests and the Dockerfile finds nothing
that is not fixed or justified (a skip annotation or comment with its reason, beside the
resource).

checkov runs from an environment of its own: it pins ``packaging<24`` where pytest needs
``packaging>=24``, so it cannot be a dev dependency. ``.ci/run`` installs the pinned version
with ``uv tool install``; here ``uvx`` runs that one (or fetches it into uv's cache once).
One run scans both, its files named one by one (with ``--directory``, checkov leaves out a
``--file`` given beside it): a start of checkov is most of a scan's 10 s.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from typing import Any

import pytest

from support.deploy_files import DOCKERFILE, KUBERNETES, ROOT

CHECKOV = "checkov==3.3.30"


def _checkov(*target: str, frameworks: tuple[str, ...]) -> list[dict[str, Any]]:
    uv = shutil.which("uv")
    assert uv, "uv runs checkov (uvx) from its own pinned environment"
    # --skip-download: no calls to the vendor's platform; the checks ship with the package.
    scanned = subprocess.run(
        [
            uv,
            "tool",
            "run",
            "--from",
            CHECKOV,
            "checkov",
            "--skip-download",
            "--framework",
            *frameworks,
            "--output",
            "json",
            *target,
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=600,
    )
    assert scanned.returncode in (0, 1), scanned.stderr[-3000:]
    reports = json.loads(scanned.stdout)
    return reports if isinstance(reports, list) else [reports]


FILES = {
    "kubernetes": sorted(p for p in KUBERNETES.rglob("*") if p.suffix in (".yaml", ".yml")),
    "dockerfile": [DOCKERFILE],
}


@pytest.fixture(scope="module")
def reports() -> dict[str, dict[str, Any]]:
    """checkov's report for each framework, from one scan of every file."""
    files = [f for paths in FILES.values() for path in paths for f in ("--file", str(path))]
    found = _checkov(*files, frameworks=tuple(FILES))
    return {report["check_type"]: report for report in found}


def _failed_and_skipped(reports: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    failed, skipped = [], []
    for report in reports:
        results = report["results"]
        failed += [
            f"{c['check_id']} {c['resource']} ({c['file_path']}): {c['check_name']}"
            for c in results["failed_checks"]
        ]
        skipped += results["skipped_checks"]
        assert results["passed_checks"], "checkov checked nothing: the files were not parsed"
    return failed, skipped


def test_every_manifest_is_scanned() -> None:
    assert len(FILES["kubernetes"]) >= 5
    assert DOCKERFILE.is_file()


@pytest.mark.parametrize("framework", list(FILES))
def test_checkov_finds_no_unjustified_problem(
    reports: dict[str, dict[str, Any]], framework: str
) -> None:
    failed, skipped = _failed_and_skipped([reports[framework]])
    assert failed == []
    for check in skipped:
        reason = check["check_result"].get("suppress_comment", "")
        assert len(reason.split()) >= 5, f"{check['check_id']} on {check['resource']}: no reason"


def test_ci_installs_the_checkov_the_tests_run() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(rf'uv tool install[^\n]*"{re.escape(CHECKOV)}"', ci)
