"""Request coalescing and the pooled session: counted at the emulator, not timed."""

from __future__ import annotations

import asyncio
import time

from airflow_provider_taskstatus.emulator import EmulatorServer
from airflow_provider_taskstatus.hooks.coze import CozeHook
from airflow_provider_taskstatus.models.base import State
from airflow_provider_taskstatus.triggers.coze import CozeCopyTaskTrigger

POLICY = {
    "timeout": 2.0,
    "max_retries": 0,
    "backoff": 0.01,
    "max_backoff": 0.05,
    "max_consecutive_failures": 3,
}


def trigger(
    task_id: str, conn_id: str = "coze_default", wait: float = 1.2, poll: float = 0.2
) -> CozeCopyTaskTrigger:
    return CozeCopyTaskTrigger(
        task_id, conn_id, deadline=time.time() + wait, poll_interval=poll, request_policy=POLICY
    )


async def warm_up() -> None:
    """Read the connection once before the clock starts: the first lookup in a process loads Airflow's
    secrets machinery (seconds on a loaded machine, Airflow 3.0 and 3.1 most), which would eat the
    short waits below."""
    await CozeHook().aget_endpoint()


async def run_all(*triggers: CozeCopyTaskTrigger) -> list[str]:
    async def last(t: CozeCopyTaskTrigger) -> str:
        return [e.payload["status"] async for e in t.run()][-1]

    return await asyncio.gather(*(last(t) for t in triggers))


async def test_k_triggers_on_one_task_share_one_request_per_interval(emulator: EmulatorServer) -> None:
    emulator.set_task("coze", "shared", [{"task_status": "in_progress"}])
    await warm_up()
    started = time.monotonic()
    statuses = await run_all(*(trigger("shared") for _ in range(10)))
    elapsed = time.monotonic() - started
    assert statuses == ["timeout"] * 10
    polls = len(emulator.requests(task_id="shared"))
    intervals = elapsed / 0.2
    assert polls <= intervals + 2, f"{polls} requests for {intervals:.1f} intervals: not coalesced"
    assert polls >= intervals / 2, "but still polled every interval"


async def test_all_triggers_see_the_flip(emulator: EmulatorServer) -> None:
    emulator.set_task(
        "coze", "flip", [{"task_status": "in_progress", "repeat": 3}, {"task_status": "successful"}]
    )
    statuses = await run_all(*(trigger("flip", wait=5) for _ in range(5)))
    assert statuses == ["success"] * 5
    assert len(emulator.requests(task_id="flip")) <= 5


async def test_different_tasks_or_accounts_are_not_coalesced(emulator: EmulatorServer) -> None:
    emulator.set_task("coze", "a", [{"task_status": "in_progress"}])
    emulator.set_task("coze", "b", [{"task_status": "in_progress"}])
    await run_all(trigger("a", wait=0.5), trigger("b", wait=0.5), trigger("a", "coze_bad_token", wait=0.5))
    assert len(emulator.requests(task_id="a")) >= 2 + 1, "a's own polls plus the other account's request"
    assert [r["auth_valid"] for r in emulator.requests(task_id="a")].count(False) == 1
    assert len(emulator.requests(task_id="b")) >= 2


async def test_concurrent_calls_share_one_request_and_one_error(emulator: EmulatorServer) -> None:
    emulator.set_task("coze", "slow", [{"task_status": "in_progress", "delay": 0.3}])
    hook = CozeHook()
    results = await asyncio.gather(*(hook.aget_task_status("slow") for _ in range(8)))
    assert {r.state for r in results} == {State.RUNNING}
    assert len(emulator.requests(task_id="slow")) == 1
    emulator.set_task("coze", "broken", [{"code": 4000, "msg": "bad", "delay": 0.2}])
    errors = await asyncio.gather(
        *(hook.aget_task_status("broken") for _ in range(4)), return_exceptions=True
    )
    assert all("Coze API error 4000" in str(e) for e in errors)
    assert len(emulator.requests(task_id="broken")) == 1
    await hook.aget_task_status("slow")  # errors and one-off calls are not cached: a new request
    assert len(emulator.requests(task_id="slow")) == 2


async def test_many_triggers_share_few_connections(emulator: EmulatorServer) -> None:
    for i in range(20):
        emulator.set_task("coze", f"c{i}", [{"task_status": "in_progress"}])
    await warm_up()
    await run_all(*(trigger(f"c{i}", wait=1.0) for i in range(20)))
    requests = emulator.requests()
    peers = {r["conn"] for r in requests}
    assert len(requests) >= 20 * 3, "most of the 4 polls per trigger were made"
    assert len(peers) <= 20, f"{len(peers)} connections for {len(requests)} requests: not kept alive"


async def test_only_answers_another_trigger_may_reuse_are_remembered(emulator: EmulatorServer) -> None:
    from airflow_provider_taskstatus.transport import aio

    for task_id in ("shared", "alone"):
        emulator.set_task("coze", task_id, [{"task_status": "in_progress"}])
    waits = asyncio.gather(run_all(trigger("shared"), trigger("shared"), trigger("alone")))
    await asyncio.sleep(0.7)  # a few polls each
    pool = aio._pools[asyncio.get_running_loop()]
    remembered = {url.rsplit("/", 1)[-1] for _, url in pool.recent}
    watched = {url.rsplit("/", 1)[-1]: count for (_, url), count in pool.watchers.items()}
    await waits
    assert watched == {"shared": 2, "alone": 1}
    assert remembered == {"shared"}, "a lone trigger's answers are kept though nobody will reuse them"
    assert aio._pools.get(asyncio.get_running_loop()) is None, "the last lease closes the pool"
