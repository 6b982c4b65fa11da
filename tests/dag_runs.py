"""Run DAGs through ``airflow dags test`` against the emulator, several at once.

``scripts/demo.py`` provides the helpers, so ``make demo`` and the tests run DAGs the same way. Each
run gets its own Airflow home, cloned from one database migrated once per session, so SQLite is
never shared between the parallel runs.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from airflow_provider_taskstatus.emulator import EmulatorServer

REPO = Path(__file__).resolve().parent.parent


def _load_demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("taskstatus_demo", REPO / "scripts" / "demo.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


demo = _load_demo()


@pytest.fixture(scope="session")
def migrated_airflow_home(
    tmp_path_factory: pytest.TempPathFactory, taskstatus_emulator: EmulatorServer
) -> Path:
    """An Airflow home with a migrated SQLite database, made once per session."""
    home = tmp_path_factory.mktemp("airflow-home")
    demo.ensure_db(demo.airflow_env(taskstatus_emulator.base_url, home))
    return home


def run_in_parallel(
    specs: Mapping[str, Any],
    tmp_path_factory: pytest.TempPathFactory,
    emulator: EmulatorServer,
    migrated_home: Path,
    adjust_env: Callable[[str, Any, dict[str, str]], None] | None = None,
    max_workers: int | None = None,
) -> dict[str, Any]:
    """``demo.run_dag`` for each ``name → DagRunSpec``, in parallel; ``adjust_env`` may edit each run's env.

    ``max_workers``: how many run at once; by default one per core, at least two.
    """

    def run(name: str, spec: Any) -> Any:
        home = tmp_path_factory.mktemp(f"airflow-{name}")
        shutil.copy2(migrated_home / "airflow.db", home / "airflow.db")
        env = demo.airflow_env(emulator.base_url, home)
        if adjust_env is not None:
            adjust_env(name, spec, env)
        return demo.run_dag(spec.dag_id, env, spec.conf)

    workers = max_workers if max_workers is not None else max(2, os.cpu_count() or 2)
    with ThreadPoolExecutor(max_workers=min(len(specs), workers)) as pool:
        futures = {name: pool.submit(run, name, spec) for name, spec in specs.items()}
        return {name: future.result() for name, future in futures.items()}


def explain(result: Any) -> str:
    return f"{result.dag_id} {result.conf} ended {result.state}; last output:\n" + "\n".join(
        result.output.splitlines()[-40:]
    )
