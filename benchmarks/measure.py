"""What the worker reads about itself: resident memory, TCP opens, CPU, and event-loop lag."""

from __future__ import annotations

import asyncio
import gc
import os
import statistics
import time
from collections.abc import Sequence

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    """Resident set size of this process, from ``/proc/self/statm`` (second field, in pages)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE_SIZE


def tcp_active_opens() -> int:
    """``Tcp: ActiveOpens`` of this network namespace (``/proc/net/snmp``): outgoing connections made.

    Machine-wide, so it only cross-checks the emulator's per-peer count when nothing else on the
    machine opens connections meanwhile.
    """
    with open("/proc/net/snmp") as snmp:
        rows = [line.split() for line in snmp if line.startswith("Tcp:")]
    header, values = rows[0], rows[1]
    return int(values[header.index("ActiveOpens")])


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-quantile (0..1) by nearest rank."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


class LagMonitor:
    """A ticker coroutine that sleeps ``period`` seconds at a time and records how late it wakes up.

    A late wake-up means the event loop was busy: every trigger in the loop was stalled that long.
    ``mark()`` starts a new window; :attr:`window` holds the lags since then.
    """

    def __init__(self, period: float = 0.05) -> None:
        self.period = period
        self.window: list[float] = []
        self.overall_max = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._tick())

    def mark(self) -> None:
        self.window = []

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _tick(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(self.period)
            lag = max(0.0, time.perf_counter() - before - self.period)
            self.window.append(lag)
            self.overall_max = max(self.overall_max, lag)


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of another process, from ``/proc/<pid>/stat``."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_average() -> float:
    """The machine's 1-minute load average: other work competing for the CPUs."""
    return os.getloadavg()[0]


class GcMonitor:
    """Times the cyclic garbage collector's runs (``gc.callbacks``): a long one stalls the loop."""

    def __init__(self) -> None:
        self.pauses: list[tuple[int, float]] = []
        self._started = 0.0

    def __enter__(self) -> GcMonitor:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses.append((info["generation"], time.perf_counter() - self._started))

    def mark(self) -> None:
        self.pauses = []

    @property
    def total(self) -> float:
        return sum(p for _, p in self.pauses)

    def by_generation(self) -> dict[str, list[float]]:
        """``{generation: [runs, seconds]}``: full (generation 2) collections scan every object."""
        out: dict[str, list[float]] = {}
        for generation, pause in self.pauses:
            runs, seconds = out.get(str(generation), [0, 0.0])
            out[str(generation)] = [runs + 1, seconds + pause]
        return out

    @property
    def worst(self) -> float:
        return max((p for _, p in self.pauses), default=0.0)
