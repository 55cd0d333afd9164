"""Corpora for the paper's tasks, through `datasets`: a hub id, a local file, or a shipped stand-in.

The hub is unreachable on the project's CI and development machines, so every task
defaults to a small stand-in corpus that ships in `tasks/data/` and says so in its
name (``*_standin.jsonl``). Real runs pass a hub id (e.g. ``roneneldan/TinyStories``)
or a path to a ``.jsonl``/``.json``/``.txt``/``.csv``/``.parquet`` file.
"""

from __future__ import annotations

from pathlib import Path

import datasets

DATA_DIR = Path(__file__).parent / "data"
_LOCAL_BUILDERS = {".jsonl": "json", ".json": "json", ".txt": "text", ".csv": "csv", ".parquet": "parquet"}


def standin_path(name: str) -> Path:
    """The shipped stand-in corpus ``tasks/data/<name>_standin.jsonl``."""
    return DATA_DIR / f"{name}_standin.jsonl"


def load_corpus(
    source: str | Path, *, split: str = "train", config: str | None = None, limit: int | None = None
) -> datasets.Dataset:
    """Rows of a corpus given by local path or hub id; ``limit`` keeps the first rows."""
    path = Path(source)
    if path.suffix in _LOCAL_BUILDERS:
        if not path.exists():
            raise FileNotFoundError(f"corpus file {path} does not exist")
        dataset = datasets.load_dataset(_LOCAL_BUILDERS[path.suffix], data_files=str(path), split="train")
    else:
        dataset = datasets.load_dataset(str(source), config, split=split)
    if limit is not None:
        dataset = dataset.select(range(min(limit, len(dataset))))
    return dataset
