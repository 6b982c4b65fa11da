"""Offline emulator of the Coze copy-task and TrueWatch import/export status APIs.

Start it with ``taskstatus-emulator`` (or ``python -m airflow_provider_taskstatus.emulator``), from
Python with :class:`EmulatorServer`, or in tests with the ``taskstatus_emulator`` /
``taskstatus_emulator_fresh`` pytest fixtures. :mod:`.scripts` documents how to script a task's
lifecycle; :mod:`.limits` the request budgets (off by default).

The names below are imported on first use: the pytest plugin lives in this package and is loaded
into every pytest session where the provider is installed, so importing the package must not
import aiohttp.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .limits import RateLimits
    from .server import DEFAULT_COZE_TOKEN, DEFAULT_TRUEWATCH_KEY, EmulatorServer, airflow_connections

__all__ = [
    "DEFAULT_COZE_TOKEN",
    "DEFAULT_TRUEWATCH_KEY",
    "EmulatorServer",
    "RateLimits",
    "airflow_connections",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import server

        return getattr(server, name)  # the server module imports RateLimits too
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
