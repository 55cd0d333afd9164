"""A run directory: what every training or evaluation run leaves behind, and the project's one JSONL reader and writer.

config.json         the options the run was started with
metrics.jsonl       one JSON object per logged step (also written to tensorboard/)
checkpoints/        save_pretrained directories
report.json / report.md   the run's result, for machines and for people
plots/              PNG curves of the logged metrics
model/              the trained model, when the run trains one

A run made of stages (the corpus pipeline: prepare, sft, reward, ppo, eval) keeps each stage in a run directory
of its own under the run's (`RunDir.stage`), each with its config.json and summary.json; a stage reads only
what the stages before it wrote, so each can be rerun alone.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agentic.limits import cap


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


def write_jsonl(rows: Iterable[Any], path: str | Path) -> Path:
    """One JSON object per line: dicts, dataclasses, or objects with a ``to_dict()`` (a `agentic.trajectory.Trajectory`);
    strict JSON (NaN and infinities written as null). Creates the file's directory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for row in rows:
            record = row.to_dict() if hasattr(row, "to_dict") else row
            out.write(json.dumps(_jsonable(record), ensure_ascii=False, allow_nan=False) + "\n")
    return path


def read_jsonl(path: str | Path, check: Callable[[Any], str | None] | None = None) -> list[dict[str, Any]]:
    """The JSON objects of a JSONL file, one per non-blank line. A line that is not JSON, or that ``check`` (which
    returns why a record is wrong, or None) refuses, raises ValueError naming the file, the line and why."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: run what writes it first")
    records = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as err:
                raise ValueError(f"{path}, line {number}: not JSON ({cap(str(err), 100)})") from None
            problem = check(record) if check is not None else None
            if problem is not None:
                raise ValueError(f"{path}, line {number}: {problem}")
            records.append(record)
    return records


@contextmanager
def timed(summary: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Record the wall-clock seconds of the block in ``summary["seconds"]``."""
    start = time.perf_counter()
    yield summary
    summary["seconds"] = round(time.perf_counter() - start, 2)


class RunDir:
    """Owns one run's directory (created when first written to) and its TensorBoard writer (opened on first use;
    none with ``tensorboard=False``)."""

    def __init__(self, path: str | Path, *, tensorboard: bool = True):
        self.path = Path(path)
        self.tensorboard = tensorboard
        self._writer = None

    def stage(self, name: str) -> RunDir:
        """The run directory of one stage of this run (``path/name``)."""
        return RunDir(self.path / name, tensorboard=self.tensorboard)

    @property
    def model_dir(self) -> Path:
        return self.path / "model"

    def write_config(self, config: Any) -> Path:
        return self.write_json("config.json", config)

    def write_json(self, name: str, value: Any) -> Path:
        target = self.path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(_jsonable(value), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return target

    def read_json(self, name: str) -> dict[str, Any]:
        """A JSON file the run (or stage) wrote, e.g. ``config.json``; a clear error when it has not been written."""
        path = self.path / name
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: run the `{self.path.name}` stage first")
        return json.loads(path.read_text(encoding="utf-8"))

    def log(self, step: int, metrics: dict[str, Any], prefix: str = "") -> None:
        """Append ``metrics`` at ``step`` to metrics.jsonl and, for numbers, to TensorBoard."""
        record = {"step": step, **{f"{prefix}{k}": v for k, v in metrics.items()}}
        self.path.mkdir(parents=True, exist_ok=True)
        with (self.path / "metrics.jsonl").open("a", encoding="utf-8") as stream:
            stream.write(json.dumps(_jsonable(record), ensure_ascii=False) + "\n")
        if not self.tensorboard:
            return
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
        return read_jsonl(path) if path.exists() else []

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
        target.parent.mkdir(parents=True, exist_ok=True)
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
