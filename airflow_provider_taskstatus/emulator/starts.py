"""What the start calls will do and have done: queued plans, the side effects, the workspace's resources.

Every remote side effect of a start (a task, or a Coze bot's synchronous copy) is recorded, answered
or not, so a test can tell "the client created two tasks because it retried a start whose answer
was lost" from "it created one". Safe to use from any thread, like :class:`~.state.EmulatorState`
which owns one.
"""

from __future__ import annotations

import copy
import secrets
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

from .packages import SEED_RESOURCES, Resource
from .plans import StartPlan
from .scripts import APIS, COZE


class StartBook:
    """Plans per API, the record of side effects (oldest first), the TrueWatch workspace's resources."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._plans: dict[str, list[StartPlan]] = {api: [] for api in APIS}
        self._started: list[dict[str, Any]] = []
        self._resources: dict[str, list[str]] = {}
        #: Every id handed out since the process started: never twice, not even across resets.
        self._ids: set[str] = set()
        self.reset()

    def reset(self) -> None:
        """No plans, nothing started, the seeded workspace resources."""
        with self._lock:
            for plans in self._plans.values():
                plans.clear()
            self._started.clear()
            self._resources = {kind: list(names) for kind, names in SEED_RESOURCES.items()}

    def add_plans(self, api: str, plans: Iterable[StartPlan]) -> int:
        """Queue plans after those pending; return how many starts the API's queue now answers."""
        with self._lock:
            self._plans[api].extend(plans)
            return sum(p.remaining for p in self._plans[api])

    def take(self, api: str, attrs: Mapping[str, str], creates: str | None) -> StartPlan | None:
        """The plan a start with these attributes uses, counted as used; None: the defaults.

        ``creates``: what the start would create (see ``StartPlan.fits``).

        The oldest fitting plan with a ``match`` wins over the oldest fitting one without.
        """
        with self._lock:
            queue = self._plans[api]
            fitting = [p for p in queue if p.fits(attrs, creates)]
            plan = next((p for p in fitting if p.match), fitting[0] if fitting else None)
            if plan is None:
                return None
            plan.remaining -= 1
            if plan.remaining == 0:
                queue.remove(plan)
            return plan

    def new_id(self, api: str) -> str:
        """A fresh id: Coze's are numeric strings like its own ("7530…"), TrueWatch's ``task_`` + hex."""
        with self._lock:
            while True:
                if api == COZE:
                    new = "7530" + str(secrets.randbelow(10**15)).zfill(15)
                else:
                    new = "task_" + secrets.token_hex(16)
                if new not in self._ids:
                    self._ids.add(new)
                    return new

    def note(self, api: str, task_id: str | None, kind: str, **what: str) -> dict[str, Any]:
        """Record a side effect, not answered yet; :meth:`answered` marks it once its answer went out."""
        entry = {"api": api, "task_id": task_id, "kind": kind, **what, "time": time.time(), "answered": False}
        with self._lock:
            self._started.append(entry)
        return entry

    def answered(self, entry: dict[str, Any]) -> None:
        with self._lock:
            entry["answered"] = True

    def started(
        self, api: str | None = None, since: float | None = None, until: float | None = None
    ) -> list[dict[str, Any]]:
        """The side effects (copies), oldest first, of ``api`` (all if None) in ``[since, until)``."""
        lo = float("-inf") if since is None else since
        hi = float("inf") if until is None else until
        with self._lock:
            return [
                dict(e) for e in self._started if (api is None or e["api"] == api) and lo <= e["time"] < hi
            ]

    def counts(self, since: float | None = None, until: float | None = None) -> dict[str, int]:
        """How many side effects each API's starts caused (every API listed, 0 included)."""
        counts = dict.fromkeys(APIS, 0)
        for entry in self.started(since=since, until=until):
            counts[entry["api"]] += 1
        return counts

    def resources(self) -> dict[str, list[str]]:
        """The TrueWatch workspace's resource names, by kind (a copy)."""
        with self._lock:
            return copy.deepcopy(self._resources)

    def set_resources(self, resources: Mapping[str, Iterable[str]]) -> None:
        """Replace the workspace's resources (already validated: see ``packages.check_resources``)."""
        with self._lock:
            self._resources = {kind: list(names) for kind, names in resources.items()}

    def import_resources(self, resources: Iterable[Resource]) -> None:
        """Add an import's resources to the workspace (a name already there stays once)."""
        with self._lock:
            for resource in resources:
                names = self._resources.setdefault(resource.kind, [])
                if resource.name not in names:
                    names.append(resource.name)
