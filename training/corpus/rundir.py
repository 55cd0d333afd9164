"""The layout of a corpus run directory: one subdirectory per stage, each with ``config.json`` and ``summary.json``.

```
RUN/prepare/   train.jsonl heldout.jsonl eval.jsonl pairs_train.jsonl pairs_heldout.jsonl
RUN/base/      model/            (only for the embedded tiny model, built from the train split)
RUN/sft/       model/            (LoRA merged into the base: the policy and reward-model initialisation)
RUN/reward/    model/            (absent when a pretrained reward model is used)
RUN/ppo/       model/            (written by the PPO hook)
RUN/eval/      generations.jsonl results.json results.md
```
A stage reads only the directories of the stages before it, so each can be rerun alone.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class CorpusRun:
    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    def stage(self, name: str) -> Path:
        return self.root / name

    def model(self, stage: str) -> Path:
        return self.root / stage / "model"

    def examples(self, part: str) -> Path:
        """``train``, ``heldout`` or ``eval`` examples (prompt, reference, group)."""
        return self.root / "prepare" / f"{part}.jsonl"

    def pairs(self, part: str) -> Path:
        """``train`` or ``heldout`` preference pairs (prompt, chosen, rejected, kind)."""
        return self.root / "prepare" / f"pairs_{part}.jsonl"

    def read(self, stage: str, name: str = "summary") -> dict[str, Any]:
        path = self.root / stage / f"{name}.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: run the `{stage}` stage first")
        return json.loads(path.read_text())

    def write(self, stage: str, name: str, content: Any) -> Path:
        path = self.root / stage / f"{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(content) if is_dataclass(content) else content, indent=2) + "\n")
        return path


def write_jsonl(rows: Iterable[dict[str, Any]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: run the stage that writes it first")
    return [json.loads(line) for line in path.read_text().splitlines() if line]


@contextmanager
def timed(summary: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Record the wall-clock seconds of the block in ``summary["seconds"]``."""
    start = time.perf_counter()
    yield summary
    summary["seconds"] = round(time.perf_counter() - start, 2)
