"""Reading an export of M3O's keys for `m3o keys import`: both shapes, bad lines named."""

from __future__ import annotations

import orjson

from m3o.cli_keys_import import read_key_file

HASH = "ab" * 32


def test_the_documented_shape_and_m3os_store_records_are_read() -> None:
    lines = [
        orjson.dumps(
            {
                "id": "k1",
                "owner": "cust",
                "project": "proj",
                "scopes": ["*"],
                "description": "d",
                "created": "2022-04-15T05:20:00Z",
                "hash": HASH,
            }
        ).decode(),
        "",
        orjson.dumps(
            {
                "id": "k2",
                "apiKey": "cd" * 32,
                "userID": "cust",
                "scopes": ["helloworld"],
                "accID": "ignored",
                "namespace": "micro",
                "token": "ignored",
                "created": 1_640_000_000,
                "status": "blocked",
                "statusMessage": "unpaid",
                "lastSeen": "1660000000",
            }
        ).decode(),
    ]
    keys, problems = read_key_file(iter(lines))
    assert problems == []
    assert keys == [
        {
            "line": 1,
            "id": "k1",
            "hash": HASH,
            "project": "proj",
            "owner": "cust",
            "description": "d",
            "status": "",
            "status_message": "",
            "scopes": ["*"],
            "created": 1_650_000_000,
            "last_seen": 0,
        },
        {
            "line": 3,
            "id": "k2",
            "hash": "cd" * 32,
            "project": "cust",
            "owner": "",
            "description": "",
            "status": "blocked",
            "status_message": "unpaid",
            "scopes": ["helloworld"],
            "created": 1_640_000_000,
            "last_seen": 1_660_000_000,
        },
    ]


def test_every_bad_line_is_named() -> None:
    good = {"id": "k1", "project": "p", "scopes": ["*"], "hash": HASH}
    lines = [
        orjson.dumps(good).decode(),
        "not json",
        "[1, 2]",
        orjson.dumps({**good, "id": 7}).decode(),
        orjson.dumps({**good, "scopes": "*"}).decode(),
        orjson.dumps({**good, "created": "yesterday"}).decode(),
        orjson.dumps({**good, "created": "2022-04-15T05:20:00"}).decode(),  # no zone
        orjson.dumps({**good, "id": "k2"}).decode(),  # the same hash
        orjson.dumps({**good, "hash": "ef" * 32}).decode(),  # the same id
    ]
    keys, problems = read_key_file(iter(lines))
    assert [key["line"] for key in keys] == [1]
    assert problems == [
        "line 2: not JSON",
        "line 3: not a JSON object",
        "line 4: id must be a string",
        "line 5: scopes must be a list of strings",
        "line 6: created must be unix seconds or an ISO 8601 time with its time zone",
        "line 7: created must be unix seconds or an ISO 8601 time with its time zone",
        "line 8: the same hash as line 1",
        "line 9: the same id as line 1",
    ]
