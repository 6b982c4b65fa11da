"""Request budgets: the emulator refuses requests over a per-credential / per-workspace rate, as the services do.

TrueWatch (Guance) documents 20 requests a minute per API key and 200 per workspace, and answers
beyond them with HTTP 401 and ``errorCode`` ``ft.TriggerApiAkCurrentLimiting`` (per key) or
``ft.TriggerApiWorkspaceCurrentLimiting`` (per workspace). Coze answers a per-minute limit with
``code`` 4020; its HTTP status is unconfirmed, the emulator sends 429. Budgets are off by default
(:class:`RateLimits` with every limit None), so nothing changes unless a test asks for them.

The window slides: a request is accepted when fewer than ``limit`` requests were *accepted* for its
credential (and, for TrueWatch, its workspace) in the last ``window`` seconds. Rejected requests are
not counted, so a client that keeps polling while limited gets through as soon as its oldest
accepted request leaves the window: its budget depends only on what it was served, which keeps
tests deterministic. (Whether the real services count refused calls is not documented.)

Start calls and status calls spend the same budgets (the services' limits are per key, whatever
the call). Pure logic, no aiohttp: the handlers in :mod:`.coze` and :mod:`.truewatch` ask
:meth:`RateLimiter.admit` and send the :class:`Rejection` it returns.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from .scripts import COZE, TRUEWATCH
from .validation import SpecError, check_keys

#: The workspace of every TrueWatch key that :attr:`RateLimits.workspaces` does not map.
DEFAULT_WORKSPACE = "wksp_emulator"
#: The values of a rejected request's ``limited`` field in the request log.
KEY, WORKSPACE = "key", "workspace"

_LIMIT_FIELDS = ("truewatch_per_key", "truewatch_per_workspace", "coze_per_token")


@dataclass(frozen=True)
class RateLimits:
    """How many requests each credential and workspace may make per ``window`` seconds; None: unlimited.

    ``workspaces`` maps TrueWatch keys to workspaces (keys sharing one share its budget); unmapped
    keys belong to :data:`DEFAULT_WORKSPACE`. A limit of 0 refuses every request. Raises
    :class:`~.validation.SpecError` (a ValueError) on a value it cannot use.
    """

    truewatch_per_key: int | None = None
    truewatch_per_workspace: int | None = None
    coze_per_token: int | None = None
    window: float = 60.0
    workspaces: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in _LIMIT_FIELDS:
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                raise SpecError(f"{name} must be a non-negative integer or null (unlimited), got {value!r}")
        window = self.window
        if not isinstance(window, int | float) or isinstance(window, bool) or not 0 < window < math.inf:
            raise SpecError(f"window must be a positive number of seconds, got {window!r}")
        spaces = self.workspaces
        if not isinstance(spaces, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) and v for k, v in spaces.items()
        ):
            raise SpecError("workspaces must map TrueWatch keys to non-empty workspace names (strings)")
        object.__setattr__(self, "window", float(window))
        object.__setattr__(self, "workspaces", dict(spaces))

    @classmethod
    def from_json(cls, body: object) -> RateLimits:
        """The whole configuration from a ``POST /_emulator/limits`` body: omitted keys take their defaults."""
        if not isinstance(body, dict):
            raise SpecError("body must be a JSON object")
        check_keys(body, (*_LIMIT_FIELDS, "window", "workspaces"), "limits")
        return cls(**body)

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"workspaces": dict(self.workspaces)}

    def workspace_of(self, key: str) -> str:
        return self.workspaces.get(key, DEFAULT_WORKSPACE)

    @property
    def unlimited(self) -> bool:
        return all(getattr(self, name) is None for name in _LIMIT_FIELDS)

    def describe(self) -> str:
        """One line for the CLI's banner, e.g. ``truewatch 20/key 200/workspace, coze 5/token per 60 s``."""
        budgets = [
            (TRUEWATCH, self.truewatch_per_key, KEY),
            (TRUEWATCH, self.truewatch_per_workspace, WORKSPACE),
            (COZE, self.coze_per_token, "token"),
        ]
        parts: dict[str, list[str]] = {}
        for api, limit, per in budgets:
            if limit is not None:
                parts.setdefault(api, []).append(f"{limit}/{per}")
        if not parts:
            return "none"
        return ", ".join(f"{api} {' '.join(p)}" for api, p in parts.items()) + f" per {self.window:g} s"


@dataclass(frozen=True)
class Rejection:
    """The answer to a request over budget: ``scope`` is :data:`KEY` or :data:`WORKSPACE`."""

    scope: str
    http_status: int
    code: int | str
    message: str


class RateLimiter:
    """Sliding-window counters of accepted requests, safe to use from any thread.

    The credentials are dictionary keys in memory only: they are never logged or returned.
    """

    def __init__(self, limits: RateLimits | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._limits = limits or RateLimits()
        self._windows: dict[tuple[str, str], deque[float]] = {}

    @property
    def limits(self) -> RateLimits:
        with self._lock:
            return self._limits

    def configure(self, limits: RateLimits | None) -> None:
        """Use ``limits`` (None: unlimited) from now on, starting from empty windows."""
        with self._lock:
            self._limits = limits or RateLimits()
            self._windows.clear()

    def clear(self) -> None:
        """Forget the requests counted so far; keep the configuration."""
        with self._lock:
            self._windows.clear()

    def admit(self, api: str, credential: str) -> Rejection | None:
        """Count an authenticated request and return None, or return why it is refused (not counted).

        The per-credential limit is checked before the workspace one, so a key over its own budget is
        told so even when its workspace is over budget too.
        """
        now = self._clock()
        with self._lock:
            limits = self._limits
            buckets = [(s, b, n) for s, b, n in _buckets(limits, api, credential) if n is not None]
            for scope, bucket, limit in buckets:
                window = self._windows.setdefault(bucket, deque())
                while window and window[0] <= now - limits.window:
                    window.popleft()
                if len(window) >= limit:
                    return _rejection(api, scope, limit, limits.window)
            for _, bucket, _ in buckets:
                self._windows[bucket].append(now)
            return None


def _buckets(limits: RateLimits, api: str, credential: str) -> list[tuple[str, tuple[str, str], int | None]]:
    """``(scope, counter id, limit)`` for each budget a request of ``api`` spends, in checking order."""
    if api == COZE:
        return [(KEY, ("coze:" + KEY, credential), limits.coze_per_token)]
    if api == TRUEWATCH:
        return [
            (KEY, ("truewatch:" + KEY, credential), limits.truewatch_per_key),
            (
                WORKSPACE,
                ("truewatch:" + WORKSPACE, limits.workspace_of(credential)),
                limits.truewatch_per_workspace,
            ),
        ]
    return []


def _rejection(api: str, scope: str, limit: int, window: float) -> Rejection:
    per = f"{limit} requests per {window:g} s"
    if api == COZE:
        return Rejection(scope, 429, 4020, f"requests per minute exceeded: this token may make {per}")
    if scope == KEY:
        return Rejection(scope, 401, "ft.TriggerApiAkCurrentLimiting", f"API key rate limit exceeded ({per})")
    return Rejection(
        scope, 401, "ft.TriggerApiWorkspaceCurrentLimiting", f"workspace rate limit exceeded ({per})"
    )
