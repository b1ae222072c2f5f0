"""Time-ordered identifiers: UUID version 7 as 32 hex digits, sorting by when they were made."""

from __future__ import annotations

import os
import random
import time
import uuid

import pytest

from m3o.runtime.store.ids import time_ordered_id


def test_an_id_is_a_version_7_uuid_in_hex_holding_the_time_it_was_made() -> None:
    before = time.time_ns() // 1_000_000
    made = time_ordered_id()
    after = time.time_ns() // 1_000_000
    parsed = uuid.UUID(made)
    assert made == parsed.hex and len(made) == 32
    assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
    assert before <= int(made[:12], 16) <= after


def test_ids_made_in_later_milliseconds_sort_after_earlier_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1_796_000_000_000_000_000]
    monkeypatch.setattr(time, "time_ns", lambda: now[0])
    made = []
    for _ in range(50):
        made.append(time_ordered_id())
        now[0] += 1_000_000  # one millisecond
    assert made == sorted(made)
    assert len(set(made)) == len(made)


def test_ids_of_one_millisecond_differ_in_their_random_bits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(time, "time_ns", lambda: 1_796_000_000_000_000_000)
    made = {time_ordered_id() for _ in range(10_000)}
    assert len(made) == 10_000
    assert len({one[:12] for one in made}) == 1


def test_seeding_pythons_shared_generator_does_not_repeat_ids() -> None:
    random.seed(7)
    first = [time_ordered_id()[12:] for _ in range(5)]
    random.seed(7)
    again = [time_ordered_id()[12:] for _ in range(5)]
    assert not set(first) & set(again)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_makes_ids_of_its_own() -> None:
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # the child: its next ids, to the parent
        os.close(reader)
        os.write(writer, "".join(time_ordered_id()[12:] for _ in range(5)).encode())
        os._exit(0)
    os.close(writer)
    parent = [time_ordered_id()[12:] for _ in range(5)]
    with os.fdopen(reader, "rb") as pipe:
        text = pipe.read().decode()
    os.waitpid(child, 0)
    children = [text[i : i + 20] for i in range(0, len(text), 20)]
    assert len(children) == 5
    assert not set(children) & set(parent)
