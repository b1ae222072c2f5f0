"""The comments ``m3o gen`` wrote beside the generated code are found by ``.proto`` file name."""

from __future__ import annotations

from m3o.runtime.rpc.proto_comments import generated_comments


def test_the_comments_of_a_generated_proto_are_found_by_its_file_name() -> None:
    comments = generated_comments("m3o/services/helloworld/proto/helloworld.proto")
    assert comments["helloworld.Helloworld.Call"] == "Call returns one greeting."
    assert comments["helloworld.CallRequest.name"] == "name of the person to greet"


def test_files_m3o_gen_did_not_write_have_no_comments() -> None:
    assert generated_comments("lab/kinds.proto") == {}
    assert generated_comments("google/protobuf/struct.proto") == {}
    assert generated_comments("m3o/services/nothing/proto/nothing.proto") == {}
    assert generated_comments("m3o/services/../x.proto") == {}
    assert generated_comments("m3o/services/helloworld/proto/helloworld") == {}
