"""The model arguments commands share: a policy by directory or hub id, its episode mode, and the sampling flags
(generated from `agentic.sampling.Sampling`'s fields)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agentic.cli.command import UsageError, add_option_flags, options_from


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


def add_sampling_flags(
    parser: argparse.ArgumentParser, temperature: float, *, set_by_command: Sequence[str] = ()
) -> None:
    """A flag per field of `agentic.sampling.Sampling` (``--temperature``, ``--top-p``, ``--max-new-tokens``,
    ``--seed``, ``--constrained``), with ``temperature`` as its default; fields in ``set_by_command`` get none."""
    from agentic.sampling import Sampling

    add_option_flags(parser, Sampling, defaults={"temperature": temperature}, set_by_command=set_by_command)


def sampling_from(args: argparse.Namespace) -> Any:
    """The `Sampling` the flags give (a command's own ``--seed``, e.g. play's instance seed, seeds it too)."""
    from agentic.sampling import Sampling

    return options_from(Sampling, args, seed=args.seed or 0)


def default_model_dir(args: argparse.Namespace) -> str:
    """``--model``, or the embedded tiny model built for the task in a temporary directory."""
    if args.model:
        return args.model
    import tempfile

    from agentic.training.tiny_model import build_tiny_model

    return str(
        build_tiny_model([args.task[0] if args.task else "Arithmetic"], tempfile.mkdtemp(prefix="agentic-tiny-"))
    )
