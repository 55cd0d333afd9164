"""A run directory: what every training or evaluation run leaves behind, and the project's one JSONL reader and writer.

config.json         the options the run was started with
metrics.jsonl       one JSON object per logged step (also written to tensorboard/)
checkpoints/        save_pretrained directories
report.json / report.md   the run's result, for machines and for people
plots/              PNG curves of the logged metrics, titled with the algorithm, task and model (`metrics_figure`)
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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentic.limits import cap

if TYPE_CHECKING:
    from matplotlib.figure import Figure


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


@dataclass(frozen=True)
class Panel:
    """One panel of a run's plot: the logged metrics ``keys`` against the step, under the caption ``label`` (what a
    reader needs: units, which way is better, what a sign means), with ``legends`` naming the curves when there are
    several. A metric logged with ``<key>_low`` / ``<key>_high`` (a Wilson interval) is drawn with its band."""

    keys: tuple[str, ...]
    label: str = ""
    legends: tuple[str, ...] = ()


def plot_title(algorithm: str, task: str, model: str) -> str:
    """A plot's title: the algorithm, the task and the model (a path shortened to its last two parts)."""
    parts = Path(model).parts
    shown = model if len(parts) <= 2 else str(Path(*parts[-2:]))
    return f"{algorithm} on {task} — {shown or 'a model object'}"


def _points(records: list[dict[str, Any]], key: str) -> list[tuple[int, float]]:
    return [
        (r["step"], r[key]) for r in records if isinstance(r.get(key), (int, float)) and not isinstance(r[key], bool)
    ]


def metrics_figure(
    records: list[dict[str, Any]], panels: Iterable[Panel | str], *, title: str = "", x_label: str = "step"
) -> Figure | None:
    """A matplotlib `Figure` of ``records`` (metrics.jsonl rows): one panel per `Panel` (or bare key) with a logged
    metric, stacked over a shared integer ``x_label`` axis (`MaxNLocator`), each interval a band (``fill_between``),
    ``title`` on top. None when none of the panels' metrics was logged. Built without pyplot: no global state."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    panels = [Panel((p,)) if isinstance(p, str) else p for p in panels]
    drawn = [(panel, {k: _points(records, k) for k in panel.keys}) for panel in panels]
    drawn = [(panel, series) for panel, series in drawn if any(series.values())]
    if not drawn:
        return None
    figure = Figure(figsize=(7, 2.3 * len(drawn) + 0.6), layout="constrained")
    axes = figure.subplots(len(drawn), 1, sharex=True, squeeze=False)[:, 0]
    for axis, (panel, series) in zip(axes, drawn):
        for key, legend in zip(panel.keys, panel.legends or panel.keys):
            points = series[key]
            if not points:
                continue
            steps = [step for step, _ in points]
            axis.plot(steps, [v for _, v in points], marker="." if len(points) < 50 else None, label=legend)
            low, high = _points(records, f"{key}_low"), _points(records, f"{key}_high")
            if low and high and len(low) == len(high) == len(points):
                axis.fill_between(steps, [v for _, v in low], [v for _, v in high], alpha=0.25, label="Wilson 95%")
        axis.set_ylabel(panel.keys[0] if len(panel.keys) == 1 else "", fontsize=8)
        axis.set_title(panel.label, fontsize=8, loc="left")
        axis.grid(alpha=0.3)
        if len(panel.keys) > 1 or axis.collections:
            axis.legend(fontsize=7)
    axes[-1].set_xlabel(x_label)
    axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    figure.suptitle(title, fontsize=10)
    return figure


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

    def plot(
        self,
        panels: Iterable[Panel | str],
        name: str = "training.png",
        *,
        title: str = "",
        x_label: str = "step",
        records: list[dict[str, Any]] | None = None,
    ) -> Path | None:
        """``plots/<name>``: `metrics_figure` of this run's metrics (or of ``records``, e.g. a trainer's log history),
        its ``title`` also in the PNG's metadata; None when none of the panels' metrics was logged."""
        records = self.metrics() if records is None else records
        figure = metrics_figure(records, panels, title=title, x_label=x_label)
        if figure is None:
            return None
        target = self.path / "plots" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(target, dpi=100, metadata={"Title": title})
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
