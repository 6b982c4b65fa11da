"""The timer wheel every waiting trigger of a loop shares: timing, batching, errors, cancellation."""

from __future__ import annotations

import asyncio
import contextvars
import math

import pytest

from airflow_provider_taskstatus.triggers.wheel import TICK, Waiter

CURRENT = contextvars.ContextVar("CURRENT", default="unset")


class Recorder(Waiter):
    """Runs ``len(delays)`` rounds, returning each delay in turn, recording when each round began."""

    def __init__(self, delays: list[float | None], fail_on: int | None = None) -> None:
        self.delays = list(delays)
        self.fail_on = fail_on
        self.started: list[float] = []
        self.contexts: list[str] = []

    async def step(self) -> float | None:
        self.started.append(asyncio.get_running_loop().time())
        self.contexts.append(CURRENT.get())
        if self.fail_on == len(self.started):
            raise ValueError("boom")
        await asyncio.sleep(0)  # a round awaits I/O in real life
        return self.delays.pop(0)


async def test_rounds_run_never_early_and_at_most_one_tick_late() -> None:
    loop = asyncio.get_running_loop()
    waiter = Recorder([0.12, 0.07, None])
    asked = loop.time()
    await waiter.start(0.1)
    assert len(waiter.started) == 3
    # Each round is due its delay after the previous round began (the step returns at once).
    expected = [asked + 0.1, waiter.started[0] + 0.12, waiter.started[1] + 0.07]
    for began, due in zip(waiter.started, expected, strict=True):
        assert began >= due - 1e-3, "a round ran before it was due"
        assert began <= due + TICK + 0.05, "a round ran more than a slot late"


async def test_waiters_due_in_one_slot_start_together() -> None:
    loop = asyncio.get_running_loop()
    now = loop.time()
    boundary = (math.ceil(now / TICK) + 2) * TICK
    # Due 39 ms apart, but in the same slot: both run when the slot's timer fires.
    first, second = Recorder([None]), Recorder([None])
    await asyncio.gather(first.start(boundary - now - 0.04), second.start(boundary - now - 0.001))
    assert first.started[0] >= boundary - 1e-3
    assert abs(first.started[0] - second.started[0]) < 0.01


async def test_an_error_in_a_round_ends_the_wait_with_it() -> None:
    waiter = Recorder([0.01, 0.01, 0.01, None], fail_on=2)
    with pytest.raises(ValueError, match="boom"):
        await waiter.start(0.01)
    await asyncio.sleep(3 * TICK)
    assert len(waiter.started) == 2, "no round after the failing one"


async def test_cancelling_the_awaiting_task_drops_the_waiter() -> None:
    waiter = Recorder([0.01] * 100)

    async def wait() -> None:
        await waiter.start(0.01)

    task = asyncio.create_task(wait())
    await asyncio.sleep(4 * TICK)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    rounds = len(waiter.started)
    await asyncio.sleep(4 * TICK)
    assert len(waiter.started) <= rounds + 1, "rounds went on after the wait was cancelled"


async def test_rounds_run_in_the_context_the_wait_started_in() -> None:
    async def start_with(value: str) -> Recorder:
        CURRENT.set(value)
        waiter = Recorder([0.01, None])
        await waiter.start(0.01)
        return waiter

    a, b = await asyncio.gather(start_with("a"), start_with("b"))
    assert a.contexts == ["a", "a"]
    assert b.contexts == ["b", "b"]
