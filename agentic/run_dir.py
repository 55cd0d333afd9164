"""A run directory: what every training or evaluation run leaves behind.

config.json         the options the run was started with
metrics.jsonl       one JSON object per logged step (also written to tensorboard/)
checkpoints/        save_pretrained directories
report.json / report.md   the run's result, for machines and for people
plots/              PNG curves of the logged metrics
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class RunDir:
    """Owns one run's directory and its TensorBoard writer (opened on first use)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self._writer = None

    def write_config(self, config: Any) -> Path:
        return self.write_json("config.json", config)

    def write_json(self, name: str, value: Any) -> Path:
        target = self.path / name
        target.write_text(json.dumps(_jsonable(value), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return target

    def log(self, step: int, metrics: dict[str, Any], prefix: str = "") -> None:
        """Append ``metrics`` at ``step`` to metrics.jsonl and, for numbers, to TensorBoard."""
        record = {"step": step, **{f"{prefix}{k}": v for k, v in metrics.items()}}
        with (self.path / "metrics.jsonl").open("a", encoding="utf-8") as stream:
            stream.write(json.dumps(_jsonable(record), ensure_ascii=False) + "\n")
        writer = self._tensorboard()
        for key, value in record.items():
            if (
                key != "step"
                and isinstance(value, (int, float))
                and not isinstance(value, bool)
                and math.isfinite(value)
            ):
                writer.add_scalar(key, value, step)
            elif isinstance(value, str) and key != "step":
                writer.add_text(key, value, step)
        writer.flush()

    def metrics(self) -> list[dict[str, Any]]:
        path = self.path / "metrics.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def checkpoint(self, name: str) -> Path:
        return self.path / "checkpoints" / name

    def write_report(self, report: dict[str, Any], markdown: str) -> None:
        self.write_json("report.json", report)
        (self.path / "report.md").write_text(markdown.rstrip() + "\n", encoding="utf-8")

    def plot(self, keys: Iterable[str], name: str = "training.png") -> Path | None:
        """One panel per logged metric in ``keys`` against the step; None when none was logged."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        records = self.metrics()
        series = {k: [(r["step"], r[k]) for r in records if isinstance(r.get(k), (int, float))] for k in keys}
        series = {k: v for k, v in series.items() if v}
        if not series:
            return None
        figure, axes = plt.subplots(len(series), 1, figsize=(6, 2.2 * len(series)), squeeze=False)
        for axis, (key, points) in zip(axes[:, 0], series.items()):
            axis.plot([p[0] for p in points], [p[1] for p in points], marker="." if len(points) < 50 else None)
            axis.set_ylabel(key, fontsize=8)
            axis.grid(alpha=0.3)
        axes[-1, 0].set_xlabel("step")
        figure.tight_layout()
        target = self.path / "plots" / name
        target.parent.mkdir(exist_ok=True)
        figure.savefig(target, dpi=100)
        plt.close(figure)
        return target

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _tensorboard(self):
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.path / "tensorboard"))
        return self._writer
