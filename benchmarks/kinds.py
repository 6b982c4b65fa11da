"""The trigger kinds the benchmark holds: ours (Coze, TrueWatch) and the anchors (dbt Cloud, HTTP).

Each kind knows its emulator API, how to script its remote tasks "running" and then "finished", how
to build one trigger, and which event means success. Airflow is imported only in :meth:`Kind.make_trigger`,
so the orchestrator can use the rest without importing Airflow.
"""

from __future__ import annotations

import importlib
import json
import time
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_taskstatus.emulator.server import DEFAULT_COZE_TOKEN, DEFAULT_TRUEWATCH_KEY
from benchmarks.control import EmulatorClient

if TYPE_CHECKING:
    from airflow.triggers.base import BaseTrigger

#: The wait's timeout: far beyond any phase.
WAIT = 3600.0
DBT_ACCOUNT_ID = 4242
DBT_TOKEN = "dbt_bench_token"


class Kind:
    name: ClassVar[str]
    label: ClassVar[str]
    #: The ``api`` of its requests in the emulator's log.
    api: ClassVar[str]
    ours: ClassVar[bool] = False
    conn_id: ClassVar[str]

    def remote_id(self, index: int) -> str:
        return f"bench-{index}"

    @property
    def warm_id(self) -> str:
        """A remote task that is already finished: one trigger on it loads everything lazily loaded."""
        return "bench-warm"

    def prepare(self, client: EmulatorClient, ids: list[str]) -> None:
        """Make ``ids`` answer "running" (the stand-ins do until flipped)."""

    def flip(self, client: EmulatorClient, ids: list[str]) -> None:
        """Make ``ids`` answer "finished" from now on."""
        client.flip(self.api, ids)

    def make_trigger(self, remote_id: str, interval: float) -> BaseTrigger:
        raise NotImplementedError

    def succeeded(self, payload: Any) -> bool:
        return isinstance(payload, dict) and payload.get("status") == "success"


class _Ours(Kind):
    ours = True
    running: ClassVar[dict[str, Any]]
    finished: ClassVar[dict[str, Any]]
    #: The sensor whose trigger this kind holds; the trigger class is resolved as the sensor does.
    sensor_path: ClassVar[str]

    def make_trigger(self, remote_id: str, interval: float) -> BaseTrigger:
        module, _, name = self.sensor_path.rpartition(".")
        trigger_class = getattr(importlib.import_module(module), name).trigger_class()
        trigger: BaseTrigger = trigger_class(
            remote_id, self.conn_id, time.time() + WAIT, poll_interval=interval
        )
        return trigger

    def prepare(self, client: EmulatorClient, ids: list[str]) -> None:
        client.set_tasks(self.api, ids, [self.running])

    def flip(self, client: EmulatorClient, ids: list[str]) -> None:
        client.set_tasks(self.api, ids, [self.finished])


class Coze(_Ours):
    name = "coze"
    label = "CozeCopyTaskTrigger (ours)"
    api = "coze"
    conn_id = "bench_coze"
    running: ClassVar[dict[str, Any]] = {"task_status": "in_progress"}
    finished: ClassVar[dict[str, Any]] = {"task_status": "successful"}
    sensor_path = "airflow_provider_taskstatus.sensors.coze.CozeCopyTaskSensor"


class TrueWatch(_Ours):
    name = "truewatch"
    label = "TrueWatchActionTrigger (ours)"
    api = "truewatch"
    conn_id = "bench_truewatch"
    running: ClassVar[dict[str, Any]] = {"status": "running"}
    finished: ClassVar[dict[str, Any]] = {"status": "ok"}
    sensor_path = "airflow_provider_taskstatus.sensors.truewatch.TrueWatchActionSensor"


class DbtCloud(Kind):
    name = "dbt_cloud"
    label = "DbtCloudRunJobTrigger (anchor)"
    api = "dbt_cloud"
    conn_id = "bench_dbt"

    def remote_id(self, index: int) -> str:
        return str(100_000 + index)

    @property
    def warm_id(self) -> str:
        return "99999"

    def make_trigger(self, remote_id: str, interval: float) -> BaseTrigger:
        from airflow.providers.dbt.cloud.triggers.dbt import DbtCloudRunJobTrigger

        return DbtCloudRunJobTrigger(
            conn_id=self.conn_id,
            run_id=int(remote_id),
            end_time=time.time() + WAIT,
            poll_interval=interval,
            account_id=DBT_ACCOUNT_ID,
        )


class Http(Kind):
    name = "http"
    label = "HttpSensorTrigger (anchor)"
    api = "http"
    conn_id = "bench_http"

    def make_trigger(self, remote_id: str, interval: float) -> BaseTrigger:
        from airflow.providers.http.triggers.http import HttpSensorTrigger

        return HttpSensorTrigger(
            endpoint=f"bench/http/{remote_id}", http_conn_id=self.conn_id, poke_interval=interval
        )

    def succeeded(self, payload: Any) -> bool:
        return payload is True


KINDS: dict[str, Kind] = {kind.name: kind for kind in (Coze(), TrueWatch(), DbtCloud(), Http())}


def connection_env(port: int) -> dict[str, str]:
    """``AIRFLOW_CONN_*`` variables pointing every kind's connection at the emulator over HTTPS."""
    conns: dict[str, dict[str, Any]] = {
        Coze.conn_id: {
            "conn_type": "coze",
            "host": f"https://127.0.0.1:{port}",
            "password": DEFAULT_COZE_TOKEN,
        },
        # No pacing (0): these phases measure what a poll costs, with a thousand triggers on one key
        # of an emulator that enforces no budget; paced at TrueWatch's default (18 a minute per key)
        # they would send 9 requests in a 30 s window. The budget phase (budget.py) paces the key.
        TrueWatch.conn_id: {
            "conn_type": "truewatch",
            "host": f"https://127.0.0.1:{port}",
            "password": DEFAULT_TRUEWATCH_KEY,
            "extra": json.dumps({"requests_per_minute": 0}),
        },
        # DbtCloudHook builds https://{host}/api/v2/...: the port goes into the host ("tenant").
        DbtCloud.conn_id: {
            "conn_type": "dbt_cloud",
            "host": f"127.0.0.1:{port}",
            "login": str(DBT_ACCOUNT_ID),
            "password": DBT_TOKEN,
        },
        Http.conn_id: {"conn_type": "http", "host": "127.0.0.1", "port": port, "schema": "https"},
    }
    return {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(conn) for conn_id, conn in conns.items()}
