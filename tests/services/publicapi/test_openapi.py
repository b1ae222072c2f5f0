"""The OpenAPI document generated from descriptors when a publisher gives none."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from m3o.gateway.openapi import openapi_document
from m3o.services.publicapi.descriptors import Descriptors
from m3o.services.publicapi.openapi import ERROR_SCHEMA, generate_openapi
from services.publicapi.support import HELLOWORLD, World, api, compile_proto


def document(raw: bytes, name: str = "helloworld", **info: str) -> dict[str, Any]:
    text = generate_openapi(
        name=name,
        display_name=info.get("display_name", ""),
        description=info.get("description", ""),
        descriptors=Descriptors(raw),
    )
    parsed: dict[str, Any] = orjson.loads(text)
    return parsed


def test_paths_are_the_v1_paths_with_request_and_response_schemas() -> None:
    doc = document(HELLOWORLD, display_name="Hello World", description="Greets.")
    assert doc["openapi"] == "3.1.0"
    assert doc["info"] == {"title": "Hello World", "version": "1.0.0", "description": "Greets."}
    assert doc["servers"] == [{"url": "/v1"}]
    assert doc["security"] == [{"bearer": []}]
    assert set(doc["paths"]) == {"/helloworld/Call", "/helloworld/Stream"}
    call = doc["paths"]["/helloworld/Call"]["post"]
    assert call["operationId"] == "Helloworld.Call"
    assert call["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/helloworld.CallRequest"
    }
    assert call["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/helloworld.CallResponse"
    }
    assert call["responses"]["default"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }
    assert "x-stream" not in call
    assert doc["paths"]["/helloworld/Stream"]["post"]["x-stream"] == "server"
    schemas = doc["components"]["schemas"]
    assert schemas["Error"] == ERROR_SCHEMA
    assert schemas["helloworld.StreamRequest"] == {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "messages": {"type": "integer", "format": "int64"},
        },
    }


def test_errors_are_described_as_in_the_platform_api_document() -> None:
    error = document(HELLOWORLD)["components"]["schemas"]["Error"]
    assert error == {
        "type": "object",
        "description": "Every error answer, with `code` equal to the HTTP status.",
        "properties": {
            "id": {"type": "string", "description": "Where it happened: `<service>.<method>`."},
            "code": {"type": "integer", "description": "The HTTP status code."},
            "detail": {"type": "string", "description": "What went wrong, for people."},
            "status": {"type": "string", "description": "The HTTP status text."},
        },
        "required": ["id", "code", "detail", "status"],
    }
    assert error == openapi_document([])["components"]["schemas"]["Error"]


def test_title_defaults_to_the_name() -> None:
    assert document(HELLOWORLD)["info"] == {"title": "helloworld", "version": "1.0.0"}


def test_other_services_get_their_own_path_segment_and_comments_become_descriptions(
    two_services: bytes,
) -> None:
    doc = document(two_services)
    assert set(doc["paths"]) == {
        "/helloworld/Call",
        "/helloworld/Chat",
        "/helloworld/Greeter/Greet",
    }
    call = doc["paths"]["/helloworld/Call"]["post"]
    assert call["description"] == "Call greets once."
    assert call["tags"] == ["Helloworld"]
    assert doc["paths"]["/helloworld/Greeter/Greet"]["post"]["tags"] == ["Greeter"]
    assert doc["paths"]["/helloworld/Chat"]["post"]["x-stream"] == "bidirectional"
    schemas = doc["components"]["schemas"]
    request = schemas["helloworld.CallRequest"]
    assert request["description"] == "CallRequest names who to greet."
    assert request["properties"] == {
        "name": {"type": "string", "description": "name of the person to greet"},
        "times": {"type": "integer", "format": "int64", "description": "times to greet"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "counts": {
            "type": "object",
            "additionalProperties": {"type": "integer", "format": "int32"},
        },
        "mood": {"$ref": "#/components/schemas/helloworld.Mood"},
        "avatar": {"type": "string", "contentEncoding": "base64"},
        "at": {"type": "string", "format": "date-time"},
        "options": {"$ref": "#/components/schemas/helloworld.CallRequest.Options"},
    }
    assert schemas["helloworld.Mood"] == {
        "type": "string",
        "enum": ["MOOD_UNKNOWN", "MOOD_HAPPY"],
        "description": "Mood of a greeting.",
    }
    assert schemas["helloworld.CallRequest.Options"]["description"] == "Nested options."
    # A message that refers to itself is one component referring to itself.
    assert schemas["helloworld.CallResponse"]["properties"]["reply"] == {
        "$ref": "#/components/schemas/helloworld.CallResponse"
    }


def test_without_a_service_named_like_the_api_every_path_names_its_service(
    two_services: bytes,
) -> None:
    doc = document(two_services, name="greetings")
    assert set(doc["paths"]) == {
        "/greetings/Helloworld/Call",
        "/greetings/Helloworld/Chat",
        "/greetings/Greeter/Greet",
    }


async def test_publish_stores_the_generated_document(world: World) -> None:
    published = await world.publish(api(display_name="Hello", description="Greets."))
    assert orjson.loads(published.open_api_json) == document(
        published.descriptors, display_name="Hello", description="Greets."
    )


def test_fields_whose_comment_starts_with_required_are_required(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    source = """
syntax = "proto3";
package weather;

service Weather {
  // Now is the weather now.
  rpc Now(NowRequest) returns (NowResponse) {}
}

// NowRequest names the place.
message NowRequest {
  // Required. city to look up
  string city = 1;
  // Required. units, at least one
  repeated string units = 2;
  // country, optional
  string country = 3;
  // Required. days ahead
  int32 days = 4;
}

// NowResponse is the weather.
message NowResponse {
  // summary in words
  string summary = 1;
}
"""
    raw = compile_proto(tmp_path_factory.mktemp("required"), source, "weather/api.proto")
    schemas = document(raw, name="weather")["components"]["schemas"]
    request = schemas["weather.NowRequest"]
    assert request["required"] == ["city", "units", "days"]
    assert request["properties"]["city"] == {
        "type": "string",
        "minLength": 1,
        "description": "Required. city to look up",
    }
    assert request["properties"]["units"]["minItems"] == 1
    assert "minLength" not in request["properties"]["country"]
    assert "required" not in schemas["weather.NowResponse"]
