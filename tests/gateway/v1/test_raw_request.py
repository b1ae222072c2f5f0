"""An upstream handler that takes the raw HTTP request receives it whole (minus secrets)."""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from gateway.v1.support import KEY, Catalog, entry, gateway
from m3o.runtime.auth import CallContext
from m3o.runtime.counters import CounterStore
from m3o.runtime.rpc import MethodSpec, ServiceSpec
from m3o.runtime.rpc.jsonmap import message_to_dict


def _api_file() -> descriptor_pb2.FileDescriptorProto:
    f = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(name="go/api/api.proto", package="go.api")
    file.syntax = "proto3"
    pair = file.message_type.add(name="Pair")
    pair.field.add(name="key", number=1, type=f.TYPE_STRING, label=f.LABEL_OPTIONAL)
    pair.field.add(name="values", number=2, type=f.TYPE_STRING, label=f.LABEL_REPEATED)
    request = file.message_type.add(name="Request")
    for number, name in enumerate(["method", "path", "header", "get", "post", "body", "url"], 1):
        if name in ("header", "get", "post"):
            entry_type = request.nested_type.add(name=f"{name.title()}Entry")
            entry_type.options.map_entry = True
            entry_type.field.add(name="key", number=1, type=f.TYPE_STRING, label=f.LABEL_OPTIONAL)
            entry_type.field.add(
                name="value",
                number=2,
                type=f.TYPE_MESSAGE,
                label=f.LABEL_OPTIONAL,
                type_name=".go.api.Pair",
            )
            request.field.add(
                name=name,
                number=number,
                type=f.TYPE_MESSAGE,
                label=f.LABEL_REPEATED,
                type_name=f".go.api.Request.{name.title()}Entry",
            )
        else:
            request.field.add(name=name, number=number, type=f.TYPE_STRING, label=f.LABEL_OPTIONAL)
    response = file.message_type.add(name="Response")
    response.field.add(name="body", number=1, type=f.TYPE_STRING, label=f.LABEL_OPTIONAL)
    file.service.add(name="Raw").method.add(
        name="Handle", input_type=".go.api.Request", output_type=".go.api.Response"
    )
    return file


POOL = descriptor_pool.DescriptorPool()
POOL.AddSerializedFile(_api_file().SerializeToString())
REQUEST = message_factory.GetMessageClass(POOL.FindMessageTypeByName("go.api.Request"))
RESPONSE = message_factory.GetMessageClass(POOL.FindMessageTypeByName("go.api.Response"))
SPEC = ServiceSpec(
    service="raw",
    full_name="go.api.Raw",
    methods={"Handle": MethodSpec("Handle", "handle", REQUEST, RESPONSE)},
)


class Raw:
    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    async def handle(self, request: Any, ctx: CallContext) -> Any:
        self.seen.append(message_to_dict(request))
        return RESPONSE(body="ok")


async def test_raw_request_endpoint_receives_method_path_headers_query_body_and_url(
    counters: CounterStore,
) -> None:
    raw = Raw()
    gw = gateway(
        counters,
        catalog=Catalog(entry("raw", "local:raw", files=[_api_file()])),
        upstreams=[(SPEC, raw)],
    )
    async with gw.http() as http:
        response = await http.post(
            "/v1/raw/handle?a=1&a=2",
            content=b"<xml>not json</xml>",
            headers={"Authorization": f"Bearer {KEY}", "X-Custom": "yes", "Cookie": "c=1"},
        )
    assert response.status_code == 200
    assert response.json() == {"body": "ok"}
    [seen] = raw.seen
    assert seen["method"] == "POST"
    assert seen["path"] == "/v1/raw/handle"
    assert seen["body"] == "<xml>not json</xml>"
    assert seen["url"] == "http://gateway/v1/raw/handle?a=1&a=2"
    assert seen["get"] == {"a": {"key": "a", "values": ["1", "2"]}}
    assert seen["header"]["x-custom"] == {"key": "x-custom", "values": ["yes"]}
    assert "authorization" not in seen["header"]
    assert "cookie" not in seen["header"]
