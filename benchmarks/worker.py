"""Hold one phase's triggers in one asyncio event loop, as a triggerer does: ``python -m benchmarks.worker SPEC OUT``.

The worker runs in its own process with the environment the orchestrator prepared (CA bundle,
connections, Airflow home), so every figure it reads about itself belongs to the triggers alone.
"""

from __future__ import annotations

import asyncio
import cProfile
import gc
import json
import sys
import time
from collections.abc import AsyncGenerator
from contextlib import aclosing, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.control import EmulatorClient
from benchmarks.kinds import KINDS, Kind
from benchmarks.measure import (
    GcMonitor,
    LagMonitor,
    load_average,
    percentile,
    process_cpu_seconds,
    rss_bytes,
    tcp_active_opens,
)
from benchmarks.phase import PhaseResult, PhaseSpec

if TYPE_CHECKING:
    from airflow.triggers.base import BaseTrigger


async def first_event(trigger: BaseTrigger) -> Any:
    """What the triggerer does with a trigger: iterate ``run()`` until the first event, then close it."""
    events = trigger.run()
    assert isinstance(events, AsyncGenerator)  # run() is an async generator function
    async with aclosing(events):
        async for event in events:
            return event.payload
    raise RuntimeError(f"{trigger!r} ended without an event")


class Holder:
    """Starts the triggers at staggered offsets and records when each one's event arrives."""

    def __init__(self, kind: Kind, spec: PhaseSpec, triggers: list[BaseTrigger]) -> None:
        self.kind = kind
        self.spec = spec
        self.triggers = triggers
        self.events: dict[int, tuple[float, Any]] = {}
        self.waiting_for: set[int] = set(spec.flip_indices())
        self.all_flipped_done = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        step = self.spec.interval / len(self.triggers) if self.spec.start == "spread" else 0.0
        self.tasks = [
            asyncio.create_task(self._hold(i, trigger, i * step)) for i, trigger in enumerate(self.triggers)
        ]

    async def _hold(self, index: int, trigger: BaseTrigger, delay: float) -> None:
        await asyncio.sleep(delay)
        try:
            payload = await first_event(trigger)
        except Exception as error:  # an anchor's trigger may raise instead of yielding an error event
            payload = {"status": "raised", "message": f"{type(error).__name__}: {error}"}
        self.events[index] = (time.time(), payload)
        self.waiting_for.discard(index)
        if not self.waiting_for:
            self.all_flipped_done.set()

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def run_phase(spec: PhaseSpec, gc_monitor: GcMonitor) -> PhaseResult:
    kind = KINDS[spec.kind]
    client = EmulatorClient(spec.base_url, Path(spec.cafile))
    result = PhaseResult(spec)
    started = time.monotonic()
    lag = LagMonitor()
    lag.start()

    # Warm-up: one trigger on a finished task loads what is loaded lazily (modules, connection, TLS).
    payload = await asyncio.wait_for(first_event(kind.make_trigger(kind.warm_id, spec.interval)), 60)
    if not kind.succeeded(payload):
        raise RuntimeError(f"warm-up trigger of {kind.name} did not succeed: {payload!r}")
    await asyncio.sleep(0.5)  # its session closes
    gc.collect()
    result.rss_baseline = rss_bytes()

    ids = spec.remote_ids(kind.remote_id)
    holder = Holder(kind, spec, [kind.make_trigger(remote_id, spec.interval) for remote_id in ids])
    loop = asyncio.get_running_loop()
    ramp_start = loop.time()
    holder.start()

    window_start = ramp_start + spec.interval + spec.settle
    await asyncio.sleep(window_start - loop.time())
    lag.mark()
    gc_monitor.mark()
    if spec.gc_off:
        gc.disable()
    emulator_cpu0 = process_cpu_seconds(spec.emulator_pid) if spec.emulator_pid else 0.0
    profiler = cProfile.Profile() if spec.profile else None
    if profiler is not None:
        profiler.enable()
    result.window_start, cpu0, opens0 = time.time(), time.process_time(), tcp_active_opens()
    window_end = loop.time() + spec.duration
    while (left := window_end - loop.time()) > 0:
        await asyncio.sleep(min(1.0, left))
        result.rss_samples.append(rss_bytes())
    result.window_end, cpu1, opens1 = time.time(), time.process_time(), tcp_active_opens()
    if profiler is not None and spec.profile:
        profiler.disable()
        profiler.dump_stats(spec.profile)
    gc.enable()
    result.cpu_seconds = cpu1 - cpu0
    if spec.emulator_pid:
        result.emulator_cpu_seconds = process_cpu_seconds(spec.emulator_pid) - emulator_cpu0
    result.load_average = load_average()
    result.gc_runs, result.gc_seconds, result.gc_worst = (
        len(gc_monitor.pauses),
        gc_monitor.total,
        gc_monitor.worst,
    )
    result.gc_by_generation = gc_monitor.by_generation()
    result.tcp_active_opens = opens1 - opens0
    result.lag_max = max(lag.window, default=0.0)
    result.lag_p99 = percentile(lag.window, 0.99) or 0.0

    # Detection: finish some remote tasks now and time each trigger's event.
    flip_indices = spec.flip_indices()
    flip_ids = sorted({ids[i] for i in flip_indices})
    result.flip_time = time.time()
    result.flipped = len(flip_indices)
    await asyncio.to_thread(kind.flip, client, flip_ids)
    with suppress(asyncio.TimeoutError):
        await asyncio.wait_for(holder.all_flipped_done.wait(), 2 * spec.interval + 10)
    await holder.stop()
    await asyncio.sleep(0.5)  # pooled sessions close after their last lease
    await lag.stop()
    result.lag_overall_max = lag.overall_max

    for when, event_payload in holder.events.values():
        ok = kind.succeeded(event_payload)
        if when < result.flip_time:
            result.early_events += 1
        elif ok:
            result.latencies.append(when - result.flip_time)
        else:
            result.failed_events += 1
        if not ok and len(result.sample_messages) < 3:
            result.sample_messages.append(json.dumps(event_payload, default=str)[:300])
    result.worker_seconds = time.monotonic() - started
    return result


def main(argv: list[str]) -> None:
    spec_path, out_path = Path(argv[0]), Path(argv[1])
    spec = PhaseSpec(**json.loads(spec_path.read_text()))
    with GcMonitor() as gc_monitor:
        result = asyncio.run(run_phase(spec, gc_monitor))
    result.save(out_path)


if __name__ == "__main__":
    main(sys.argv[1:])
