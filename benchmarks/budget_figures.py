"""The budget phase's figures, from the emulator's request log and the workers' reports; and their tables.

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
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_taskstatus.models.truewatch import TrueWatchApi
from airflow_provider_taskstatus.transport.throttle import budget as paced_budget
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
