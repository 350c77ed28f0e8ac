"""`bench/run_all.py --quick` runs end to end and prints its table with figures in it.

A smoke test of the benchmark itself: it asserts no timing target (the machine running the tests is shared and
noisy; `make bench` on a quiet machine is where figures mean something). PostgreSQL is left out (the bench would use
a database of its own next to TEST_DATABASE_URL; that belongs to a full run)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_bench_prints_a_table_of_figures() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("TEST_DATABASE_URL", "BENCH_DATABASE_URL")}
    # --max-minutes bounds the run itself (it then prints what it measured and exits 2); timeout is the backstop.
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run_all.py"), "--quick", "--max-minutes", "1"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=400, stdin=subprocess.DEVNULL,
    )
    out = result.stdout
    assert result.returncode in (0, 2), f"exit {result.returncode}\n{out[-3000:]}\n{result.stderr[-3000:]}"
    assert re.search(r"machine: \d+ cores", out), out[-2000:]
    assert "| section | measurement | result | target | verdict | load (1 min) |" in out, out[-2000:]
    rows = [line for line in out.splitlines() if line.startswith("| ") and not line.startswith("| section")]
    assert rows, out[-2000:]
    assert not [r for r in rows if "| ERROR |" in r], "\n".join(rows)
    for row in rows:
        result_cell = row.split(" | ")[2]
        assert re.search(r"\d", result_cell), row  # every row carries a figure
    if result.returncode == 0:  # a complete quick run covers every section but PostgreSQL
        sections = {row.split(" | ")[0].lstrip("| ") for row in rows}
        assert {"1 ingest (SQLite)", "2 delivery (SQLite)", "3 sync forwarder", "4 memory, start-up"} <= sections, rows
