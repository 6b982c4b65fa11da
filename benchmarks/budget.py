"""The budget phase: TrueWatch triggers on one API key whose budget the emulator enforces.

Each run holds N deferrable TrueWatch triggers on one key, split over P worker processes
(:mod:`benchmarks.budget_worker`, one asyncio loop each, like P triggerers); the default runs are one
process with N = 60 and three with 20 each. The emulator refuses what goes over TrueWatch's budget,
20 requests a minute per key (200 per workspace), in a sliding window; each process paces the key
at the package's default, 90% of that (18 a minute), and adapts to the rejections on its own.
Every remote task runs "running" for 6 to 10 minutes from its first answered poll (staggered over
the tasks), then "ok", so the key stays saturated while the rates converge.

**Time scale.** 20 a minute makes a real-time run take a quarter of an hour, so the run is sped up
``scale`` times (default 10): the emulator's window is 60 s ÷ scale with the same limits, the
connection's ``requests_per_minute`` is 18 × scale, the poll interval and the task durations are
divided by the scale, and each worker scales the throttle's own constants (``COOLDOWN`` ÷ scale,
``MIN_RATE`` and ``GROWTH`` × scale; see :func:`benchmarks.budget_worker.scale_pacing`). Every
figure is reported back in *service* units: per minute, or seconds, of the real service
(``--budget-scale 1`` runs in real time).

The figures and their tables: :mod:`benchmarks.budget_figures`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from airflow_provider_taskstatus.emulator.server import DEFAULT_TRUEWATCH_KEY
from benchmarks.budget_figures import (
    API,
    MINUTE,
    PER_KEY,
    PER_WORKSPACE,
    BudgetConfig,
    BudgetRun,
    analyse,
)
from benchmarks.budget_worker import WorkerSpec
from benchmarks.control import EmulatorClient
from benchmarks.kinds import KINDS


def durations(cfg: BudgetConfig) -> list[float]:
    """Each task's running time, service seconds: staggered evenly from the first to the last."""
    lo, hi = cfg.minutes
    n = cfg.triggers
    return [MINUTE * (lo + (hi - lo) * j / (n - 1 if n > 1 else 1)) for j in range(n)]


def assignment(cfg: BudgetConfig, processes: int) -> list[list[str]]:
    """The task ids of each process; task j goes to process j mod P, so each gets every duration."""
    ids: list[list[str]] = [[] for _ in range(processes)]
    for j in range(cfg.triggers):
        ids[j % processes].append(f"budget-{j}")
    return ids


def connection_env(port: int, scale: float, pacing: float) -> dict[str, str]:
    """The TrueWatch connection for the budget workers: the key paced at ``pacing`` × ``scale``.

    In real time (scale 1) the extra is left out: the package's default budget then applies.
    """
    conn: dict[str, Any] = {
        "conn_type": "truewatch",
        "host": f"https://127.0.0.1:{port}",
        "password": DEFAULT_TRUEWATCH_KEY,
    }
    if scale != 1:
        conn["extra"] = json.dumps({"requests_per_minute": pacing * scale})
    return {f"AIRFLOW_CONN_{KINDS[API].conn_id.upper()}": json.dumps(conn)}


class BudgetBench:
    """Runs the budget phase against the bench's emulator (budgets on for the phase only)."""

    def __init__(
        self, client: EmulatorClient, env: dict[str, str], port: int, tmp: Path, results: Path
    ) -> None:
        self.client = client
        self.env = env
        self.port = port
        self.tmp = tmp
        self.results = results

    def run(self, cfg: BudgetConfig, processes: int) -> tuple[BudgetRun, dict[str, Any]]:
        name = f"budget {processes} process{'es' if processes > 1 else ''}"
        slug = f"budget-{processes}p"
        started = time.monotonic()
        scale, kind = cfg.scale, KINDS[API]
        client = self.client
        client.reset()
        ids = assignment(cfg, processes)
        runs = durations(cfg)
        all_ids = [f"budget-{j}" for j in range(cfg.triggers)]
        client.set_scripts(
            API,
            {
                task_id: [{"status": "running", "seconds": run / scale}, {"status": "ok"}]
                for task_id, run in zip(all_ids, runs, strict=True)
            },
        )
        client.set_tasks(API, [kind.warm_id], [{"status": "ok"}])
        env = dict(self.env)
        env.update(connection_env(self.port, scale, cfg.pacing))
        ready = [self.tmp / f"{slug}-{p}.ready" for p in range(processes)]
        go_path = self.tmp / f"{slug}.go"
        for path in [*ready, go_path]:
            path.unlink(missing_ok=True)
        # The first poll may wait for all N triggers' turns at the budget, the last task runs the
        # longest, and its detection may wait for the turns of the triggers still waiting.
        timeout = (cfg.minutes[1] + 2 * cfg.triggers / (PER_KEY / 4) + 5) * MINUTE / scale
        workers: list[tuple[subprocess.Popen[bytes], Path, Any]] = []
        try:
            for p in range(processes):
                spec = WorkerSpec(
                    process=p,
                    task_ids=ids[p],
                    interval=cfg.interval / scale,
                    scale=scale,
                    ready_path=str(ready[p]),
                    go_path=str(go_path),
                    timeout=timeout,
                )
                spec_path, out_path = self.tmp / f"{slug}-{p}.spec.json", self.tmp / f"{slug}-{p}.json"
                spec_path.write_text(json.dumps(asdict(spec)))
                log = (self.results / f"{slug}-{p}.log").open("w")
                proc = subprocess.Popen(
                    [sys.executable, "-m", "benchmarks.budget_worker", str(spec_path), str(out_path)],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
                workers.append((proc, out_path, log))
            deadline = time.monotonic() + 300
            while not all(path.exists() for path in ready):
                if time.monotonic() > deadline or any(w[0].poll() is not None for w in workers):
                    raise RuntimeError(
                        f"{name}: a worker did not get ready (see {self.results}/{slug}-*.log)"
                    )
                time.sleep(0.05)
            client.set_limits(
                {
                    "truewatch_per_key": PER_KEY,
                    "truewatch_per_workspace": PER_WORKSPACE,
                    "window": MINUTE / scale,
                }
            )
            go = time.time() + 0.5
            staged = go_path.with_suffix(".staged")
            staged.write_text(repr(go))
            staged.replace(go_path)  # whole: a worker never reads half of it
            for proc, _, _ in workers:
                if proc.wait(timeout=timeout + 120) != 0:
                    raise RuntimeError(f"{name}: a worker failed (see {self.results}/{slug}-*.log)")
        finally:
            for proc, _, log in workers:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                log.close()
        outputs = [json.loads(out.read_text()) for _, out, _ in workers]
        requests = [r for r in client.requests(API) if r["task_id"] in set(all_ids) and r["time"] >= go]
        changes = {task_id: client.changes(API, task_id) for task_id in all_ids}
        client.reset()  # lifts the budgets
        result = analyse(name, cfg, processes, go, requests, changes, runs, all_ids, outputs)
        result.wall_seconds = time.monotonic() - started
        raw = {"go": go, "requests": requests, "changes": changes, "workers": outputs}
        return result, raw
