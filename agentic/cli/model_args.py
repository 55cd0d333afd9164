"""The model arguments commands share: a policy by directory or hub id, and the sampling flags."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from agentic.cli.command import UsageError, finite_float


def load_policy(name_or_path: str) -> Any:
    """A model by directory or hub id; a path that does not exist is a usage error, not a hub lookup."""
    from agentic.policy import Policy

    if name_or_path.startswith((".", "/", "~")) and not Path(name_or_path).expanduser().exists():
        raise UsageError(f"agentic: model directory {name_or_path} does not exist")
    return Policy.from_pretrained(Path(name_or_path).expanduser() if name_or_path.startswith("~") else name_or_path)


def add_sampling_flags(parser: argparse.ArgumentParser, temperature: float) -> None:
    parser.add_argument(
        "--temperature", type=finite_float, default=temperature, help=f"0 is greedy (default {temperature:g})"
    )
    parser.add_argument("--top-p", type=finite_float, default=1.0, help="nucleus sampling mass (default 1)")
    parser.add_argument(
        "--constrained",
        action="store_true",
        help="draw every action from the grammar of the actions valid in its state (needs llguidance)",
    )


def sampling_from(args: argparse.Namespace) -> Any:
    from agentic.sampling import Sampling

    return Sampling(temperature=args.temperature, top_p=args.top_p, seed=args.seed or 0, constrained=args.constrained)


def default_model_dir(args: argparse.Namespace) -> str:
    """``--model``, or the embedded tiny model built for the task in a temporary directory."""
    if args.model:
        return args.model
    import tempfile

    from agentic.training.tiny_model import build_tiny_model

    return str(
        build_tiny_model([args.task[0] if args.task else "Arithmetic"], tempfile.mkdtemp(prefix="agentic-tiny-"))
    )
