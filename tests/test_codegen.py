"""What ``m3o gen`` writes: method names of generated clients (protobuf's CamelCase to
Python's snake_case), and how every generated file is marked as such."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from m3o.codegen import HEADER, _snake, generated_paths
from m3o.services.v1.proto.client import V1Client

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"


@pytest.mark.parametrize(
    ("method", "python"),
    [
        ("Call", "call"),
        ("ReadMonthlyTotal", "read_monthly_total"),
        ("GoogleURL", "google_url"),
        ("ListAPIs", "list_apis"),
        ("ListAPIRanks", "list_api_ranks"),
        ("GetAPIsNow", "get_apis_now"),
        ("HTTPServer", "http_server"),
    ],
)
def test_method_names(method: str, python: str) -> None:
    assert _snake(method) == python


def test_the_generated_client_uses_the_plural_acronym_name() -> None:
    assert hasattr(V1Client, "list_apis")


def test_every_generated_file_starts_with_the_header_naming_its_proto() -> None:
    generated = generated_paths(SRC)
    assert len(generated) > len(list((SRC / "m3o").rglob("*.proto")))
    for path, proto in generated.items():
        with (SRC / path).open() as file:
            assert file.readline() == HEADER.format(proto=proto), path


def test_gitattributes_marks_exactly_the_generated_files() -> None:
    files = [
        str(path.relative_to(ROOT))
        for path in SRC.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    ]
    answer = subprocess.run(
        ["git", "check-attr", "--stdin", "linguist-generated"],
        cwd=ROOT,
        input="\n".join(files),
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    marked = {
        line.split(": ", 1)[0]
        for line in answer.stdout.splitlines()
        if line.endswith(": linguist-generated: true")
    }
    assert marked == {str(Path("src") / path) for path in generated_paths(SRC)}
