"""What the public API's checks cost, counted in instructions: one gateway process under
callgrind, every check on and every check off.

``benchmarks/gateway.py`` measures calls per second, and on a small shared machine those
move by 10-15 % from one run to the next with nothing changed: too much to see a step of a
few percent. Instructions do not move with the machine's load. This benchmark sets up
exactly what ``gateway.py`` sets up (same upstream, same worker, same key, same published
API, ``--profile local`` or ``platform``), but runs the gateway worker under
``valgrind --tool=callgrind`` with counting off; for each case it counts only while wrk
calls the gateway, and prints the instructions the gateway process executed per call
(every thread: the loop, the SQLite writer, the consumers of the local profile), and
their ratio, the instruction-count counterpart of ``gateway.py``'s throughput ratio:

    checks off / checks on >= 0.80 (platform) or 0.70 (local)

The worker runs some 50 times slower under callgrind while the upstream, Redis and the
services run at full speed, so batches are smaller than at full speed: the counts suit
comparing two versions of the code, or the two cases, in the same conditions, not
predicting calls per second. ``--connections`` (default 8) keeps several calls in flight.

An idle process runs too (the consumers' polls, timers, WAL checkpoints): about 14 M
instructions a second on ``--profile local``, a fifth of a counted window. How many calls
fit in the window depends on how busy the machine is, so that share moved the figures per
call by up to 7 % between runs of the same code. The process is therefore first counted
idle for as long as a case, and each case is also printed without it (its instructions
less the idle rate times its window): those figures compare across runs.

    uv run python benchmarks/gateway_instructions.py [--profile local|platform]
        [--seconds 15] [--connections 8] [--by-object] [--postgres URL] [--redis URL]

``--by-object`` also prints each case's instructions a call by the object they ran in (the
interpreter, SQLite, protobuf, the event loop, ...).

Needs valgrind (``apt-get install valgrind``) and wrk.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import TypeVar

import gateway as bench

CASES = ("off", "on")
TARGET_RATIO = {"local": 0.70, "platform": 0.80}
READY_SECONDS = 900.0
"""Starting under callgrind takes minutes on a busy machine."""
WARMUP_SECONDS = 5
T = TypeVar("T")


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=["local", "platform"], default="local")
    parser.add_argument("--seconds", type=int, default=15, help="seconds of counted calls")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument(
        "--by-object",
        action="store_true",
        help="also print where each case's instructions ran, by shared object",
    )
    bench.add_server_options(parser)
    return parser.parse_args()


def instructions(dump: Path) -> int:
    """The instructions a callgrind dump counted."""
    counts = [
        int(line.split()[1])
        for line in dump.read_text(errors="replace").splitlines()
        if line.startswith(("summary:", "totals:"))  # a dump's summary may be 0, its totals not
    ]
    if not counts:
        raise SystemExit(f"{dump} holds no totals")
    return max(counts)


def by_object(dump: Path) -> dict[str, int]:
    """The instructions of a callgrind dump by the object they ran in (the interpreter,
    SQLite, protobuf, ...): each function's own cost, not what it called."""
    names: dict[str, str] = {}
    costs: dict[str, int] = {}
    current = "?"
    called = False  # the cost line after ``calls=`` is the call's, not the function's
    for line in dump.read_text(errors="replace").splitlines():
        if line.startswith(("ob=", "cob=")):  # "(id) name" names the id; "(id)" refers to it
            ref, _, name = line.partition("=")[2].partition(" ")
            if name:
                names[ref] = name
            if line.startswith("ob="):
                current = names.get(ref, ref)
        elif line.startswith("calls="):
            called = True
        elif line[:1].isdigit() or line[:1] in "+-*":
            if called:
                called = False
                continue
            parts = line.split()
            if len(parts) > 1:
                costs[current] = costs.get(current, 0) + int(parts[1])
    return {Path(name).name: cost for name, cost in costs.items()}


class Counter:
    """Turns callgrind's counting on and off in the worker, and reads each window."""

    def __init__(self, pid: int, out: Path) -> None:
        self._pid = str(pid)
        self._out = out

    def _control(self, *options: str) -> None:
        subprocess.run(["callgrind_control", *options, self._pid], check=True, capture_output=True)

    def _dumps(self) -> list[Path]:
        return sorted(self._out.parent.glob(f"{self._out.name}.*"))

    def _dump(self) -> Path:
        """Write the counts so far to a new file (counting starts again from zero)."""
        known = set(self._dumps())
        self._control("--dump")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            new = [dump for dump in self._dumps() if dump not in known]
            if new:
                time.sleep(1)  # written in one go; let it be closed
                return new[0]
            time.sleep(0.2)
        raise SystemExit("callgrind wrote no dump")

    def count(self, during: Callable[[], T]) -> tuple[int, float, T, Path]:
        """Instructions executed while ``during`` ran, for how many seconds they were
        counted, what it returned, and the dump."""
        self._dump()  # what came before is not counted
        self._control("--instr=on")
        started = time.monotonic()
        result = during()
        self._control("--instr=off")
        seconds = time.monotonic() - started
        dump = self._dump()
        return instructions(dump), seconds, result, dump


def main() -> None:
    args = arguments()
    for tool in ("valgrind", "callgrind_control", "wrk"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed (apt-get install valgrind wrk)")
    with ExitStack() as stack:
        tmp = Path(tempfile.mkdtemp(prefix="m3o-instructions-"))
        stack.callback(shutil.rmtree, tmp, ignore_errors=True)
        logs = tmp / "logs"
        logs.mkdir()
        out = tmp / "callgrind.out"
        bench.READY_SECONDS = READY_SECONDS
        bench.WORKER_PREFIX[:] = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={out}",
        ]
        procs = bench.Processes(logs)
        stack.callback(procs.stop)
        upstream, _ = bench.start_upstream(procs)
        gateway = bench.start_gateway(stack, procs, tmp, upstream, args)
        urls = bench.gateway_urls(gateway)
        script = bench.wrk_script(tmp, bench.publish_and_get_key(gateway, upstream))
        pid = gateway.process.popen.pid
        counter = Counter(pid, out)
        per_call: dict[str, float] = {}
        net: dict[str, float] = {}
        objects: dict[str, dict[str, float]] = {}
        idle, idle_seconds, _, _ = counter.count(lambda: time.sleep(args.seconds))
        idle_rate = idle / idle_seconds
        print(f"  idle (no calls): {idle_rate / 1e6:8,.1f} M instructions a second", flush=True)
        for case in CASES:

            def load(seconds: float, url: str = urls[case]) -> bench.Run:
                return bench.wrk(
                    url,
                    script,
                    connections=args.connections,
                    threads=1,
                    seconds=seconds,
                    pids={"gateway": pid},
                )

            load(WARMUP_SECONDS)
            counted, seconds, run, dump = counter.count(lambda: load(args.seconds))
            if run.failures or not run.requests:
                lines = gateway.process.log.read_text(errors="replace").splitlines()
                print(*[line for line in lines if "warning" in line or "error" in line][-20:])
                raise SystemExit(f"{case}: {run.failures} failed calls of {run.requests}")
            per_call[case] = counted / run.requests
            net[case] = (counted - idle_rate * seconds) / run.requests
            print(
                f"  every check {case:3}: {run.requests:6,} calls, "
                f"{per_call[case] / 1000:8,.0f} k instructions per call, "
                f"{net[case] / 1000:8,.0f} k without the idle process's",
                flush=True,
            )
            gateway.process.check()
            if args.by_object:
                objects[case] = {k: v / run.requests for k, v in by_object(dump).items()}
        ratio = per_call["off"] / per_call["on"]
        target = TARGET_RATIO[args.profile]
        verdict = "met" if ratio >= target else "MISSED"
        print(
            f"gateway instructions, profile {args.profile}, {args.connections} connections: "
            f"checks off / checks on {ratio:.2f} (target >= {target:.2f}): {verdict}; "
            f"the checks cost {(per_call['on'] - per_call['off']) / 1000:,.0f} k a call"
        )
        print(
            f"  without the idle process's: checks off / checks on {net['off'] / net['on']:.2f}; "
            f"the checks cost {(net['on'] - net['off']) / 1000:,.0f} k a call"
        )
        if objects:
            print_objects(objects)


def print_objects(objects: dict[str, dict[str, float]]) -> None:
    """Instructions a call by object, checks on and off, the largest first."""
    on, off = objects["on"], objects["off"]
    print("  instructions per call by object (k):      on      off   on - off")
    for name in sorted(on.keys() | off.keys(), key=lambda n: -on.get(n, 0.0))[:12]:
        a, b = on.get(name, 0.0) / 1000, off.get(name, 0.0) / 1000
        print(f"    {name[:36]:<36} {a:8,.0f} {b:8,.0f} {a - b:+10,.0f}")


if __name__ == "__main__":
    sys.exit(main())
