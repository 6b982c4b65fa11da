"""What a start call sends and what its answer means, for every API."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class StartRequest:
    """A call that creates a remote task, built by an API adapter and sent by a transport."""

    path: str
    body: bytes | None = field(default=None, repr=False)
    content_type: str | None = None
    #: What the call does, for every message about it: "Coze copy of workflow '7530…'".
    what: str = "start call"
    #: Where a person checks whether the call created something, when its answer was lost.
    where_to_check: str = "the service's console"
    method: str = "POST"


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
