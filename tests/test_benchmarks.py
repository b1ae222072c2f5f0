"""What the benchmarks read from their tools: callgrind's dumps, by object."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

# Names are compressed: "(id) name" the first time an object is named (by ob= or cob=),
# "(id)" after. The cost line after calls= is what the call cost, not the caller itself.
DUMP = """\
version: 1
creator: callgrind
events: Ir
ob=(1) /usr/lib/libpython3.11.so.1.0
fl=(1) ceval.c
fn=(1) eval
10 100
cob=(2) /usr/lib/x86_64-linux-gnu/libsqlite3.so.0.8.6
cfn=(2) sqlite3_step
calls=1 20
11 500
+1 7
ob=(2)
fl=(2) sqlite3.c
fn=(2)
20 50
*  3
ob=(1)
fn=(1)
-5 40
totals: 200
"""


def test_a_dumps_instructions_are_counted_by_the_object_they_ran_in(tmp_path: Path) -> None:
    dump = tmp_path / "callgrind.out.1"
    dump.write_text(DUMP)
    code = (
        "import json, sys; from pathlib import Path; "
        "from gateway_instructions import by_object; "
        "print(json.dumps(by_object(Path(sys.argv[1]))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(dump)],
        cwd=BENCHMARKS,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert json.loads(done.stdout) == {"libpython3.11.so.1.0": 147, "libsqlite3.so.0.8.6": 53}
