"""/openapi.json describes every unary platform endpoint from the protobuf descriptors."""

from __future__ import annotations

from typing import Any

from gateway.support import (
    HELLO,
    Kinds,
    Named,
    Recorder,
    Served,
    build_app,
    client_for,
    kinds_spec,
    named_spec,
)
from m3o.gateway.openapi import openapi_document
from m3o.gateway.routing import RouteTable, directory
from m3o.services.customers.proto.client import SPEC as CUSTOMERS


async def _document(*served: Served) -> dict[str, Any]:
    app, _ = build_app(*served)
    async with client_for(app) as http:
        response = await http.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    document: dict[str, Any] = response.json()
    return document


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema["$ref"]
    assert ref.startswith("#/components/schemas/")
    found: dict[str, Any] = document["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    return found


async def test_document_is_openapi_31_with_a_post_path_per_unary_method() -> None:
    document = await _document(Served(HELLO, Recorder()))
    assert document["openapi"] == "3.1.0"
    assert document["info"]["title"]
    assert list(document["paths"]) == ["/helloworld/Call"]  # Stream is not unary
    operation = document["paths"]["/helloworld/Call"]["post"]
    assert operation["operationId"] == "helloworld.Helloworld.Call"
    assert operation["summary"] == "Call returns one greeting."
    request = _resolve(document, operation["requestBody"]["content"]["application/json"]["schema"])
    assert request == {
        "type": "object",
        "description": "CallRequest names who to greet.",
        "properties": {"name": {"type": "string", "description": "name of the person to greet"}},
    }
    success = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert _resolve(document, success)["properties"]["message"]["type"] == "string"
    error = _resolve(
        document, operation["responses"]["default"]["content"]["application/json"]["schema"]
    )
    assert error["required"] == ["id", "code", "detail", "status"]


async def test_other_handlers_are_documented_at_their_three_part_path() -> None:
    document = await _document(
        Served(named_spec("shop", "Shop", "Create"), Named("Shop")),
        Served(named_spec("shop", "Orders", "Create"), Named("Orders")),
    )
    assert sorted(document["paths"]) == ["/shop/Create", "/shop/Orders/Create"]
    operation = document["paths"]["/shop/Orders/Create"]["post"]
    assert operation["operationId"] == "shop.Orders.Create"
    assert operation["tags"] == ["shop"]


async def test_schemas_follow_the_json_mapping() -> None:
    document = await _document(Served(kinds_spec(), Kinds()))
    kinds = document["components"]["schemas"]["lab.Kinds"]["properties"]
    assert kinds["big"] == {"type": "integer", "format": "int64"}
    assert kinds["ubig"] == {"type": "integer", "format": "int64", "minimum": 0}
    assert kinds["small"] == {"type": "integer", "format": "int32"}
    assert kinds["ratio"]["type"] == "number"
    assert kinds["flag"] == {"type": "boolean"}
    assert kinds["blob"] == {"type": "string", "contentEncoding": "base64"}
    assert kinds["tags"] == {"type": "array", "items": {"type": "string"}}
    assert kinds["counts"] == {
        "type": "object",
        "additionalProperties": {"type": "integer", "format": "int64"},
    }
    assert kinds["child"] == {"$ref": "#/components/schemas/lab.Kinds"}
    assert kinds["children"] == {
        "type": "array",
        "items": {"$ref": "#/components/schemas/lab.Kinds"},
    }
    assert kinds["at"] == {"type": "string", "format": "date-time"}
    assert _resolve(document, kinds["color"]) == {
        "type": "string",
        "enum": ["COLOR_UNKNOWN", "RED"],
    }
    assert "lab.Kinds.CountsEntry" not in document["components"]["schemas"]


def test_every_ref_points_at_a_component() -> None:
    document = openapi_document(RouteTable(directory(CUSTOMERS, HELLO)).endpoints())
    schemas = document["components"]["schemas"]
    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)
    assert refs
    for ref in refs:
        assert ref.removeprefix("#/components/schemas/") in schemas
    customer = schemas["customers.Customer"]
    assert customer["description"] == "Customer is one customer record."
    assert customer["properties"]["created"]["type"] == "integer"
    assert customer["properties"]["meta"]["additionalProperties"] == {"type": "string"}
    assert document["paths"]["/customers/MarkVerified"]["post"]["summary"].startswith(
        "MarkVerified moves"
    )


def test_fields_the_handler_requires_are_required_and_not_empty() -> None:
    document = openapi_document(RouteTable(directory(CUSTOMERS)).endpoints())
    schemas = document["components"]["schemas"]
    create = schemas["customers.CreateRequest"]
    assert create["required"] == ["email"]
    assert create["properties"]["email"]["minLength"] == 1
    assert create["properties"]["email"]["description"].startswith("Required.")
    assert schemas["customers.UpdateRequest"]["required"] == ["customer"]
    assert "required" not in schemas["customers.LoginRequest"]  # email or refresh_token
    assert "required" not in schemas["customers.Customer"]
    for name, schema in schemas.items():
        assert "nullable" not in str(schema), name
