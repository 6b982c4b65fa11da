"""Real Airflow processes for the end-to-end tests, on whichever release is installed (2.11 or 3.x).

:class:`RealAirflow` is a throw-away deployment: an Airflow home (SQLite, LocalExecutor) whose
``coze_default`` / ``truewatch_default`` connections point at a given emulator through
``AIRFLOW_CONN_*`` variables, and the release's processes, each in a session of its own with its
output in ``<AIRFLOW_HOME>/process-logs/``. Every socket is on 127.0.0.1; ``stop_all()`` stops the
processes (SIGTERM, then SIGKILL).

How runs are started and watched differs per release, behind :class:`Driver`:

* Airflow 3, :class:`RestDriver`: api-server, scheduler, dag-processor and triggerer; runs go through
  the REST API (``/api/v2``; SimpleAuthManager with every user an admin, so no login).
* Airflow 2.11, :class:`MetadataDbDriver`: a scheduler (it parses the DAG files itself, and its
  LocalExecutor runs ``airflow tasks run``) and a triggerer, nothing else. There is no API server to
  ask: runs are started with ``airflow dags trigger`` and watched by reading the SQLite metadata
  database (a CLI call costs seconds on a 2-core machine, a query a millisecond).
"""

from tests.real_airflow.deployment import RealAirflow
from tests.real_airflow.settings import PROCESS_COMMANDS, STARTUP_TIMEOUT, TIMEOUT_ACCOUNT_TOKEN, airflow_env

__all__ = ["PROCESS_COMMANDS", "STARTUP_TIMEOUT", "TIMEOUT_ACCOUNT_TOKEN", "RealAirflow", "airflow_env"]
