"""One process of the budget phase: ``python -m benchmarks.budget_worker SPEC OUT``.

It holds its share of the phase's TrueWatch triggers in one asyncio event loop, as a triggerer does,
all on one API key whose budget the emulator enforces. Several of these processes run at once on
that key: each paces the account on its own (``transport/throttle.py``), as separate triggerers do.

The time scale (see :mod:`benchmarks.budget`) is applied here by setting the throttle's module
constants that are durations or rates (``COOLDOWN`` ÷ scale; ``MIN_RATE`` and ``GROWTH`` × scale)
before any trigger exists; the orchestrator scales the rest (budget, window, intervals, durations).

The worker records what the emulator cannot see: every accepted and rate-limited answer its throttle
was told about, with the rate in use after it (a wrapper around ``AccountThrottle.accepted`` and
``AccountThrottle.limited``; the package is not changed), and when each trigger's event arrived.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.kinds import KINDS
from benchmarks.worker import first_event


@dataclass(frozen=True)
class WorkerSpec:
    #: 0, 1, 2 …: the process's number in its run.
    process: int
    task_ids: list[str]
    #: The triggers' poll interval, real seconds (already divided by the scale).
    interval: float
    scale: float
    #: Written once the worker has warmed up; the orchestrator writes ``go`` (an epoch time) when
    #: every process of the run is ready and the emulator's budget is in force.
    ready_path: str
    go_path: str
    #: Real seconds after ``go`` to wait for every event before giving up.
    timeout: float


def scale_pacing(scale: float) -> dict[str, float]:
    """Scale the throttle's constants to the run's time scale; return the values now in force.

    Rates are in requests per (real) minute, so a rate of r a service-minute is r × scale here.
    ``GROWTH`` is added to the rate per accepted request: it is a rate too, hence × scale (unscaled,
    the rate would grow 2% per *real* minute, i.e. ``scale`` times too slowly in service time).
    ``COOLDOWN`` is a duration: ÷ scale. ``DECREASE`` and ``RECENT_SENDS`` have no unit.
    """
    from airflow_provider_taskstatus.transport import throttle

    throttle.COOLDOWN /= scale
    throttle.MIN_RATE *= scale
    throttle.GROWTH *= scale
    return {
        "COOLDOWN": throttle.COOLDOWN,
        "MIN_RATE": throttle.MIN_RATE,
        "GROWTH": throttle.GROWTH,
        "DECREASE": throttle.DECREASE,
    }


class Trace:
    """Every accepted / rate-limited answer of this process's throttles: ``[epoch, "a" | "l", rate]``."""

    def __init__(self) -> None:
        self.entries: list[tuple[float, str, float]] = []

    def install(self) -> None:
        from airflow_provider_taskstatus.transport.throttle import AccountThrottle

        accepted, limited, entries = AccountThrottle.accepted, AccountThrottle.limited, self.entries

        def on_accepted(throttle: AccountThrottle) -> None:
            accepted(throttle)
            entries.append((time.time(), "a", throttle.rate))

        def on_limited(throttle: AccountThrottle, now: float, pause: float | None = None) -> None:
            limited(throttle, now, pause)
            entries.append((time.time(), "l", throttle.rate))

        AccountThrottle.accepted = on_accepted  # type: ignore[method-assign,assignment]
        AccountThrottle.limited = on_limited  # type: ignore[method-assign,assignment]


async def _hold(trigger: Any, delay: float, events: dict[str, tuple[float, Any]], task_id: str) -> None:
    await asyncio.sleep(delay)
    try:
        payload = await first_event(trigger)
    except Exception as error:
        payload = {"status": "raised", "message": f"{type(error).__name__}: {error}"}
    events[task_id] = (time.time(), payload)


def _ready_and_wait(spec: WorkerSpec) -> float:
    """Say this process is ready; return the start time once the orchestrator has given it."""
    Path(spec.ready_path).write_text("ready")
    go_path = Path(spec.go_path)
    while not go_path.exists():
        time.sleep(0.02)
    return float(go_path.read_text())


async def run(spec: WorkerSpec) -> dict[str, Any]:
    from airflow_provider_taskstatus.hooks.truewatch import TrueWatchHook
    from airflow_provider_taskstatus.transport.throttle import forget_throttles

    constants = scale_pacing(spec.scale)
    trace = Trace()
    trace.install()
    kind = KINDS["truewatch"]

    # Warm-up before the budget is in force: modules, the connection, the pooled TLS session.
    payload = await asyncio.wait_for(first_event(kind.make_trigger(kind.warm_id, spec.interval)), 120)
    if not kind.succeeded(payload):
        raise RuntimeError(f"warm-up trigger did not succeed: {payload!r}")
    # The account starts afresh, as in a triggerer just (re)started: the warm-up's request, sent
    # while the other processes were still starting, would otherwise count in the rate in use that
    # the first cut halves (it made one process's first cut 18 -> 5.7 a minute instead of 9).
    forget_throttles()
    # The account's throttle, as the triggers' hooks will find it (one per account and process).
    throttle = TrueWatchHook(kind.conn_id).get_endpoint().throttle
    triggers = [kind.make_trigger(task_id, spec.interval) for task_id in spec.task_ids]

    go = await asyncio.to_thread(_ready_and_wait, spec)
    await asyncio.sleep(max(0.0, go - time.time()))
    trace.entries.clear()
    start_rate = throttle.rate

    # Started spread over one poll interval, as sensors deferring one after the other.
    events: dict[str, tuple[float, Any]] = {}
    step = spec.interval / len(triggers)
    tasks = [
        asyncio.create_task(_hold(trigger, i * step, events, task_id))
        for i, (trigger, task_id) in enumerate(zip(triggers, spec.task_ids, strict=True))
    ]
    _, pending = await asyncio.wait(tasks, timeout=max(1.0, go + spec.timeout - time.time()))
    for task in pending:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "process": spec.process,
        "go": go,
        "constants": constants,
        "ceiling": throttle.ceiling,
        "start_rate": start_rate,
        "final_rate": throttle.rate,
        "limits": throttle.limits,
        "trace": trace.entries,
        "events": {
            task_id: [when, kind.succeeded(payload), json.dumps(payload, default=str)[:300]]
            for task_id, (when, payload) in events.items()
        },
        "unfinished": len(pending),
    }


def main(argv: list[str]) -> None:
    spec_path, out_path = Path(argv[0]), Path(argv[1])
    spec = WorkerSpec(**json.loads(spec_path.read_text()))
    result = asyncio.run(run(spec))
    out_path.write_text(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
