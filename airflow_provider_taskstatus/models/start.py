"""What a start call sends and what its answer means, for every API."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class StartRequest:
    """A call that must not be sent twice, built by an API adapter and sent by a transport: one that
    creates a remote task, or a token exchange (its JWT is spent once it arrives)."""

    path: str
    body: bytes | None = field(default=None, repr=False)
    content_type: str | None = None
    #: What the call does, for every message about it: "Coze copy of workflow '7530…'".
    what: str = "start call"
    #: Where a person checks whether the call created something, when its answer was lost.
    where_to_check: str = "the service's console"
    method: str = "POST"
    #: Whether an answer lost after sending may leave a remote task behind (then the call fails as
    #: ``UNCERTAIN``); a token exchange leaves none, and fails as the transient error it met.
    leaves_task: bool = True


@dataclass(frozen=True)
class Started:
    """A classified answer to a start call."""

    #: The remote task to wait for; None when the work finished within the call (a bot copied in
    #: its own workspace).
    task_id: str | None
    #: The API's ``data`` / ``content`` object.
    payload: dict[str, Any]
    message: str
    request_id: str | None = None
