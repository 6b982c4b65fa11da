"""What the tests reach differently per Airflow release; the package's own differences are in its compat module."""

from __future__ import annotations

from typing import Any

from airflow_provider_taskstatus.compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_2_PLUS


def dag_bag(dag_folder: str) -> Any:
    """A DagBag of ``dag_folder``: in ``airflow.dag_processing`` from Airflow 3.2, ``airflow.models`` before."""
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]
    return DagBag(dag_folder=dag_folder)  # examples are off: AIRFLOW__CORE__LOAD_EXAMPLES in conftest


def deferral_timeout_resume() -> tuple[str, dict[str, Any]]:
    """The ``resume_execution`` arguments Airflow uses when a deferral times out."""
    if not AIRFLOW_V_3_0_PLUS:
        return "__fail__", {"error": "Trigger/execution timeout"}
    from airflow.sdk.bases.operator import TRIGGER_FAIL_REPR, TriggerFailureReason

    return TRIGGER_FAIL_REPR, {"error": TriggerFailureReason.TRIGGER_TIMEOUT}


def runtime_hooks() -> Any:
    """Connection type → hook info, as task code and ``Connection.get_hook()`` look hooks up."""
    if AIRFLOW_V_3_2_PLUS:
        from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

        return ProvidersManagerTaskRuntime().hooks
    from airflow.providers_manager import ProvidersManager

    return ProvidersManager().hooks
