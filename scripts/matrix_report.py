"""Print the test matrix's table, Airflow release x kind of test, from the JUnit files `make test` writes.

Usage: python scripts/matrix_report.py test-results/airflow-*.xml
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

#: Which kind of test a test file is, by its path; anything else is a unit test.
KINDS = {
    "tests/test_example_dags.py": "DAGs",
    "tests/test_user_dags.py": "DAGs",
    "tests/e2e/": "e2e",
    "tests/browser/": "browser",
    "tests/test_connection_rest.py": "REST",
    "tests/test_connection_cli.py": "CLI",
}
COLUMNS = ("unit", "CLI", "REST", "DAGs", "e2e", "browser")


def kind(classname: str) -> str:
    path = classname.replace(".", "/")
    return next((k for prefix, k in KINDS.items() if path.startswith(prefix.removesuffix(".py"))), "unit")


def main(paths: list[str]) -> int:
    print("| Airflow | " + " | ".join(COLUMNS) + " |")
    print("|---" * (len(COLUMNS) + 1) + "|")
    for path in sorted(paths, key=lambda p: [int(n) for n in Path(p).stem.split("-")[-1].split(".")]):
        counts: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0, 0.0])  # passed, failed, skipped, s
        for case in ET.parse(path).iter("testcase"):
            row = counts[kind(case.get("classname", ""))]
            outcome = 1 if case.find("failure") is not None or case.find("error") is not None else 0
            outcome = 2 if case.find("skipped") is not None else outcome
            row[outcome] += 1
            row[3] += float(case.get("time", 0))
        cells = []
        for column in COLUMNS:
            passed, failed, skipped, seconds = counts.get(column, [0, 0, 0, 0.0])
            if not passed + failed + skipped:
                cells.append("—")
                continue
            verdict = f"{int(passed)} passed" + (f", **{int(failed)} failed**" if failed else "")
            verdict += f", {int(skipped)} skipped" if skipped else ""
            cells.append(f"{verdict}, {seconds:.0f} s")
        print(f"| {Path(path).stem.removeprefix('airflow-')} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
