"""What ``m3o gen`` writes: method names of generated clients (protobuf's CamelCase to
Python's snake_case), the comments of each ``.proto`` by full name (the OpenAPI document's
descriptions), and how every generated file is marked as such."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from m3o.codegen import HEADER, _snake, generated_paths, proto_comments
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


def _comments(tmp_path: Path, source: str) -> dict[str, str]:
    """The ``COMMENTS`` ``m3o gen`` writes for ``source``."""
    proto = tmp_path / "shop" / "shop.proto"
    proto.parent.mkdir()
    proto.write_text(source)
    return proto_comments(tmp_path, [proto])[Path("shop/shop.proto")]


def test_proto_comments_are_read_by_full_name(tmp_path: Path) -> None:
    source = """
syntax = "proto3";

// shop: a test package.
package shop;

// Shop sells.
service Shop {
  // Buy one thing,
  // wrapped over two lines.
  //
  // A second paragraph.
  rpc Buy(BuyRequest) returns (BuyResponse) {}
  rpc Undocumented(BuyRequest) returns (BuyResponse);
}

// BuyRequest names the thing.
message BuyRequest {
  // item to buy
  string item = 1; // trailing comments are ignored
  // prices per currency
  map<string, int64> prices = 2;

  // Kind of item.
  enum Kind {
    // unknown kind
    KIND_UNKNOWN = 0;
  }
  oneof choice {
    // by id
    string id = 3;
  }
  // Inner is nested.
  message Inner { string x = 1; }
  // after the nested message
  repeated Inner inners = 4;
}
// detached

message BuyResponse {}
"""
    assert _comments(tmp_path, source) == {
        "shop.Shop": "Shop sells.",
        "shop.Shop.Buy": "Buy one thing, wrapped over two lines.\n\nA second paragraph.",
        "shop.BuyRequest": "BuyRequest names the thing.",
        "shop.BuyRequest.item": "item to buy",
        "shop.BuyRequest.prices": "prices per currency",
        "shop.BuyRequest.Kind": "Kind of item.",
        "shop.BuyRequest.Kind.KIND_UNKNOWN": "unknown kind",
        "shop.BuyRequest.id": "by id",
        "shop.BuyRequest.Inner": "Inner is nested.",
        "shop.BuyRequest.inners": "after the nested message",
    }


def test_required_marker_is_read_from_the_field_comment(tmp_path: Path) -> None:
    comments = _comments(
        tmp_path,
        """
syntax = "proto3";
package shop;
message Buy {
  // Required. item to buy
  string item = 1;
  // note, Required or not
  string note = 2;
}
""",
    )
    assert comments["shop.Buy.item"].startswith("Required.")
    assert comments["shop.Buy.note"] == "note, Required or not"


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
