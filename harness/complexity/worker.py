"""Cells in worker processes: :class:`CellWorker` keeps one ``python -m harness.complexity.worker`` process and sends
it cells one after another, turning each cell's fate (a result, an out-of-memory kill, a timeout, a crash) into a
status; :func:`run_cell` measures one cell in a fresh worker; :func:`worker_main` is the worker process.

A worker reads one JSON request per line on stdin (``{"cell": {...}, "result": PATH}``), measures the cell with
:func:`~harness.complexity.measure.measure_cell` and writes the result JSON atomically to PATH; end of input ends it.
A worker that dies (killed for memory, crashed) is replaced by a fresh one for the next cell.
"""
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
from typing import IO, Any

from ..atomic import write_json_atomic
from methods.errors import one_line as _one_line

from .config import REPO_ROOT
from .measure import Cell, is_oom, measure_cell

_POLL_S = 0.02


def _measure(cell: Cell) -> dict[str, Any]:
    try:
        result = measure_cell(cell)
    except Exception as exc:  # classify, then let the frames (and their tensors) go before the next cell
        if is_oom(exc):
            result = {"status": "oom", "note": _one_line(exc)[:300]}
        else:
            result = {"status": f"error: {type(exc).__name__}: {_one_line(exc)[:300]}"}
    gc.collect()
    return result


def worker_main(argv: Sequence[str] | None = None) -> int:
    """``python -m harness.complexity.worker``: measure the cells requested on stdin (see the module docstring)."""
    argparse.ArgumentParser(description="Complexity-study worker: measures the cells sent on stdin (internal)."
                            ).parse_args(argv)
    for line in sys.stdin:
        if line.strip():
            request = json.loads(line)
            write_json_atomic(Path(request["result"]), _measure(Cell(**request["cell"])))
    return 0


class CellWorker:
    """One worker process, reused for the cells sent to :meth:`run` (started on the first; restarted after one
    died). ``threads`` sizes the worker's OpenMP pool before torch starts. Use as a context manager."""

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads
        self._process: subprocess.Popen | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="complexity-worker-")
        self._stderr: IO[str] | None = None
        self._requests = 0

    def __enter__(self) -> CellWorker:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    def _start(self) -> None:
        env = {**os.environ,
               "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
        if self.threads:
            env["OMP_NUM_THREADS"] = str(self.threads)
        self._stderr = open(Path(self._tmp.name) / f"stderr-{self._requests}.txt", "w+")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "harness.complexity.worker"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
            stderr=self._stderr, text=True, env=env, cwd=REPO_ROOT)

    def _stop(self, kill: bool) -> None:
        process, self._process = self._process, None
        if process is not None:
            if kill:
                process.kill()
            else:
                try:
                    process.stdin.close()
                    process.wait(timeout=30)
                except (OSError, subprocess.TimeoutExpired):
                    process.kill()
            process.wait()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def close(self) -> None:
        """End the worker (it finishes nothing: cells are only sent by :meth:`run`, which waits for them)."""
        self._stop(kill=False)
        self._tmp.cleanup()

    def run(self, cell: Cell, timeout: float | None = None) -> dict[str, Any]:
        """Measure ``cell`` in the worker; returns its result columns plus ``cell_seconds`` (a fresh worker's start
        included). ``timeout``: seconds of wall clock for this cell. Never raises for the cell's own failures."""
        start = time.perf_counter()
        if self._process is None or self._process.poll() is not None:
            self._stop(kill=True)
            self._start()
        self._requests += 1
        result_path = Path(self._tmp.name) / f"result-{self._requests}.json"
        try:
            self._process.stdin.write(json.dumps({"cell": asdict(cell), "result": str(result_path)}) + "\n")
            self._process.stdin.flush()
        except OSError:  # the worker died between two cells: the wait below classifies how
            pass
        while not result_path.exists():
            if self._process.poll() is not None:
                return {**self._died(cell), "cell_seconds": time.perf_counter() - start}
            if timeout is not None and time.perf_counter() - start > timeout:
                self._stop(kill=True)
                return {"status": "timeout", "note": f"worker ran past max_seconds={timeout:g} s",
                        "cell_seconds": time.perf_counter() - start}
            time.sleep(_POLL_S)
        return {**json.loads(result_path.read_text()), "cell_seconds": time.perf_counter() - start}

    def _died(self, cell: Cell) -> dict[str, Any]:
        code = self._process.returncode
        self._stderr.seek(0)
        stderr = self._stderr.read()
        self._stop(kill=True)
        last = _one_line((stderr.strip().splitlines() or ["no output"])[-1])[:300]
        if code < 0:
            number = -code
            name = signal.Signals(number).name if number in signal.valid_signals() else f"signal {number}"
            if number == signal.SIGKILL or cell.max_memory_mib is not None:
                return {"status": "oom", "note": f"worker killed by {name} ({last})"}
            return {"status": f"error: worker killed by {name}: {last}"}
        if is_oom(RuntimeError(stderr)):
            return {"status": "oom", "note": last}
        return {"status": f"error: worker exit code {code}: {last}"}


def run_cell(cell: Cell, timeout: float | None = None) -> dict[str, Any]:
    """Measure ``cell`` in a fresh worker process (see :class:`CellWorker`)."""
    with CellWorker(cell.threads) as worker:
        return worker.run(cell, timeout)


if __name__ == "__main__":
    raise SystemExit(worker_main())
