"""From phase results and emulator counts to rows, targets, a text table and a markdown table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.imports import ImportTimes
from benchmarks.kinds import KINDS
from benchmarks.measure import median
from benchmarks.phase import PhaseResult

#: Design bound of coalescing: an answer is reused for 0.9 of the interval, so at most 1/0.9 requests
#: per interval reach the server, whatever K is.
COALESCE_LIMIT = 1.2


@dataclass(frozen=True)
class Row:
    phase: str
    label: str
    kind: str
    ours: bool
    shared_task: bool
    #: "spread" (steady state) or "herd" (all started at once).
    start: str
    triggers: int
    interval: float
    duration: float
    polls_due: float
    polls_done: int
    cpu_ms_per_poll: float | None
    new_conns_per_poll: float | None
    tcp_opens_per_poll: float | None
    kib_per_trigger: float
    lag_max_ms: float
    lag_p99_ms: float
    #: The cyclic GC's longest pause in the window: a loop stall no trigger can avoid.
    gc_worst_ms: float
    detect_median_s: float | None
    detect_max_s: float | None
    detected: int
    flipped: int
    early_events: int
    failed_events: int
    connections_in_window: int

    @property
    def done_ratio(self) -> float:
        return self.polls_done / self.polls_due if self.polls_due else 0.0

    @property
    def requests_per_interval(self) -> float:
        return self.polls_done / (self.duration / self.interval)


def make_row(phase: str, result: PhaseResult, stats: dict[str, Any]) -> Row:
    spec = result.spec
    kind = KINDS[spec.kind]
    done = int(stats["by_api"].get(kind.api, 0))

    def per_poll(amount: float) -> float | None:
        return amount / done if done else None

    grown = (median(result.rss_samples) or result.rss_baseline) - result.rss_baseline
    return Row(
        phase=phase,
        label=kind.label,
        kind=kind.name,
        ours=kind.ours,
        shared_task=spec.shared_task,
        start=spec.start,
        triggers=spec.triggers,
        interval=spec.interval,
        duration=spec.duration,
        polls_due=spec.triggers * spec.duration / spec.interval,
        polls_done=done,
        cpu_ms_per_poll=per_poll(result.cpu_seconds * 1000),
        new_conns_per_poll=per_poll(stats["new_connections"]),
        tcp_opens_per_poll=per_poll(result.tcp_active_opens),
        kib_per_trigger=grown / spec.triggers / 1024,
        lag_max_ms=result.lag_max * 1000,
        lag_p99_ms=result.lag_p99 * 1000,
        gc_worst_ms=result.gc_worst * 1000,
        detect_median_s=median(result.latencies),
        detect_max_s=max(result.latencies, default=None),
        detected=len(result.latencies),
        flipped=result.flipped,
        early_events=result.early_events,
        failed_events=result.failed_events,
        connections_in_window=int(stats["connections"]),
    )


@dataclass(frozen=True)
class Target:
    name: str
    ours: str
    anchor: str
    goal: str
    #: None: a figure reported beside the targets, not one of them.
    passed: bool | None


def _verdict(passed: bool | None, fail: str) -> str:
    return "—" if passed is None else "PASS" if passed else fail


def _fmt(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _versus_anchor(rows: Sequence[Row], start: str) -> list[Target]:
    """CPU, connection and memory targets of our kinds against dbt Cloud's, for one start mode."""
    group = [r for r in rows if r.start == start and not r.shared_task]
    anchor = next((r for r in group if r.kind == "dbt_cloud"), None)
    ours = [r for r in group if r.ours]
    targets: list[Target] = []
    for r in ours:
        if anchor is not None and anchor.cpu_ms_per_poll and r.cpu_ms_per_poll is not None:
            ratio = r.cpu_ms_per_poll / anchor.cpu_ms_per_poll
            targets.append(
                Target(
                    f"CPU per poll, {r.kind} / dbt_cloud ({start})",
                    f"{r.cpu_ms_per_poll:.3f} ms (ratio {ratio:.2f})",
                    f"{anchor.cpu_ms_per_poll:.3f} ms",
                    "ratio ≤ 0.20",
                    ratio <= 0.2,
                )
            )
    for r in ours:
        if r.new_conns_per_poll is not None:
            targets.append(
                Target(
                    f"new connections per poll, {r.kind} ({start})",
                    f"{r.new_conns_per_poll:.4f}",
                    _fmt(anchor.new_conns_per_poll if anchor else None, 3),
                    "≤ 0.01",
                    r.new_conns_per_poll <= 0.01,
                )
            )
    for r in ours:
        if anchor is not None and anchor.kib_per_trigger > 0:
            ratio = r.kib_per_trigger / anchor.kib_per_trigger
            # The anchor figure (330-350 KiB per waiting trigger) is the herd start's; with a
            # spread start the anchor's own figure swings 20-40 KiB between runs (allocator state),
            # too unsteady to hold a 1/10 ratio against: reported, not judged.
            herd = start == "herd"
            targets.append(
                Target(
                    f"memory per waiting trigger, {r.kind} / dbt_cloud ({start})",
                    f"{r.kib_per_trigger:.1f} KiB (ratio {ratio:.2f})",
                    f"{anchor.kib_per_trigger:.1f} KiB",
                    "ratio ≤ 0.10" if herd else "reported only (see benchmarks/README.md)",
                    ratio <= 0.1 if herd else None,
                )
            )
    return targets


def evaluate(
    rows: Sequence[Row],
    big: Row | None,
    shared: Row | None,
    imports: ImportTimes | None,
    wall_seconds: float | None,
    wall_limit: float,
) -> list[Target]:
    targets = _versus_anchor(rows, "spread") + _versus_anchor(rows, "herd")
    anchor = next((r for r in rows if r.kind == "dbt_cloud" and r.start == (big.start if big else "")), None)
    if big is not None:
        targets.append(
            Target(
                f"{big.triggers:,} {big.kind} triggers ({big.start}): polls done / due",
                f"{big.done_ratio:.1%} ({big.polls_done:,} / {big.polls_due:,.0f})",
                f"dbt_cloud: {anchor.done_ratio:.1%} with {anchor.triggers:,}" if anchor else "—",
                "≥ 95%",
                big.done_ratio >= 0.95,
            )
        )
        targets.append(
            Target(
                f"{big.triggers:,} {big.kind} triggers ({big.start}): worst event-loop lag",
                f"{big.lag_max_ms:.0f} ms",
                f"dbt_cloud: {anchor.lag_max_ms:.0f} ms with {anchor.triggers:,}" if anchor else "—",
                "≤ 250 ms",
                big.lag_max_ms <= 250,
            )
        )
    if shared is not None:
        rate = shared.requests_per_interval
        targets.append(
            Target(
                f"{shared.triggers} triggers on one remote task: requests per interval",
                f"{rate:.2f} ({shared.polls_done} in {shared.duration:g} s)",
                f"{shared.triggers} (one per trigger)",
                f"≈ 1 (≤ {COALESCE_LIMIT}; design bound 1/0.9)",
                rate <= COALESCE_LIMIT and shared.detected == shared.triggers,
            )
        )
    if imports is not None:
        targets.append(
            Target(
                "import of both sensor modules over `import airflow.sdk` (median, .pyc cached)",
                f"{imports.sensors * 1000:.1f} ms (no .pyc: {imports.sensors_uncached * 1000:.1f} ms)",
                f"`import airflow.sdk`: {imports.sdk * 1000:.0f} ms (no .pyc: {imports.sdk_uncached * 1000:.0f} ms)",
                "≤ 10 ms",
                imports.sensors <= 0.010,
            )
        )
    if wall_seconds is not None:
        targets.append(
            Target(
                "wall time of the whole benchmark",
                f"{wall_seconds / 60:.1f} min",
                "—",
                f"< {wall_limit / 60:g} min",
                wall_seconds < wall_limit,
            )
        )
    return targets


_COLUMNS = (
    "phase",
    "trigger",
    "triggers",
    "CPU ms/poll",
    "new conn/poll",
    "KiB/trigger",
    "polls done/due",
    "worst lag ms",
    "worst GC ms",
    "detect med/max s",
    "errors",
)


def _cells(r: Row) -> list[str]:
    if r.shared_task:  # the emulator counts requests, not the triggers' polls they answer
        polls = f"{r.polls_done:,} requests for {r.polls_due:,.0f} polls"
        cpu = "—"
    else:
        polls = f"{r.polls_done:,}/{r.polls_due:,.0f} ({r.done_ratio:.0%})"
        cpu = _fmt(r.cpu_ms_per_poll, 3)
    return [
        r.phase,
        r.label,
        f"{r.triggers:,}",
        cpu,
        _fmt(r.new_conns_per_poll, 3),
        f"{r.kib_per_trigger:,.1f}",
        polls,
        f"{r.lag_max_ms:,.0f}",
        f"{r.gc_worst_ms:,.0f}",
        f"{_fmt(r.detect_median_s)}/{_fmt(r.detect_max_s)} ({r.detected}/{r.flipped})",
        str(r.early_events + r.failed_events),
    ]


def text_table(rows: Sequence[Row], targets: Sequence[Target]) -> str:
    grid = [list(_COLUMNS), *(_cells(r) for r in rows)]
    widths = [max(len(line[i]) for line in grid) for i in range(len(_COLUMNS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) for line in grid]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("")
    tgrid = [["target", "ours", "anchor", "goal", ""]] + [
        [t.name, t.ours, t.anchor, t.goal, _verdict(t.passed, "FAIL")] for t in targets
    ]
    twidths = [max(len(line[i]) for line in tgrid) for i in range(5)]
    lines.extend("  ".join(c.ljust(w) for c, w in zip(line, twidths, strict=True)) for line in tgrid)
    return "\n".join(lines)


LEGEND = (
    "Each row holds N triggers of one kind in one asyncio event loop, in a fresh process, for a "
    "{duration:g} s window that opens one poll interval ({interval:g} s) after the triggers start; "
    "the emulator answers over TLS on loopback from another process. Rows named *herd* start every "
    "trigger at once (a triggerer restart); the others start spread over one interval (steady state). "
    "CPU ms/poll: the process's CPU time (user + system) in the window / the status requests the "
    "emulator received in it. New conn/poll: TCP connections whose first request falls in the window "
    "/ requests. KiB/trigger: (median RSS in the window − RSS before the triggers existed) / N. Polls "
    "due: N × window / interval. Worst lag: the latest wake-up of a 50 ms ticker in the loop; worst "
    "GC: the longest cyclic-GC run in the window. Detect: seconds from a task's status flip to its "
    "trigger's event, median / max over the flipped triggers."
)


def markdown(rows: Sequence[Row], targets: Sequence[Target]) -> str:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cells) + " |"

    out = [line(_COLUMNS), line(["---"] * len(_COLUMNS)), *(line(_cells(r)) for r in rows), ""]
    out += [line(["target", "ours", "anchor", "goal", "result"]), line(["---"] * 5)]
    out += [line([t.name, t.ours, t.anchor, t.goal, _verdict(t.passed, "**FAIL**")]) for t in targets]
    if rows:
        out += ["", LEGEND.format(duration=rows[0].duration, interval=rows[0].interval)]
    return "\n".join(out)
