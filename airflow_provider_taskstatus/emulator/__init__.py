"""Offline emulator of the Coze copy-task and TrueWatch import/export status APIs.

Start it with ``taskstatus-emulator`` (or ``python -m airflow_provider_taskstatus.emulator``), from
Python with :class:`EmulatorServer`, or in tests with the ``taskstatus_emulator`` / ``emulator``
pytest fixtures. :mod:`.scripts` documents how to script a task's lifecycle.
"""

from .server import DEFAULT_COZE_TOKEN, DEFAULT_TRUEWATCH_KEY, EmulatorServer, airflow_connections

__all__ = ["DEFAULT_COZE_TOKEN", "DEFAULT_TRUEWATCH_KEY", "EmulatorServer", "airflow_connections"]
