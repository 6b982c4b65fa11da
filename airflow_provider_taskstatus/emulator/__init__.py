"""Offline emulator of the Coze copy-task and TrueWatch import/export task APIs: start and status calls.

Start it with ``taskstatus-emulator`` (or ``python -m airflow_provider_taskstatus.emulator``), from
Python with :class:`EmulatorServer`, or in tests with the ``taskstatus_emulator`` /
``taskstatus_emulator_fresh`` pytest fixtures. :mod:`.scripts` documents how to script a task's
lifecycle; :mod:`.plans` how to script the start calls (their faults, the tasks they create);
:mod:`.packages` the resource zip TrueWatch's import takes (:func:`resource_zip` builds one);
:mod:`.limits` the request budgets (off by default); :mod:`.oauth` Coze's OAuth JWT token exchange
(service apps registered with ``EmulatorServer.add_oauth_app`` or ``--oauth-app``); :mod:`.control`
the ``/_emulator`` endpoints.

The names below are imported on first use: the pytest plugin lives in this package and is loaded
into every pytest session where the provider is installed, so importing the package must not
import aiohttp.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .limits import RateLimits
    from .packages import resource_zip
    from .server import DEFAULT_COZE_TOKEN, DEFAULT_TRUEWATCH_KEY, EmulatorServer, airflow_connections

#: Each public name and the module it comes from.
_HOMES = {
    "DEFAULT_COZE_TOKEN": "server",
    "DEFAULT_TRUEWATCH_KEY": "server",
    "EmulatorServer": "server",
    "RateLimits": "limits",
    "airflow_connections": "server",
    "resource_zip": "packages",
}
__all__ = [
    "DEFAULT_COZE_TOKEN",
    "DEFAULT_TRUEWATCH_KEY",
    "EmulatorServer",
    "RateLimits",
    "airflow_connections",
    "resource_zip",
]


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
