"""What importing the sensor modules adds to a DAG file's parse, over ``import airflow.sdk``.

Each run is a fresh interpreter that times, in-process, ``import airflow.sdk`` and then the two
sensor modules; the reported figure is the median of the runs, after one discarded warm-up run that
fills the OS file cache and the bytecode cache. The bytecode cache goes to a private
``PYTHONPYCACHEPREFIX`` (nothing is written into the checkout or the venv), and
``PYTHONDONTWRITEBYTECODE`` is lifted for these runs: an Airflow deployment has its ``.pyc`` files.
The same figure without any bytecode cache (every module compiled at import) is recorded too.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

SENSOR_MODULES = ("airflow_provider_taskstatus.sensors.coze", "airflow_provider_taskstatus.sensors.truewatch")

_PROBE = f"""
import json, time
t0 = time.perf_counter()
import airflow.sdk
t1 = time.perf_counter()
import {", ".join(SENSOR_MODULES)}
t2 = time.perf_counter()
print(json.dumps([t1 - t0, t2 - t1]))
"""

#: The same, with the sensor base class a DAG that uses any sensor imports anyway, loaded first.
_PROBE_AFTER_BASE = _PROBE.replace(
    "import airflow.sdk\n", "import airflow.sdk\nfrom airflow.sdk import BaseSensorOperator, dag, task\n"
)


@dataclass(frozen=True)
class ImportTimes:
    runs: int
    #: Median seconds of ``import airflow.sdk`` in a fresh interpreter.
    sdk: float
    #: Median seconds the sensor modules add after ``import airflow.sdk``.
    sensors: float
    sensors_all: list[float]
    #: Median seconds they add when ``BaseSensorOperator``, ``dag`` and ``task`` are already imported.
    sensors_after_base: float
    #: Median seconds of ``import airflow.sdk`` and of the sensor modules with no bytecode cache.
    sdk_uncached: float
    sensors_uncached: float


def _probe(code: str, env: Mapping[str, str]) -> tuple[float, float]:
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=dict(env), timeout=120, check=True
    )
    sdk, sensors = json.loads(out.stdout.strip().splitlines()[-1])
    return float(sdk), float(sensors)


def measure_imports(env: Mapping[str, str], pycache: Path, runs: int = 7) -> ImportTimes:
    cached = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
    cached["PYTHONPYCACHEPREFIX"] = str(pycache)
    uncached = {k: v for k, v in env.items() if k != "PYTHONPYCACHEPREFIX"}
    uncached["PYTHONDONTWRITEBYTECODE"] = "1"
    _probe(_PROBE, cached)  # fills the file and bytecode caches
    plain = [_probe(_PROBE, cached) for _ in range(runs)]
    after_base = [_probe(_PROBE_AFTER_BASE, cached)[1] for _ in range(runs)]
    cold = [_probe(_PROBE, uncached) for _ in range(max(1, runs // 2))]
    return ImportTimes(
        runs=runs,
        sdk=statistics.median(p[0] for p in plain),
        sensors=statistics.median(p[1] for p in plain),
        sensors_all=[p[1] for p in plain],
        sensors_after_base=statistics.median(after_base),
        sdk_uncached=statistics.median(p[0] for p in cold),
        sensors_uncached=statistics.median(p[1] for p in cold),
    )
