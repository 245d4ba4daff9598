"""Run a bench's training jobs as subprocesses, a few at a time with one thread each (shared by the
bench scripts that launch many ``r1zero train`` runs)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


def run_jobs(
    todo: list[tuple[str, int]], argv_of: Callable[[str, int], list[str]], logs: Path, parallel: int
) -> None:
    """Run every ``(name, seed)`` job, ``parallel`` at a time; each logs to ``logs/<name>-s<seed>.log``."""
    todo = list(todo)
    running: dict[tuple[str, int], subprocess.Popen] = {}
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    while todo or running:
        while todo and len(running) < parallel:
            job = todo.pop(0)
            log = (logs / f"{job[0]}-s{job[1]}.log").open("w")
            running[job] = subprocess.Popen(argv_of(*job), stdout=log, stderr=subprocess.STDOUT, env=env)
            print(f"started {job[0]} seed {job[1]}", flush=True)
        time.sleep(2)
        for job, proc in list(running.items()):
            if proc.poll() is not None:
                del running[job]
                state = "done" if proc.returncode == 0 else f"FAILED (exit {proc.returncode})"
                print(f"{job[0]} seed {job[1]}: {state}", flush=True)
