"""Clients of the emulator's start and status calls, for the start-call tests (plain ``requests``)."""

from __future__ import annotations

import time
from typing import Any

import requests

from airflow_provider_taskstatus.emulator import (
    DEFAULT_COZE_TOKEN,
    DEFAULT_TRUEWATCH_KEY,
    EmulatorServer,
    resource_zip,
)
from airflow_provider_taskstatus.emulator.packages import SEED_RESOURCES

COZE_AUTH = {"Authorization": f"Bearer {DEFAULT_COZE_TOKEN}"}
TW_AUTH = {"DF-API-KEY": DEFAULT_TRUEWATCH_KEY}
COPY_PATH = "/v1/entities/copy_tasks"
EXPORT_PATH = "/api/v1/workspace/resource/export/task/create"
UPLOAD_PATH = "/api/v1/workspace/resource/upload"
STATUS_PATH = "/api/v1/workspace/resource/query_action_status"
SEED = {kind: list(names) for kind, names in SEED_RESOURCES.items()}
NEW_PACKAGE = resource_zip({"monitor": ["Disk full"], "dashboard": ["Ops"], "pipeline": ["nginx"]})
#: One monitor and one dashboard that the seeded workspace already has, one explorer it has not.
CLASHING = resource_zip({"monitor": ["CPU usage high"], "dashboard": ["Host overview"], "explorer": ["New"]})


def copy_start(
    server: EmulatorServer, body: Any, headers: dict[str, str] | None = None, timeout: float = 5
) -> requests.Response:
    return requests.post(
        server.base_url + COPY_PATH,
        json=body,
        headers=COZE_AUTH if headers is None else headers,
        timeout=timeout,
    )


def export_start(
    server: EmulatorServer, headers: dict[str, str] | None = None, timeout: float = 5
) -> requests.Response:
    return requests.post(
        server.base_url + EXPORT_PATH, headers=TW_AUTH if headers is None else headers, timeout=timeout
    )


def upload(
    server: EmulatorServer,
    package: bytes | None = NEW_PACKAGE,
    options: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> requests.Response:
    files = None if package is None else {"files": ("resources.zip", package, "application/zip")}
    return requests.post(
        server.base_url + UPLOAD_PATH,
        files=files,
        data=options or {},
        headers=TW_AUTH if headers is None else headers,
        timeout=5,
    )


def coze_data(server: EmulatorServer, task_id: str) -> dict[str, Any]:
    r = requests.get(f"{server.base_url}{COPY_PATH}/{task_id}", headers=COZE_AUTH, timeout=5)
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()["data"]
    return data


def tw_content(server: EmulatorServer, task_id: str) -> dict[str, Any]:
    r = requests.get(server.base_url + STATUS_PATH, params={"taskId": task_id}, headers=TW_AUTH, timeout=5)
    assert r.status_code == 200, r.text
    content: dict[str, Any] = r.json()["content"]
    return content


def control(server: EmulatorServer, method: str, path: str, **kwargs: Any) -> requests.Response:
    return requests.request(method, f"{server.base_url}/_emulator/{path}", timeout=5, **kwargs)


def wait_for(predicate: Any, seconds: float = 3) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
