"""One cell in a fresh worker process: :func:`run_cell` starts ``python -m harness.complexity.worker`` and turns its
fate (a result, an out-of-memory kill, a timeout, a crash) into a status; :func:`worker_main` is that process."""
from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..atomic import write_json_atomic
from methods.errors import one_line as _one_line

from .config import REPO_ROOT
from .measure import Cell, is_oom, measure_cell


def worker_main(argv: Sequence[str] | None = None) -> int:
    """``python -m harness.complexity.worker --cell JSON --result PATH``: measure one cell, write its result JSON."""
    parser = argparse.ArgumentParser(description="Complexity-study worker: measures one cell (internal).")
    parser.add_argument("--cell", required=True, help="the Cell as JSON")
    parser.add_argument("--result", required=True, type=Path, help="where to write the result JSON")
    args = parser.parse_args(argv)
    cell = Cell(**json.loads(args.cell))
    try:
        result = measure_cell(cell)
    except Exception as exc:  # classify, then let the frames (and their tensors) go before writing
        if is_oom(exc):
            result = {"status": "oom", "note": _one_line(exc)[:300]}
        else:
            result = {"status": f"error: {type(exc).__name__}: {_one_line(exc)[:300]}"}
    gc.collect()
    write_json_atomic(args.result, result)
    return 0


def run_cell(cell: Cell, timeout: float | None = None) -> dict[str, Any]:
    """Run ``cell`` in a fresh ``python -m harness.complexity.worker`` process; returns its result columns plus
    ``cell_seconds``. Never raises for the cell's own failures: they become a status (see the module docstring)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    if cell.threads:  # size the OpenMP pool before torch starts (torch.set_num_threads follows in the worker)
        env["OMP_NUM_THREADS"] = str(cell.threads)
    with tempfile.TemporaryDirectory(prefix="complexity-cell-") as tmp:
        result_path = Path(tmp) / "result.json"
        command = [sys.executable, "-m", "harness.complexity.worker", "--cell", json.dumps(asdict(cell)),
                   "--result", str(result_path)]
        start = time.perf_counter()
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO_ROOT)
        except subprocess.TimeoutExpired:
            return {"status": "timeout", "note": f"worker ran past max_seconds={timeout:g} s",
                    "cell_seconds": time.perf_counter() - start}
        seconds = time.perf_counter() - start
        if result_path.exists():
            return {**json.loads(result_path.read_text()), "cell_seconds": seconds}
    last = _one_line((done.stderr.strip().splitlines() or ["no output"])[-1])[:300]
    if done.returncode < 0:
        number = -done.returncode
        name = signal.Signals(number).name if number in signal.valid_signals() else f"signal {number}"
        if number == signal.SIGKILL or cell.max_memory_mib is not None:
            return {"status": "oom", "note": f"worker killed by {name} ({last})", "cell_seconds": seconds}
        return {"status": f"error: worker killed by {name}: {last}", "cell_seconds": seconds}
    if is_oom(RuntimeError(done.stderr)):
        return {"status": "oom", "note": last, "cell_seconds": seconds}
    return {"status": f"error: worker exit code {done.returncode}: {last}", "cell_seconds": seconds}


if __name__ == "__main__":
    raise SystemExit(worker_main())
