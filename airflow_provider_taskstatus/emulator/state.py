"""The emulator's state: scripted tasks, global faults, flips, request budgets, the request log and
what the start calls did (:mod:`.starts`).

:class:`EmulatorState` is guarded by a thread lock because :class:`~.server.EmulatorServer` reads
and writes it from the test thread while the event loop thread answers requests.
"""

from __future__ import annotations

import copy
import threading
import weakref
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from .limits import RateLimiter, RateLimits
from .oauth import OAuthApp, OAuthBook
from .scripts import GLOBAL_FAULTS, Step, Task, demo_tasks
from .starts import StartBook

#: The stand-ins for the benchmark's anchor triggers (dbt Cloud's run status and a plain URL for
#: Airflow's ``HttpSensorTrigger``), and their ``api`` in the request log; their ids are *flipped*.
DBT_CLOUD = "dbt_cloud"
HTTP = "http"
FLIP_APIS = (DBT_CLOUD, HTTP)


class EmulatorState:
    """Scripted tasks, accepted credentials and the request log, safe to use from any thread."""

    def __init__(
        self,
        coze_tokens: Iterable[str],
        truewatch_keys: Iterable[str],
        rate_limits: RateLimits | None = None,
        oauth_apps: Iterable[OAuthApp] = (),
    ) -> None:

        self.coze_tokens = frozenset(coze_tokens)
        self.truewatch_keys = frozenset(truewatch_keys)
        #: The budgets given at construction: :meth:`reset` goes back to them.
        self.initial_limits = rate_limits or RateLimits()
        self.limiter = RateLimiter(self.initial_limits)
        self._lock = threading.Lock()
        self._tasks: dict[tuple[str, str], Task] = {}
        self._faults: dict[str, Task] = {}
        self._log: list[dict[str, Any]] = []
        self._flipped: set[tuple[str, str]] = set()
        #: A serial number per TCP connection (keyed by its transport while it lives). Client ports
        #: are reused quickly on loopback, so ``peer`` alone can merge two connections.
        self._conns: weakref.WeakKeyDictionary[object, int] = weakref.WeakKeyDictionary()
        self._conn_serial = 0
        #: Start plans, the side effects of start calls, the TrueWatch workspace's resources.
        self.starts = StartBook()
        #: OAuth apps, issued access tokens and token exchanges (:mod:`.oauth`); ``oauth_apps`` survive resets.
        self.oauth = OAuthBook(oauth_apps)
        self.reset()

    def reset(self) -> None:
        """Restore the seeded demo tasks, workspace resources, initial budgets and OAuth apps; forget
        all requests, flips, start plans, started tasks, OAuth tokens and exchanges.

        The budgets go back to the constructor's (windows emptied) rather than staying as a test set
        them, so one test's limits never leak into the next on a shared server.
        """
        self.limiter.configure(self.initial_limits)
        self.starts.reset()
        self.oauth.reset()
        with self._lock:
            self._tasks = {(t.api, t.task_id): t for t in demo_tasks()}
            self._faults.clear()
            self._log.clear()
            self._flipped.clear()

    def add_task(self, task: Task) -> None:
        self.add_tasks([task])

    def add_tasks(self, tasks: Iterable[Task]) -> None:
        with self._lock:
            for task in tasks:
                self._tasks[(task.api, task.task_id)] = task

    def flip(self, api: str, ids: Iterable[str]) -> None:
        """Mark ids of a stand-in API (:data:`FLIP_APIS`) as finished."""
        with self._lock:
            self._flipped.update((api, i) for i in ids)

    def flipped(self, api: str, item_id: str) -> bool:
        with self._lock:
            return (api, item_id) in self._flipped

    def inject_faults(self, faults: Task) -> None:
        """Steps that answer the API's next requests, whatever the task, before its own steps resume."""
        with self._lock:
            self._faults[faults.api] = faults

    def advance(self, api: str, task_id: str) -> tuple[Task, Step] | None:
        """Consume the next step: a pending global fault, else the task's own; None if the task is unknown."""
        with self._lock:
            task = self._tasks.get((api, task_id))
            if task is None:
                return None
            faults = self._faults.get(api)
            if faults is not None and not faults.exhausted():
                return task, faults.advance()
            return task, task.advance()

    def changes(self, api: str, task_id: str) -> list[dict[str, Any]] | None:
        """When each step of a task started answering (see ``Task.changes``); None if the task is unknown."""
        with self._lock:
            task = self._tasks.get((api, task_id)) if task_id != GLOBAL_FAULTS else self._faults.get(api)
            return None if task is None else copy.deepcopy(task.changes)

    def connection_id(self, transport: object | None) -> int | None:
        """The serial number of the connection ``transport`` belongs to (1, 2, … since start)."""
        if transport is None:
            return None
        with self._lock:
            serial = self._conns.get(transport)
            if serial is None:
                self._conn_serial += 1
                serial = self._conns[transport] = self._conn_serial
            return serial

    def record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._log.append(entry)

    def requests(
        self, api: str | None = None, task_id: str | None = None, call: str | None = None
    ) -> list[dict[str, Any]]:
        """The request log, oldest first, filtered by API, task id and ``call`` (``status`` / ``start`` / ``oauth``)."""
        with self._lock:
            return [
                dict(e)
                for e in self._log
                if (api is None or e["api"] == api)
                and (task_id is None or e["task_id"] == task_id)
                and (call is None or e["call"] == call)
            ]

    def started(self, api: str | None = None) -> list[dict[str, Any]]:
        """Every remote side effect of a start call (task or synchronous copy), oldest first."""
        return self.starts.started(api)

    def start_count(self, api: str | None = None) -> int:
        return len(self.starts.started(api))

    def stats(self, since: float | None = None, until: float | None = None) -> dict[str, Any]:
        """A summary of the requests that arrived in ``[since, until)`` (epoch seconds; open if None).

        ``connections`` counts the distinct TCP connections (``conn``) that sent requests in the
        window; ``new_connections`` only those whose first request (since the last reset) is in it,
        i.e. connections opened in the window. ``peers`` counts distinct client ``ip:port`` pairs,
        which undercounts connections when the client reuses ports. ``rejected`` counts the requests
        refused by a rate limit (also split ``rejected_by_api`` and ``rejected_by_limit``: key, workspace).
        ``by_call`` splits the requests into status polls, start calls and OAuth token exchanges; ``started`` counts the
        side effects (tasks, copies) of start calls in the window, per API.
        """
        lo = float("-inf") if since is None else since
        hi = float("inf") if until is None else until
        with self._lock:
            log = list(self._log)
        seen_before: set[int | None] = set()
        conns: set[int | None] = set()
        new_conns: set[int | None] = set()
        peers: set[str | None] = set()
        by_api: dict[str, int] = {}
        by_status: dict[str, int] = {}
        by_call: dict[str, int] = {}
        rejected_by_api: dict[str, int] = {}
        rejected_by_limit: dict[str, int] = {}
        for entry in log:
            when, conn = entry["time"], entry["conn"]
            if when < lo:
                seen_before.add(conn)
                continue
            if when >= hi:
                continue
            conns.add(conn)
            peers.add(entry["peer"])
            if conn not in seen_before:
                new_conns.add(conn)
            by_api[entry["api"]] = by_api.get(entry["api"], 0) + 1
            status = str(entry["http_status"])
            by_status[status] = by_status.get(status, 0) + 1
            by_call[entry["call"]] = by_call.get(entry["call"], 0) + 1
            limited = entry.get("limited")
            if limited is not None:
                rejected_by_api[entry["api"]] = rejected_by_api.get(entry["api"], 0) + 1
                rejected_by_limit[limited] = rejected_by_limit.get(limited, 0) + 1
        return {
            "requests": sum(by_api.values()),
            "connections": len(conns),
            "new_connections": len(new_conns),
            "peers": len(peers),
            "by_api": by_api,
            "by_status": by_status,
            "by_call": by_call,
            "rejected": sum(rejected_by_api.values()),
            "rejected_by_api": rejected_by_api,
            "rejected_by_limit": rejected_by_limit,
            "started": self.starts.counts(since, until),
        }


STATE = web.AppKey("state", EmulatorState)
