"""The reliability table: every injected fault, what the sensor does, and what it costs in requests.

``tests/test_reliability.py`` runs every row in both modes against the emulator and asserts the
outcome and the exact request count; the README's reliability section is this table rendered
(``python -m tests.reliability_matrix`` prints it, and a test checks that the README matches).

Each fault is placed in a script after one normal "still running" answer, so that in deferrable
mode the sensor really defers before meeting it:

- *burst*: the fault answers twice, then the task succeeds: a poll's retries ride it out;
- *paced*: a rate limit answers twice, then the task succeeds: not retried within the poll (the
  account slows down), and the two rate-limited polls do not count as failed ones;
- *persistent*: the fault answers every request from then on;
- *fatal*: the fault answers once; the wait must end at once;
- *limited*: a rate limit answers every request from then on: the service is up and busy, so the
  wait goes on, paced, until the sensor timeout (:data:`LIMITED_TIMEOUT` here).

Counts assume the default request policy (``max_retries=2``, ``max_consecutive_failures=5``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

COZE, TRUEWATCH = "coze", "truewatch"
RUNNING = {COZE: {"task_status": "in_progress"}, TRUEWATCH: {"status": "running"}}
DONE = {COZE: {"task_status": "successful"}, TRUEWATCH: {"status": "ok"}}
MAX_RETRIES = 2
MAX_CONSECUTIVE_FAILURES = 5
#: The client timeout for the slow-answer rows; the emulator answers later than that.
SLOW_TIMEOUT = 0.3
#: The sensor timeout of the *limited* rows, in seconds.
LIMITED_TIMEOUT = 2.0


@dataclass(frozen=True)
class Row:
    fault: str
    api: str
    step: dict[str, Any]
    kind: str  # "burst" | "paced" | "persistent" | "fatal" | "limited"

    @property
    def steps(self) -> list[dict[str, Any]]:
        if self.kind in ("burst", "paced"):
            return [RUNNING[self.api], {**self.step, "repeat": 2}, DONE[self.api]]
        return [RUNNING[self.api], self.step]

    @property
    def outcome(self) -> str:
        return {"burst": "success", "paced": "success", "limited": "timeout"}.get(self.kind, "error")

    @property
    def requests(self) -> int:
        """Exact requests: one "running" poll, then the fault's cost (for *limited*: the fewest)."""
        per_poll = MAX_RETRIES + 1
        cost = {
            "burst": per_poll,
            "paced": 2 + 1,
            "persistent": MAX_CONSECUTIVE_FAILURES * per_poll,
            "fatal": 1,
        }
        # A limited wait outlives the failure budget: more rate-limited polls (one request each) than
        # the failed polls that would end it.
        return 1 + cost.get(self.kind, MAX_CONSECUTIVE_FAILURES + 1)

    @property
    def id(self) -> str:
        return f"{self.api}-{self.kind}-{self.fault}"


def both(fault: str, step: dict[str, Any], kind: str) -> list[Row]:
    return [Row(fault, COZE, step, kind), Row(fault, TRUEWATCH, step, kind)]


HTML = "<html><body>502 Bad Gateway</body></html>"

ROWS: list[Row] = [
    *both(
        "HTTP 429 with Retry-After: 1",
        {"http_status": 429, "body": "slow down", "headers": {"Retry-After": "1"}},
        "paced",
    ),
    *both("HTTP 429 without Retry-After", {"http_status": 429, "body": "slow down"}, "paced"),
    *both("HTTP 500", {"http_status": 500, "body": HTML}, "burst"),
    *both("HTTP 502", {"http_status": 502, "body": HTML}, "burst"),
    *both("HTTP 503", {"http_status": 503, "body": HTML}, "burst"),
    *both("HTTP 504", {"http_status": 504, "body": HTML}, "burst"),
    *both("connection reset", {"reset": True}, "burst"),
    *both(
        f"answer slower than the client timeout ({SLOW_TIMEOUT} s)",
        {"delay": 0.8, "http_status": 200, "body": {}},
        "burst",
    ),
    *both("HTML body with HTTP 200", {"http_status": 200, "body": HTML}, "burst"),
    Row("truncated JSON", COZE, {**DONE[COZE], "truncate": True}, "burst"),
    Row("truncated JSON", TRUEWATCH, {**DONE[TRUEWATCH], "truncate": True}, "burst"),
    Row(
        "envelope without data.task_status",
        COZE,
        {"http_status": 200, "body": {"code": 0, "msg": "", "data": {}}},
        "burst",
    ),
    Row(
        "envelope without content.status",
        TRUEWATCH,
        {"http_status": 200, "body": {"code": 200, "success": True}},
        "burst",
    ),
    Row("code 4013 (rate limited), HTTP 429", COZE, {"code": 4013, "msg": "rate limited"}, "paced"),
    Row(
        "code 4013 (rate limited), HTTP 200",
        COZE,
        {"code": 4013, "msg": "rate limited", "http_status": 200},
        "paced",
    ),
    Row("code 4000 (bad request), HTTP 400", COZE, {"code": 4000, "msg": "bad param"}, "fatal"),
    Row(
        "code 4000 (bad request), HTTP 200",
        COZE,
        {"code": 4000, "msg": "bad param", "http_status": 200},
        "fatal",
    ),
    Row("code 4100 (auth / region), HTTP 401", COZE, {"code": 4100, "msg": "auth invalid"}, "fatal"),
    Row(
        "code 4100 (auth / region), HTTP 200",
        COZE,
        {"code": 4100, "msg": "auth invalid", "http_status": 200},
        "fatal",
    ),
    Row("code 4101 (permission), HTTP 403", COZE, {"code": 4101, "msg": "denied"}, "fatal"),
    Row(
        "code 4101 (permission), HTTP 200", COZE, {"code": 4101, "msg": "denied", "http_status": 200}, "fatal"
    ),
    Row("code 4200 (not found), HTTP 404", COZE, {"code": 4200, "msg": "not found"}, "fatal"),
    Row(
        "code 4200 (not found), HTTP 200",
        COZE,
        {"code": 4200, "msg": "not found", "http_status": 200},
        "fatal",
    ),
    Row(
        "ft.InvalidAPIKey, HTTP 403",
        TRUEWATCH,
        {"errorCode": "ft.InvalidAPIKey", "message": "bad key"},
        "fatal",
    ),
    Row(
        "ft.InvalidAPIKey, HTTP 401",
        TRUEWATCH,
        {"errorCode": "ft.InvalidAPIKey", "message": "bad key", "http_status": 401},
        "fatal",
    ),
    Row(
        "ft.TriggerApiAkCurrentLimiting, HTTP 401",
        TRUEWATCH,
        {"errorCode": "ft.TriggerApiAkCurrentLimiting"},
        "paced",
    ),
    Row(
        "ft.TriggerApiWorkspaceCurrentLimiting, HTTP 401",
        TRUEWATCH,
        {"errorCode": "ft.TriggerApiWorkspaceCurrentLimiting"},
        "paced",
    ),
    Row("status the docs do not list", COZE, {"task_status": "queued_for_review"}, "burst"),
    Row("status the docs do not list", TRUEWATCH, {"status": "pending_review"}, "burst"),
    *both("HTTP 503 that never ends", {"http_status": 503, "body": HTML}, "persistent"),
    Row(
        "ft.TriggerApiAkCurrentLimiting that never ends",
        TRUEWATCH,
        {"errorCode": "ft.TriggerApiAkCurrentLimiting"},
        "limited",
    ),
    Row("code 4020 (requests per minute) that never ends", COZE, {"code": 4020}, "limited"),
]

#: How each kind of fault ends, in both modes.
OUTCOMES = {
    "burst": "success, after the retries of one poll",
    "paced": "success, after two rate-limited polls (not retried within a poll, not counted as failed polls)",
    "persistent": f"failed after {MAX_CONSECUTIVE_FAILURES} failed polls in a row (`TaskStatusError`, normal task retries)",
    "fatal": "failed at once (`TaskStatusError`, normal task retries), no further request",
    "limited": "keeps waiting, paced slower, until the sensor timeout (`AirflowSensorTimeout`): a rate limit is not a failed poll",
}
PATTERNS = {
    "burst": "×2, then done",
    "paced": "×2, then done",
    "persistent": "on every answer",
    "fatal": "once",
    "limited": "on every answer",
}


def render_table() -> str:
    """The README table; requests are the same in both modes, so one column serves both."""
    lines = [
        "| fault | API | outcome (poke and deferrable) | HTTP requests (poke / deferrable) |",
        "|---|---|---|---|",
    ]
    for row in ROWS:
        api = "Coze" if row.api == COZE else "TrueWatch"
        count = f"{row.requests} / {row.requests}" if row.kind != "limited" else "as paced, until the timeout"
        lines.append(f"| {row.fault} ({PATTERNS[row.kind]}) | {api} | {OUTCOMES[row.kind]} | {count} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(render_table())
