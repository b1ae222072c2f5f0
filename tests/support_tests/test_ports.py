"""The suite's free ports: no two test processes of a run hand out the same one."""

from __future__ import annotations

import socket

import pytest

from support import ports
from support.ports import BLOCK, FIRST_PORT, free_port, worker_block

EPHEMERAL_FIRST = 32_768


def test_the_workers_of_a_run_have_blocks_apart_below_the_ephemeral_range() -> None:
    run = "3f2c1a"
    blocks = [set(worker_block(f"gw{i}", run)) for i in range(4)]
    for i, block in enumerate(blocks):
        assert len(block) == BLOCK
        assert min(block) >= FIRST_PORT
        assert max(block) < EPHEMERAL_FIRST
        for other in blocks[i + 1 :]:
            assert not block & other


def test_runs_side_by_side_mostly_start_elsewhere() -> None:
    starts = {worker_block("gw0", f"run-{n}").start for n in range(40)}
    assert len(starts) > 5


def test_a_worker_hands_out_each_port_of_its_block_once_before_reusing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw7")
    monkeypatch.setenv("PYTEST_XDIST_TESTRUNUID", "a-run")
    monkeypatch.setattr(ports, "_next", {})
    given = [free_port() for _ in range(50)]
    assert len(set(given)) == 50
    assert set(given) <= set(worker_block("gw7", "a-run"))


def test_a_port_a_server_listens_on_is_passed_over(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw5")
    monkeypatch.setenv("PYTEST_XDIST_TESTRUNUID", "another-run")
    block = worker_block("gw5", "another-run")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", block.start))
        listener.listen()
        monkeypatch.setattr(ports, "_next", {})
        assert free_port() == block.start + 1
