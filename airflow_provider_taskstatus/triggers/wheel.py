"""One timer wheel per event loop, shared by every waiting trigger of the process.

A triggerer holds thousands of triggers in one event loop. Were each to sleep on its own timer,
every poll would cost a loop wake-up of its own, and leave a new timer, future and coroutine
behind that live through the pause: the cyclic GC promotes them to its oldest generation, and
with thousands of triggers that churn alone sets off full collections that stall the loop.

Here a wait is one entry in a wheel of ``TICK``-wide slots. Polls due in the same slot
start in the same loop iteration, so their requests leave together, and between polls a waiting
trigger allocates nothing.
"""

from __future__ import annotations

import asyncio
import contextvars
import heapq
import math
import weakref

#: Width of a slot, in seconds. A step runs up to this much later than asked (never earlier): a
#: small price against poll intervals of seconds, for one loop wake-up per slot, not per poll.
TICK = 0.05


class Waiter:
    """Something that waits in rounds on its loop's wheel; subclasses define :meth:`step`.

    The wheel keeps the waiter itself in its slots, so a waiting trigger costs one object here.
    (No ``__slots__``, so that a subclass may also derive from a slotted class.)
    """

    async def step(self) -> float | None:
        """One round: the seconds until the next, or None when the wait is over."""
        raise NotImplementedError

    def start(self, first_delay: float) -> asyncio.Future[None]:
        """Run :meth:`step` after ``first_delay`` seconds, then after each delay it returns.

        Await the returned future: it ends with the wait, raising what ``step`` raised. Cancelling
        the awaiting task cancels the future; a round then in flight ends with its request and is
        dropped.
        """
        loop = asyncio.get_running_loop()
        wheel = _wheels.get(loop)
        if wheel is None:
            wheel = _wheels[loop] = Wheel(loop)
        # Each round runs in the starter's context: Airflow binds a trigger's log routing there.
        self._context = contextvars.copy_context()
        self._done: asyncio.Future[None] = loop.create_future()
        wheel.add(self, first_delay)
        return self._done


class Wheel:
    """The slots of one event loop: slot number → waiters due in it, and the earliest slot's timer."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._slots: dict[int, list[Waiter]] = {}
        self._order: list[int] = []  # heap of the slot numbers in _slots
        self._timer: asyncio.TimerHandle | None = None
        self._timer_slot = 0

    def add(self, waiter: Waiter, delay: float) -> None:
        slot = math.ceil((self._loop.time() + delay) / TICK)
        waiters = self._slots.get(slot)
        if waiters is not None:
            waiters.append(waiter)
            return
        self._slots[slot] = [waiter]
        heapq.heappush(self._order, slot)
        if self._timer is None or slot < self._timer_slot:
            self._arm(slot)

    def _arm(self, slot: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_slot = slot
        self._timer = self._loop.call_at(slot * TICK, self._fire)

    def _fire(self) -> None:
        self._timer = None
        # The loop may run a timer a clock resolution early: the armed slot is due regardless.
        due = max(self._timer_slot, math.floor(self._loop.time() / TICK))
        while self._order and self._order[0] <= due:
            for waiter in self._slots.pop(heapq.heappop(self._order)):
                if not waiter._done.done():  # a cancelled wait is dropped here
                    self._loop.create_task(self._round(waiter), context=waiter._context)
        if self._order:
            self._arm(self._order[0])

    async def _round(self, waiter: Waiter) -> None:
        done = waiter._done
        try:
            delay = await waiter.step()
        except asyncio.CancelledError:
            done.cancel()
            raise
        except Exception as error:
            if not done.done():
                done.set_exception(error)
            return
        if done.done():
            return
        if delay is None:
            done.set_result(None)
        else:
            self.add(waiter, delay)


_wheels: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Wheel] = weakref.WeakKeyDictionary()
