"""The leading comments of a ``.proto`` file, by the full name of what they describe.

Generated ``*_pb2`` modules drop the descriptors' source info, so the comments (our API
documentation, STYLE rule 2) are read back from the ``.proto`` file that ships beside its
module. This reads the subset of protobuf syntax our protos use: ``package``, ``service``,
``rpc``, ``message``, ``enum``, ``oneof``, fields, map fields and enum values, each with
``//`` comment lines directly above it (a blank line detaches a comment).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from google.protobuf.message import Message

__all__ = ["comments_beside", "parse_comments"]

_PACKAGE = re.compile(r"^package\s+([\w.]+)\s*;")
_BLOCK = re.compile(r"^(message|enum|service|oneof)\s+(\w+)\s*\{")
_RPC = re.compile(r"^rpc\s+(\w+)\s*\(")
_FIELD = re.compile(
    r"^(?:(?:repeated|optional|required)\s+)?(?:map\s*<[^>]*>|[\w.]+)\s+(\w+)\s*=\s*\d+"
)
_ENUM_VALUE = re.compile(r"^(\w+)\s*=\s*-?\d+")


def _code(line: str) -> str:
    """The line without a trailing ``//`` comment (strings with ``//`` are not used)."""
    return line.split("//", 1)[0].strip()


def _declaration(code: str) -> tuple[str | None, str | None]:
    """What a line of code declares (its name, if any) and the scope name its first
    ``{`` opens (None for blocks that add no name: oneof, rpc options)."""
    block = _BLOCK.match(code)
    if block is not None:
        return block.group(2), None if block.group(1) == "oneof" else block.group(2)
    named = _RPC.match(code) or _FIELD.match(code) or _ENUM_VALUE.match(code)
    return (named.group(1) if named is not None else None), None


def _paragraphs(lines: list[str]) -> str:
    """Comment lines as text: wrapped lines joined, an empty ``//`` line separating
    paragraphs."""
    paragraphs = " ".join(line.strip() or "\n\n" for line in lines)
    return "\n\n".join(p.strip() for p in paragraphs.split("\n\n") if p.strip())


class _Parser:
    def __init__(self) -> None:
        self.found: dict[str, str] = {}
        self.package = ""
        self.scopes: list[str | None] = []
        self.pending: list[str] = []

    def code(self, code: str) -> None:
        package = _PACKAGE.match(code)
        if package is not None:
            self.package = package.group(1)
            return
        name, opened = _declaration(code)
        if name is not None and self.pending:
            parts = [self.package, *(s for s in self.scopes if s is not None), name]
            self.found[".".join(p for p in parts if p)] = _paragraphs(self.pending)
        for ch in code:
            if ch == "{":
                self.scopes.append(opened)
                opened = None
            elif ch == "}" and self.scopes:
                self.scopes.pop()


def parse_comments(text: str) -> dict[str, str]:
    """Map ``package.Message``, ``package.Message.field``, ``package.Service.Rpc``,
    ``package.Enum.VALUE`` to the comment lines written directly above each."""
    parser = _Parser()
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("//"):
            parser.pending.append(line[2:].removeprefix(" ").rstrip())
            continue
        code = _code(line)
        if code:
            parser.code(code)
        parser.pending = []
    return parser.found


def comments_beside(message_type: type[Message]) -> dict[str, str]:
    """The comments of the ``.proto`` file a generated message class comes from, or
    nothing when that file is not found beside its ``*_pb2`` module."""
    module = sys.modules.get(message_type.__module__)
    location = getattr(module, "__file__", None)
    if location is None:
        return {}
    source = Path(location).parent / Path(message_type.DESCRIPTOR.file.name).name
    try:
        return parse_comments(source.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return {}
