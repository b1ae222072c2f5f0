"""Code run in a Python process of its own: what a fresh interpreter imports is seen only
there (this test process has imported everything already)."""

from __future__ import annotations

import subprocess
import sys

__all__ = ["lines_printed"]


def lines_printed(code: str) -> list[str]:
    """The lines ``code`` prints, run by this interpreter in a new process (which must
    succeed)."""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    return done.stdout.splitlines()
