"""The bench report: a table on stdout and bench-report.json at the project root."""
from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Row:
    name: str
    value: float
    unit: str
    baseline: float | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if not self.baseline:  # None or 0
            return None
        return round(self.value / self.baseline, 3)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def write(rows: list[Row], path: Path = ROOT / "bench-report.json") -> Path:
    machine = {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}
    payload = {"machine": machine, "rows": [{**asdict(row), "ratio": row.ratio} for row in rows]}
    path.write_text(json.dumps(payload, indent=2))
    print(f"{'name':34} {'value':>10} {'unit':8} {'baseline':>10} {'ratio':>7}  note")
    for row in rows:
        baseline = "" if row.baseline is None else f"{row.baseline:.3f}"
        ratio = "" if row.ratio is None else f"{row.ratio:.2f}"
        print(f"{row.name:34} {row.value:>10.3f} {row.unit:8} {baseline:>10} {ratio:>7}  {row.note}")
    print(f"wrote {path}")
    return path
