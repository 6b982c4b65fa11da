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

Figures per run (service units):

* offered (accepted + rejected) and accepted requests a minute on the key: the mean over the
  saturated span (from the start to the first task's status change, while all N wait), and the
  most in any sliding minute of the run;
* rejected requests: how many, and their share of all requests;
* convergence: the start of the first whole minute (counted from the start) in which fewer than 5%
  of the requests were rejected; then the rejected share over the rest of the run, and its worst
  minute;
* tasks done: triggers whose event is success / N;
* detection delay: from the moment the task's status changed on the emulator (its first answered
  poll + its running time: from then on it answers ok) to the trigger's event, p50 / p95 / max;
* each process's rate (requests a minute its throttle paces at) at the end, its accepted and
  rejected requests, and how often it cut its rate.
"""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from airflow_provider_taskstatus.emulator.server import DEFAULT_TRUEWATCH_KEY
from airflow_provider_taskstatus.models.truewatch import TrueWatchApi
from airflow_provider_taskstatus.transport.throttle import budget as paced_budget
from benchmarks.budget_worker import WorkerSpec
from benchmarks.control import EmulatorClient
from benchmarks.kinds import KINDS
from benchmarks.measure import percentile

#: TrueWatch's documented budgets, per minute: what the emulator enforces.
PER_KEY = 20
PER_WORKSPACE = 200
MINUTE = 60.0
#: The issue's figure: rejected requests under 5% of all once the rates have converged.
REJECTED_GOAL = 0.05
API = "truewatch"


@dataclass(frozen=True)
class BudgetConfig:
    #: One run per entry: how many processes share the key.
    processes: tuple[int, ...] = (1, 3)
    #: Triggers per run, over all its processes.
    triggers: int = 60
    scale: float = 10.0
    #: The running time of the first and the last task, service minutes (the others in between).
    minutes: tuple[float, float] = (6.0, 10.0)
    #: The triggers' poll interval, service seconds (the TrueWatch sensor's default).
    interval: float = 10.0

    @property
    def pacing(self) -> float:
        """What one process paces the key at, service requests a minute (the package's default)."""
        rate = paced_budget(TrueWatchApi.requests_per_minute, None)
        assert rate is not None
        return rate


@dataclass
class Process:
    index: int
    triggers: int
    accepted: int
    rejected: int
    #: Rate decreases (the throttle's cuts), and the rates it paced at, service requests a minute.
    cuts: int
    start_rate: float
    min_rate: float
    final_rate: float


@dataclass
class BudgetRun:
    name: str
    processes: int
    triggers: int
    scale: float
    budget: int
    pacing: float
    #: Service seconds from the start to the last event (or the give-up).
    span: float
    saturated_span: float
    offered_mean: float
    offered_max: int
    accepted_mean: float
    accepted_max: int
    accepted_total: int
    rejected: int
    requests: int
    #: Service seconds from the start to the last rejected request (None: none was).
    last_rejection: float | None
    #: Service minutes; None if no minute had fewer than 5% rejected.
    converged_after: float | None
    rejected_after: float | None
    worst_minute_after: float | None
    minutes_over_goal_after: int
    done: int
    detect_p50: float | None
    detect_p95: float | None
    detect_max: float | None
    #: From the first ok answer to the event: the trigger's own share of the delay.
    event_after_answer_max: float | None
    per_process: list[Process]
    #: Per service minute: accepted, rejected, each process's rate at the minute's end.
    timeline: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    wall_seconds: float = 0.0

    @property
    def rejected_share(self) -> float:
        return self.rejected / self.requests if self.requests else 0.0


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


def _sliding_max(times: Sequence[float], width: float) -> int:
    """The most of ``times`` (sorted) inside any window ``[t, t + width)``."""
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - width:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def _rate_at(trace: Sequence[Sequence[Any]], t: float, start: float) -> float:
    """The rate a process paced at, real requests a minute, just after epoch ``t``."""
    rate = start
    for when, _, after in trace:
        if when > t:
            break
        rate = after
    return rate


def analyse(
    name: str,
    cfg: BudgetConfig,
    processes: int,
    go: float,
    requests: list[dict[str, Any]],
    changes: dict[str, list[dict[str, Any]]],
    runs: list[float],
    ids: list[str],
    outputs: list[dict[str, Any]],
) -> BudgetRun:
    scale = cfg.scale

    def service(epoch: float) -> float:
        return (epoch - go) * scale

    events = {task_id: ev for out in outputs for task_id, ev in out["events"].items()}
    failures = [f"{task_id}: {ev[2]}" for task_id, ev in events.items() if not ev[1]]
    failures += [f"{task_id}: no event" for task_id in ids if task_id not in events]
    end = max([service(ev[0]) for ev in events.values()] + [service(r["time"]) for r in requests] + [0.0])

    # The moment each task's status changed: its running step's first answer + its running time.
    due: dict[str, float] = {}
    answered: dict[str, float] = {}
    for task_id, run in zip(ids, runs, strict=True):
        steps = changes.get(task_id) or []
        first = next((c for c in steps if c["step"] == 0), None)
        if first is not None:
            due[task_id] = service(first["time"]) + run
        ok = next((c for c in steps if c["status"] == "ok"), None)
        if ok is not None:
            answered[task_id] = service(ok["time"])
    delays = sorted(service(events[t][0]) - due[t] for t in ids if t in due and t in events and events[t][1])
    event_after_answer = [service(events[t][0]) - answered[t] for t in ids if t in answered and t in events]

    times = sorted(service(r["time"]) for r in requests)
    accepted_times = sorted(service(r["time"]) for r in requests if r.get("limited") is None)
    rejected = len(times) - len(accepted_times)
    saturated = min(due.values(), default=end)

    minutes = max(1, math.ceil(end / MINUTE))
    bins = [[0, 0] for _ in range(minutes)]
    for r in requests:
        k = min(minutes - 1, int(service(r["time"]) // MINUTE))
        bins[k][0 if r.get("limited") is None else 1] += 1
    converged = next(
        (k for k, (a, j) in enumerate(bins) if a + j > 0 and j / (a + j) < REJECTED_GOAL),
        None,
    )
    rejected_after = worst_after = None
    over_after = 0
    if converged is not None:
        after = bins[converged:]
        total_after = sum(a + j for a, j in after)
        rejected_after = sum(j for _, j in after) / total_after if total_after else 0.0
        shares = [j / (a + j) for a, j in after if a + j]
        worst_after = max(shares, default=0.0)
        over_after = sum(1 for s in shares if s >= REJECTED_GOAL)

    per_process = []
    for out in sorted(outputs, key=lambda o: o["process"]):
        trace = out["trace"]
        rates = [out["start_rate"]] + [entry[2] for entry in trace]
        cuts = sum(1 for before, after in itertools.pairwise(rates) if after < before)
        per_process.append(
            Process(
                index=out["process"],
                triggers=len(out["events"]) + out["unfinished"],
                accepted=sum(1 for e in trace if e[1] == "a"),
                rejected=sum(1 for e in trace if e[1] == "l"),
                cuts=cuts,
                start_rate=out["start_rate"] / scale,
                min_rate=min(rates) / scale,
                final_rate=out["final_rate"] / scale,
            )
        )
    timeline = []
    for k, (a, j) in enumerate(bins):
        at = go + (k + 1) * MINUTE / scale
        rates = [_rate_at(out["trace"], at, out["start_rate"]) / scale for out in outputs]
        timeline.append({"minute": k, "accepted": a, "rejected": j, "rates": [round(r, 2) for r in rates]})
    span_min = saturated / MINUTE if saturated > 0 else math.nan
    return BudgetRun(
        name=name,
        processes=processes,
        triggers=cfg.triggers,
        scale=scale,
        budget=PER_KEY,
        pacing=cfg.pacing,
        span=end,
        saturated_span=saturated,
        offered_mean=sum(1 for t in times if t < saturated) / span_min,
        offered_max=_sliding_max(times, MINUTE),
        accepted_mean=sum(1 for t in accepted_times if t < saturated) / span_min,
        accepted_max=_sliding_max(accepted_times, MINUTE),
        accepted_total=len(accepted_times),
        rejected=rejected,
        requests=len(times),
        last_rejection=max(
            (service(r["time"]) for r in requests if r.get("limited") is not None), default=None
        ),
        converged_after=None if converged is None else float(converged),
        rejected_after=rejected_after,
        worst_minute_after=worst_after,
        minutes_over_goal_after=over_after,
        done=sum(1 for t in ids if t in events and events[t][1]),
        detect_p50=percentile(delays, 0.5),
        detect_p95=percentile(delays, 0.95),
        detect_max=max(delays, default=None),
        event_after_answer_max=max(event_after_answer, default=None),
        per_process=per_process,
        timeline=timeline,
        failures=failures[:5],
    )


def _f(value: float | None, digits: int = 1, unit: str = "") -> str:
    return "—" if value is None or math.isnan(value) else f"{value:.{digits}f}{unit}"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


COLUMNS = (
    "run",
    "triggers",
    "offered/min mean (max)",
    "accepted/min mean (max)",
    "rejected",
    "converged after",
    "rejected after conv. (worst min)",
    "tasks done",
    "detect p50/p95/max s",
    "final rate per process",
)


def cells(r: BudgetRun) -> list[str]:
    per = ", ".join(_f(p.final_rate) for p in r.per_process)
    return [
        r.name,
        " + ".join(str(p.triggers) for p in r.per_process),
        f"{r.offered_mean:.1f} ({r.offered_max})",
        f"{r.accepted_mean:.1f} ({r.accepted_max})",
        f"{r.rejected} of {r.requests} ({r.rejected_share:.1%})",
        "—" if r.converged_after is None else f"{r.converged_after:g} min",
        f"{_pct(r.rejected_after)} ({_pct(r.worst_minute_after)})",
        f"{r.done}/{r.triggers}",
        f"{_f(r.detect_p50, 0)}/{_f(r.detect_p95, 0)}/{_f(r.detect_max, 0)}",
        per,
    ]


def timeline_lines(r: BudgetRun) -> list[str]:
    """One line per service minute: accepted + rejected, and each process's rate at its end."""
    out = [f"{r.name}, per service minute: accepted + rejected | rate per process at the minute's end"]
    for m in r.timeline:
        rates = " ".join(f"{x:5.1f}" for x in m["rates"])
        out.append(f"  min {m['minute']:2d}: {m['accepted']:3d} + {m['rejected']:3d} | {rates}")
    return out


def legend(cfg: BudgetConfig) -> str:
    return (
        f"Budget phase: N TrueWatch triggers on one API key, in one process or spread over three (one "
        f"asyncio loop each, like triggerers); the emulator refuses what goes over {PER_KEY} requests a "
        f"minute per key (sliding window), each process paces the key at {cfg.pacing:g} a minute and "
        f"adapts. Tasks run {cfg.minutes[0]:g}-{cfg.minutes[1]:g} min from their first answered poll, "
        f"then succeed; poll interval {cfg.interval:g} s. Time scale ×{cfg.scale:g} (the emulator's "
        f"window {MINUTE / cfg.scale:g} s; every figure in service minutes and seconds). Offered = "
        f"accepted + rejected requests a minute: mean over the saturated span (until the first task "
        f"finishes), max over any sliding minute. Converged after: the start of the first minute "
        f"with < {REJECTED_GOAL:.0%} of its requests rejected; rejected after conv.: the share over "
        f"the rest of the run (its worst minute). Detect: from the task's status change on the "
        f"emulator to the trigger's event. Final rate: what each process paced at the end, "
        f"requests a minute."
    )


def text_table(runs: Sequence[BudgetRun]) -> str:
    grid = [list(COLUMNS), *(cells(r) for r in runs)]
    widths = [max(len(line[i]) for line in grid) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in grid]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown(runs: Sequence[BudgetRun], cfg: BudgetConfig) -> str:
    def line(items: Sequence[str]) -> str:
        return "| " + " | ".join(items) + " |"

    out = [line(COLUMNS), line(["---"] * len(COLUMNS)), *(line(cells(r)) for r in runs)]
    return "\n".join([*out, "", legend(cfg)])
