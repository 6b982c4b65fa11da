"""One phase of the benchmark: what the orchestrator asks a worker process for, and what it gets back."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class PhaseSpec:
    kind: str
    triggers: int
    interval: float
    duration: float
    #: How many triggers see their remote task finish after the window (detection latency).
    flip: int
    base_url: str
    cafile: str
    #: All triggers wait on one remote task (the coalescing check) instead of one task each.
    shared_task: bool = False
    #: "spread": trigger i starts at i·interval/N, as tasks deferring over time do; "herd": all at
    #: once, as when a triggerer (re)starts and picks up every trigger assigned to it.
    start: str = "spread"
    #: Seconds after the last trigger started (and did its first poll) before the window opens.
    settle: float = 1.0
    #: The emulator's pid, to read its CPU time over the window.
    emulator_pid: int = 0
    #: Diagnosis only: the cyclic garbage collector is off through the window.
    gc_off: bool = False
    #: Write a cProfile of the window here (diagnosis only: profiling inflates the CPU figures).
    profile: str | None = None

    def remote_ids(self, make_id: Any) -> list[str]:
        return [make_id(0) if self.shared_task else make_id(i) for i in range(self.triggers)]

    def flip_indices(self) -> list[int]:
        """Spread over the start offsets, so the flipped triggers poll at every phase of the interval."""
        count = max(1, min(self.flip, self.triggers))
        return sorted({i * self.triggers // count for i in range(count)})


@dataclass
class PhaseResult:
    spec: PhaseSpec
    #: The measurement window, epoch seconds (the emulator's log uses the same clock).
    window_start: float = 0.0
    window_end: float = 0.0
    #: ``time.process_time()`` spent by the worker (all its threads) in the window.
    cpu_seconds: float = 0.0
    #: RSS from /proc/self/statm: after the warm-up trigger and before any benchmark trigger existed,
    #: then sampled once a second through the window.
    rss_baseline: int = 0
    rss_samples: list[int] = field(default_factory=list)
    #: Lateness of a 50 ms ticker in the window; the max also over the ramp-up.
    lag_max: float = 0.0
    lag_p99: float = 0.0
    lag_overall_max: float = 0.0
    #: Outgoing TCP connections opened by the whole machine in the window (/proc/net/snmp).
    tcp_active_opens: int = 0
    #: The cyclic GC's runs in the window: how many, their total and worst pause.
    gc_runs: int = 0
    gc_seconds: float = 0.0
    gc_worst: float = 0.0
    gc_by_generation: dict[str, list[float]] = field(default_factory=dict)
    #: CPU seconds the emulator process used in the window, and the machine's load average then.
    emulator_cpu_seconds: float = 0.0
    load_average: float = 0.0
    flip_time: float = 0.0
    flipped: int = 0
    #: Seconds from the flip to each flipped trigger's event (successful events only).
    latencies: list[float] = field(default_factory=list)
    #: Events before the flip (the trigger gave up or failed while its task was running).
    early_events: int = 0
    #: Events after the flip that are not the kind's success event.
    failed_events: int = 0
    sample_messages: list[str] = field(default_factory=list)
    worker_seconds: float = 0.0

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, path: Path) -> PhaseResult:
        raw = json.loads(path.read_text())
        raw["spec"] = PhaseSpec(**raw["spec"])
        return cls(**raw)
