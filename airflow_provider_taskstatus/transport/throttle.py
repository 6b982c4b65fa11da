"""Per-account pacing, shared by every request of one account in this process.

Two rules: after a rate limit, the whole account waits (not only the poll that was told off); and an
optional ``requests_per_minute`` spaces requests out before the server has to reject them. The
state is plain arithmetic on a clock value, so the sync and async transports share it.
"""

from __future__ import annotations

import hashlib
import threading


class AccountThrottle:
    def __init__(self, requests_per_minute: float | None = None) -> None:
        self._lock = threading.Lock()
        self._next_slot = 0.0
        self._blocked_until = 0.0
        self.interval = 0.0
        self.set_rate(requests_per_minute)

    def set_rate(self, requests_per_minute: float | None) -> None:
        if requests_per_minute is not None and requests_per_minute <= 0:
            raise ValueError(f"requests_per_minute must be positive, got {requests_per_minute}")
        self.interval = 60.0 / requests_per_minute if requests_per_minute else 0.0

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
            return start - now

    def block(self, now: float, seconds: float) -> None:
        """The account was rate limited: nobody sends for ``seconds``."""
        with self._lock:
            self._blocked_until = max(self._blocked_until, now + seconds)


_throttles: dict[str, AccountThrottle] = {}
_registry_lock = threading.Lock()


def account_key(api: str, base_url: str, secret: str) -> str:
    """One account = one API, endpoint and secret; the secret only as a short digest."""
    digest = hashlib.sha256(secret.encode()).hexdigest()[:16]
    return f"{api}|{base_url}|{digest}"


def throttle_for(key: str, requests_per_minute: float | None = None) -> AccountThrottle:
    """The process-wide throttle of an account (the latest configured rate wins)."""
    with _registry_lock:
        throttle = _throttles.get(key)
        if throttle is None:
            throttle = _throttles[key] = AccountThrottle(requests_per_minute)
        else:
            throttle.set_rate(requests_per_minute)
        return throttle


def forget_throttles() -> None:
    """Drop every account's pacing state (tests use it to keep one test's rate limit out of the next)."""
    with _registry_lock:
        _throttles.clear()
