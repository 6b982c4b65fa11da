"""Every difference between the Airflow releases we support (2.11, 3.0-3.3), in one place.

Airflow names themselves come through ``airflow.providers.common.compat``, which maps them per
release; what it does not cover is here, keyed on the release (the ``version_compat`` idea of
Airflow's own providers). Other modules only read the flags below; none catches an ImportError.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from airflow import __version__ as AIRFLOW_VERSION
from packaging.version import Version

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import BaseHook, Connection


_RELEASE = (*Version(AIRFLOW_VERSION).release, 0, 0)[:3]  # "3.2" reads as (3, 2, 0)

AIRFLOW_V_3_0_PLUS = _RELEASE >= (3, 0, 0)
AIRFLOW_V_3_1_PLUS = _RELEASE >= (3, 1, 0)
#: Connection forms from provider info (``conn-fields``); before it, from the hook class.
AIRFLOW_V_3_2_PLUS = _RELEASE >= (3, 2, 0)

__all__ = [
    "AIRFLOW_VERSION",
    "AIRFLOW_V_3_0_PLUS",
    "AIRFLOW_V_3_1_PLUS",
    "AIRFLOW_V_3_2_PLUS",
    "aget_connection",
    "amask_secret",
    "deferral_timed_out",
    "mask_secret",
]


def deferral_timed_out(next_method: str, next_kwargs: dict[str, Any] | None) -> bool:
    """Whether Airflow 2.11 resumes a task because its deferral timed out.

    Airflow 3 turns that into ``AirflowSensorTimeout`` for sensors; 2.11 raises a retryable
    ``TaskDeferralError`` with this error text (set by its scheduler's trigger-timeout check).
    """
    return (
        not AIRFLOW_V_3_0_PLUS
        and next_method == "__fail__"
        and (next_kwargs or {}).get("error") == "Trigger/execution timeout"
    )


def mask_secret(secret: str) -> None:
    """Register a secret with Airflow's masker, so no log line can show it (sync paths)."""
    from airflow.providers.common.compat.sdk import mask_secret as airflow_mask_secret

    airflow_mask_secret(secret)


async def amask_secret(secret: str) -> None:
    """:func:`mask_secret` for code on an event loop, such as a trigger.

    In Airflow 3's triggerer the synchronous call may talk to the supervisor while another trigger's
    request to it is in flight, and then raises ``DeadlockImminentError``. Airflow 3.3.2 has an
    async variant; before it, the synchronous call runs in a worker thread, where blocking is safe.
    """
    try:
        from airflow.sdk.log import amask_secret as airflow_amask_secret
    except ImportError:  # Airflow 2.11 to 3.3.1
        await asyncio.to_thread(mask_secret, secret)
    else:
        await airflow_amask_secret(secret)


async def aget_connection(hook: BaseHook, conn_id: str) -> tuple[Connection, dict[str, Any]]:
    """The connection and its extra, read without blocking the event loop, on every release.

    ``BaseHook.aget_connection`` appears in Airflow 3.1, and until 3.3.2 it (and ``extra_dejson``)
    masks secrets with a synchronous call to the supervisor; common-compat picks what is safe on the
    running release.
    """
    from airflow.providers.common.compat.connection import get_async_connection, get_async_extra_dejson

    conn = await get_async_connection(conn_id, hook)
    return conn, await get_async_extra_dejson(conn)
