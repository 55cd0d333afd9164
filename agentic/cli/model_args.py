"""The model arguments commands share: a policy by directory or hub id, its episode mode, and the sampling flags."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from agentic.cli.command import UsageError, finite_float
from agentic.cli.flags import positive_int


def load_policy(name_or_path: str, mode: str = "auto") -> Any:
    """A model by directory or hub id; a path that does not exist is a usage error, not a hub lookup.

    A tokenizer whose chat template cannot frame episodes (in chat mode) is a usage error too.
    """
    from agentic.encoding import ChatTemplateError
    from agentic.policy import Policy

    if name_or_path.startswith((".", "/", "~")) and not Path(name_or_path).expanduser().exists():
        raise UsageError(f"agentic: model directory {name_or_path} does not exist")
    path = Path(name_or_path).expanduser() if name_or_path.startswith("~") else name_or_path
    try:
        return Policy.from_pretrained(path, mode=mode)
    except ChatTemplateError as error:
        raise UsageError(f"agentic: {error} (--mode raw)") from None


def add_mode_flag(parser: argparse.ArgumentParser) -> None:
    from agentic.encoding import MODE_CHOICES

    parser.add_argument(
        "--mode",
        choices=MODE_CHOICES,
        default="auto",
        help="how episodes are encoded: the model's chat template or raw text "
        "(default auto: chat when the tokenizer has a chat template)",
    )


def add_sampling_flags(parser: argparse.ArgumentParser, temperature: float) -> None:
    parser.add_argument(
        "--temperature", type=finite_float, default=temperature, help=f"0 is greedy (default {temperature:g})"
    )
    parser.add_argument("--top-p", type=finite_float, default=1.0, help="nucleus sampling mass (default 1)")
    parser.add_argument(
        "--max-new-tokens",
        type=positive_int,
        default=256,
        help="the most tokens one action may have (default 256; the task's budget may allow fewer)",
    )
    parser.add_argument(
        "--constrained",
        action="store_true",
        help="draw every action from the grammar of the actions valid in its state (needs llguidance)",
    )


def sampling_from(args: argparse.Namespace) -> Any:
    from agentic.sampling import Sampling

    return Sampling(
        temperature=args.temperature,
        top_p=args.top_p,
        max_new_tokens=args.max_new_tokens,
        seed=args.seed or 0,
        constrained=args.constrained,
    )


def default_model_dir(args: argparse.Namespace) -> str:
    """``--model``, or the embedded tiny model built for the task in a temporary directory."""
    if args.model:
        return args.model
    import tempfile

    from agentic.training.tiny_model import build_tiny_model

    return str(
        build_tiny_model([args.task[0] if args.task else "Arithmetic"], tempfile.mkdtemp(prefix="agentic-tiny-"))
    )
