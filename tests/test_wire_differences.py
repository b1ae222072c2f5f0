"""The README's table of field differences from the reference's RPC messages is the truth:
computed here from the reference's fields (``data/reference_rpc_fields.json``) and our
generated descriptors, row for row.

A row is a field the reference declares that we do not have, or have with another number
or type; a field only we have that takes a number the reference used; or a whole message
of the reference that has no counterpart here (``message``). Fields only we have, on
numbers the reference never used, are not differences: a reference client never sends
them and ignores them in answers.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
from pathlib import Path

from google.protobuf import descriptor_pool
from google.protobuf.descriptor import Descriptor, FieldDescriptor

import m3o.services

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "tests" / "data" / "reference_rpc_fields.json"
README = ROOT / "README.md"
SECTION = "## Differences from M3O on the wire"
_ROW = re.compile(r"^\| `([^`]+)` \| ([^|]+) \| ([^|]+) \|")
_SCALARS = {
    value: name[len("TYPE_") :].lower()
    for name, value in vars(FieldDescriptor).items()
    if name.startswith("TYPE_") and isinstance(value, int)
}

Row = tuple[str, str, str]


def _type(field: FieldDescriptor) -> str:
    """The field's type in the data file's notation."""
    target = field.message_type
    if target is not None and target.GetOptions().map_entry:
        key, value = target.fields_by_name["key"], target.fields_by_name["value"]
        return f"map<{_type(key)}, {_type(value)}>"
    if target is not None:
        base = target.name
    elif field.enum_type is not None:
        base = field.enum_type.name
    else:
        base = _SCALARS[field.type]
    return f"repeated {base}" if field.is_repeated else base


def _ours(name: str) -> Descriptor | None:
    try:
        return descriptor_pool.Default().FindMessageTypeByName(name)
    except KeyError:
        return None


def _computed() -> set[Row]:
    for module in pkgutil.walk_packages(m3o.services.__path__, "m3o.services."):
        if module.name.endswith("_pb2"):
            importlib.import_module(module.name)
    reference: dict[str, dict[str, list[int | str]]] = json.loads(REFERENCE.read_text())["messages"]
    rows: set[Row] = set()
    for name, fields in reference.items():
        ours = _ours(name)
        if ours is None:
            rows.add((name, "message", "—"))
            continue
        numbers = {int(number) for number, _ in fields.values()}
        for field_name, (number, kind) in fields.items():
            here = ours.fields_by_name.get(field_name)
            theirs = f"{number} {kind}"
            if here is None:
                rows.add((f"{name}.{field_name}", theirs, "—"))
            elif (here.number, _type(here)) != (number, kind):
                rows.add((f"{name}.{field_name}", theirs, f"{here.number} {_type(here)}"))
        for here in ours.fields:
            if here.name not in fields and here.number in numbers:
                rows.add((f"{name}.{here.name}", "—", f"{here.number} {_type(here)}"))
    return rows


def _documented() -> set[Row]:
    text = README.read_text()
    section = text[text.index(SECTION) :]
    section = section[: section.index("\n## ", len(SECTION))]
    rows = set()
    for line in section.splitlines():
        found = _ROW.match(line)
        if found:
            name, theirs, here = (part.strip() for part in found.groups())
            rows.add((name, theirs, here))
    return rows


def test_the_readme_lists_every_field_difference_from_the_reference_and_no_other() -> None:
    computed, documented = _computed(), _documented()

    assert computed - documented == set(), "differences the README does not list"
    assert documented - computed == set(), "README rows that are no longer true"


def test_the_reference_data_covers_the_messages_a_reference_client_sends() -> None:
    reference = json.loads(REFERENCE.read_text())["messages"]

    for name in ("customers.CreateRequest", "balance.IncrementRequest", "emails.SendRequest"):
        assert reference[name], name
    assert reference["balance.IncrementRequest"]["idempotency_key"] == [3, "string"]
