"""Per-account pacing, shared by every request of one account in this process.

Each account (API, endpoint and secret) has a rate, in requests per minute, that this process keeps
to. It starts at the account's budget (:func:`budget`) and adapts to the answers the server gives:

- a rate-limit answer halves the rate in use (at most once a minute, :data:`COOLDOWN`), and a
  ``Retry-After`` pauses the whole account;
- every accepted request grows the rate by :data:`GROWTH` of a request per minute, i.e. by 2 % a
  minute while the account keeps sending, up to the budget.

That is how several processes (triggerers, workers) share one budget without knowing of each other:
a process that sends more meets more of the rejections and halves from higher up, so their rates
converge to about a share each, and the slow growth keeps the rejections rare once they have (the
README's "Request budgets" section has the measurements). The state is plain arithmetic on a clock
value, so the sync and async transports share it; the async transport queues its callers in a
:class:`~airflow_provider_taskstatus.transport.turnstile.Turnstile` so that they take turns.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import math
import threading

log = logging.getLogger(__name__)

#: Each accepted request adds this to the rate (requests per minute): a process sending r a minute
#: grows r x 2 % a minute. Slow on purpose: once a dozen processes on one budget have converged,
#: rejections stay rare; the price is that a process wins back a halving in about 35 minutes.
GROWTH = 0.02
#: On a rate limit, the rate in use is multiplied by this.
DECREASE = 0.5
#: Seconds after a decrease during which further rate limits cut nothing more: TrueWatch counts a
#: sliding minute, so the server's count shows a cut only a minute later; until then its answers
#: speak of the old rate (and a burst of other processes' first polls does not cut it again and again).
COOLDOWN = 60.0
#: The slowest pace (requests per minute): one request every 5 minutes, so that a crowded account
#: still reaches every wait; the sensor's timeout bounds the rest.
MIN_RATE = 0.2
#: Share of an API's documented budget a process paces at by default: room for clock jitter,
#: a console user, and the server's window not lining up with ours.
DOCUMENTED_SHARE = 0.9
#: Sends remembered to measure the rate in use (a poke-mode sensor sends slower than its rate).
RECENT_SENDS = 8


class AccountThrottle:
    """The pacing state of one account in this process; thread-safe.

    :param requests_per_minute: the budget, the highest rate this process paces at; ``None`` for an
        account without one, which then goes unpaced until a rate limit says otherwise.
    :param name: how log lines name the account (never its secret).
    """

    def __init__(self, requests_per_minute: float | None = None, name: str = "account") -> None:
        self.name = name
        self._lock = threading.Lock()
        self._next_slot = 0.0
        self._blocked_until = 0.0
        self._last_cut = -math.inf
        self._sent: collections.deque[float] = collections.deque(maxlen=RECENT_SENDS)
        self.ceiling = math.inf
        self.rate = math.inf
        self.limits = 0
        self.set_budget(requests_per_minute)

    def set_budget(self, requests_per_minute: float | None) -> None:
        """The highest rate; a lower one in use stays (the server has said so), a higher one is cut."""
        if requests_per_minute is not None and requests_per_minute <= 0:
            raise ValueError(f"requests_per_minute must be positive, got {requests_per_minute}")
        with self._lock:
            self.ceiling = requests_per_minute or math.inf
            if self.limits == 0 or self.rate > self.ceiling:
                self.rate = self.ceiling

    @property
    def interval(self) -> float:
        """Seconds between two requests at the current rate."""
        return 60.0 / self.rate

    def reserve(self, now: float, until: float | None = None) -> float | None:
        """Take the next free slot; return how many seconds to wait for it.

        ``None`` when the slot starts at or after ``until`` (a wait's deadline): then nothing is
        taken, so the account's next request does not wait for a slot nobody uses.
        """
        with self._lock:
            start = max(now, self._blocked_until, self._next_slot)
            if until is not None and start >= until:
                return None
            self._next_slot = start + self.interval
            self._sent.append(start)
            return start - now

    def free_at(self, now: float) -> float:
        """When the next slot opens (``now`` if it is open)."""
        with self._lock:
            return max(now, self._blocked_until, self._next_slot)

    def accepted(self) -> None:
        """The server took a request: the rate grows, up to the budget."""
        with self._lock:
            if self.rate < self.ceiling:
                self.rate = min(self.ceiling, self.rate + GROWTH)

    def limited(self, now: float, pause: float | None = None) -> None:
        """The server answered a rate limit: cut the rate in use; with ``pause``, nobody sends for that long."""
        if pause:
            self.block(now, pause)
        with self._lock:
            self.limits += 1
            if now - self._last_cut < COOLDOWN:
                return
            self._last_cut = now
            was = min(self.rate, self._rate_in_use(now))
            self.rate = max(MIN_RATE, DECREASE * was)
            # Requests already spaced at the old rate wait for the new one.
            self._next_slot = max(self._next_slot, now + self.interval)
        log.info(
            "%s answered a rate limit: this process now sends it %.2g requests a minute (was %.2g).",
            self.name,
            self.rate,
            was,
        )

    def block(self, now: float, seconds: float) -> None:
        """Nobody sends for ``seconds``."""
        with self._lock:
            self._blocked_until = max(self._blocked_until, now + seconds)

    def _rate_in_use(self, now: float) -> float:
        """Requests per minute actually sent in the last minute: a slow poller cuts from its pace, not
        its budget, and sends before an idle spell do not count (they would make the pace look slow)."""
        recent = [t for t in self._sent if t > now - 60.0]
        if len(recent) < 2 or recent[-1] <= recent[0]:
            return self.rate if self.rate < math.inf else 60.0
        return 60.0 * (len(recent) - 1) / (recent[-1] - recent[0])


def budget(documented: float | None, configured: float | None) -> float | None:
    """The rate a process paces an account at: the connection's ``requests_per_minute`` if set (0:
    none), else a share of what the API documents, else none."""
    if configured is not None:
        return configured or None
    return documented * DOCUMENTED_SHARE if documented else None


_throttles: dict[str, AccountThrottle] = {}
_registry_lock = threading.Lock()


def account_key(api: str, base_url: str, secret: str) -> str:
    """One account = one API, endpoint and secret; the secret only as a short digest."""
    digest = hashlib.sha256(secret.encode()).hexdigest()[:16]
    return f"{api}|{base_url}|{digest}"


def throttle_for(key: str, requests_per_minute: float | None = None) -> AccountThrottle:
    """The process-wide throttle of an account (the latest configured budget wins)."""
    with _registry_lock:
        throttle = _throttles.get(key)
        if throttle is None:
            api, base_url, digest = key.split("|")
            name = f"The {api} account at {base_url} (secret {digest[:6]}…)"
            throttle = _throttles[key] = AccountThrottle(requests_per_minute, name)
        elif throttle.ceiling != (requests_per_minute or math.inf):
            throttle.set_budget(requests_per_minute)
        return throttle


def forget_throttles() -> None:
    """Drop every account's pacing state (tests use it to keep one test's rate limit out of the next)."""
    with _registry_lock:
        _throttles.clear()
