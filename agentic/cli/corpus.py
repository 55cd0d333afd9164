"""`agentic corpus prepare | sft | reward | ppo | evaluate | run`: the single-turn pipeline's stages from the command line.

Every subcommand takes the run's identity (``--model``, ``--corpus``, ``--standin``, ``--seed``) and its
directory ``--out`` (default ``runs/corpus/MODEL-CORPUS``), plus the settings of its stage(s), each a
flag over one field of the stage's settings dataclass (a flag not given keeps the dataclass default).
A stage run before the stages it reads is refused in one line; ``run`` chains them all and writes the
results table over every run beside it (``runs/corpus/results.{json,md}`` by default).

`CORPUS` is the ``agentic corpus`` command; its stages' settings import trl, transformers and datasets, so they
are read only when ``corpus`` is the command given.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

from rich.console import Console

from agentic.cli.command import Command, UsageError, add_option_flags, option_values

LOCAL_SUFFIXES = (".txt", ".jsonl", ".json", ".csv", ".parquet")


@dataclass(frozen=True)
class Flag:
    """``--flag`` setting ``field`` of one stage's settings; ``type`` parses the value."""

    flag: str
    field: str
    type: Callable[[str], Any]
    help: str
    choices: tuple[str, ...] | None = None

    @property
    def dest(self) -> str:
        return self.flag[2:].replace("-", "_")


def kl_target(value: str) -> float | None:
    """A positive KL target, or 0 for a fixed coefficient (None)."""
    return float(value) or None


@cache
def groups() -> dict[str, tuple[Any, tuple[Flag, ...]]]:
    """Each group: the settings' defaults and the flags over them. TinySettings sits inside SftSettings."""
    from agentic.training.corpus.evaluate import EvalSettings
    from agentic.training.corpus.prepare import PrepareSettings
    from agentic.training.corpus.reward import RewardSettings
    from agentic.training.corpus.sft import SftSettings

    return {
        "prepare": (
            PrepareSettings("tinystories"),
            (
                Flag("--eval-size", "eval_size", int, "evaluation examples, split off first"),
                Flag("--heldout-size", "heldout_size", int, "examples whose pairs measure the reward model"),
                Flag("--train-size", "train_size", int, "train examples (default: all that is left)"),
                Flag("--max-rows", "max_rows", int, "read at most this many corpus rows (default: all)"),
                Flag("--max-prompt-words", "max_prompt_words", int, "prompt length cap in words"),
                Flag("--max-reference-words", "max_reference_words", int, "reference length cap in words"),
            ),
        ),
        "tiny": (
            SftSettings().tiny,
            (Flag("--tiny-epochs", "epochs", float, "pretraining epochs of the embedded tiny model (--model tiny)"),),
        ),
        "sft": (
            SftSettings(),
            (
                Flag("--sft-epochs", "epochs", float, "SFT epochs"),
                Flag(
                    "--sft-learning-rate",
                    "learning_rate",
                    float,
                    "SFT learning rate (default: 1e-3 tiny, 2e-4 otherwise)",
                ),
                Flag("--sft-batch-size", "batch_size", int, "SFT batch size"),
                Flag("--lora-rank", "lora_rank", int, "SFT LoRA rank (default: 8 / 16 / 32 by model size)"),
            ),
        ),
        "reward": (
            RewardSettings(),
            (
                Flag(
                    "--reward-model",
                    "pretrained",
                    str,
                    "a pretrained reward model (hub id or path) instead of training one",
                ),
                Flag("--reward-epochs", "epochs", float, "reward-model epochs"),
                Flag(
                    "--reward-learning-rate",
                    "learning_rate",
                    float,
                    "reward-model learning rate (default: 1e-3 tiny, 1e-5 otherwise)",
                ),
                Flag("--reward-batch-size", "batch_size", int, "reward-model batch size"),
            ),
        ),
        "eval": (
            EvalSettings(),
            (
                Flag("--eval-max-new-tokens", "max_new_tokens", int, "completion length cap in evaluation"),
                Flag("--eval-temperature", "temperature", float, "evaluation sampling temperature"),
                Flag("--eval-top-p", "top_p", float, "evaluation nucleus mass"),
            ),
        ),
    }


# What each subcommand configures, and the stages whose output it reads.
COMMANDS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "prepare": ("split the corpus (eval / held-out / train) and build preference pairs", ("prepare",), ()),
    "sft": (
        "LoRA SFT of --model on the train split, merged (builds the tiny base first for --model tiny)",
        ("tiny", "sft"),
        ("prepare",),
    ),
    "reward": (
        "train the Bradley-Terry reward model from the SFT model (or take --reward-model)",
        ("reward",),
        ("prepare", "sft"),
    ),
    "ppo": (
        "PPO from the SFT model against the reward model, on the shared turn-level core",
        ("ppo",),
        ("sft", "reward"),
    ),
    "evaluate": (
        "evaluate base, SFT and PPO on the eval prompts; write the run's and the root's results tables",
        ("eval",),
        ("sft", "reward"),
    ),
    "run": (
        "the whole chain: prepare, (tiny base,) SFT, reward model, PPO, evaluation, results table",
        ("prepare", "tiny", "sft", "reward", "ppo", "eval"),
        (),
    ),
}


def corpus_argument(value: str) -> str:
    """A named corpus, or a local file of a type `datasets` reads."""
    from agentic.training.corpus.specs import CORPORA

    if value in CORPORA:
        return value
    if Path(value).suffix in LOCAL_SUFFIXES:
        if not Path(value).is_file():
            raise argparse.ArgumentTypeError(f"corpus file {value} does not exist")
        return value
    raise argparse.ArgumentTypeError(
        f"unknown corpus {value!r}: use one of {', '.join(sorted(CORPORA))} or a local {'/'.join(LOCAL_SUFFIXES)} file"
    )


def add_corpus_commands(corpus: argparse.ArgumentParser) -> None:
    """Add the stages' subcommands to ``agentic``'s ``corpus`` parser (its parser class, so errors stay one line)."""
    from agentic.training.corpus.specs import CORPORA

    stages = corpus.add_subparsers(dest="stage", required=True, parser_class=type(corpus))
    for command, (help_text, stage_groups, _) in COMMANDS.items():
        parser = stages.add_parser(command, help=help_text, description=help_text)
        parser.add_argument(
            "--model",
            default="tiny",
            help="hub id, local path, or `tiny` (the embedded model built from the corpus; default)",
        )
        parser.add_argument(
            "--corpus",
            type=corpus_argument,
            default="tinystories",
            help=f"{', '.join(sorted(CORPORA))} or a local file (default tinystories)",
        )
        parser.add_argument(
            "--standin", action="store_true", help="use the named corpus's shipped offline stand-in instead of the hub"
        )
        parser.add_argument("--out", help="run directory (default runs/corpus/MODEL-CORPUS)")
        parser.add_argument("--seed", type=int, default=0, help="seed of every stage (default 0)")
        if command == "run":
            parser.add_argument("--no-ppo", action="store_true", help="skip PPO: SFT is the final policy")
        for group in stage_groups:
            if group == "ppo":
                add_ppo_flags(parser)
                continue
            defaults, flags = groups()[group]
            for flag in flags:
                default = getattr(defaults, flag.field)
                shown = "" if default is None or "default" in flag.help else f" (default {default})"
                metavar = None if flag.choices else {int: "N", str: "NAME"}.get(flag.type, "X")
                parser.add_argument(
                    flag.flag,
                    dest=flag.dest,
                    type=flag.type,
                    choices=flag.choices,
                    metavar=metavar,
                    default=argparse.SUPPRESS,
                    help=flag.help + shown,
                )
        parser.set_defaults(run=_handle)


# `agentic corpus` flags of the PPO stage from before it ran on the agentic loop with `PPOOptions`.
PPO_RENAMED = {
    "--ppo-prompts": "episodes",
    "--kl-coef": "kl_coef",
    "--kl-target": "kl_target",
    "--reward-normalization": "reward_normalization",
    "--reward-clip": "reward_clip",
    "--clip-range": "clip_range",
}


def add_ppo_flags(parser: argparse.ArgumentParser) -> None:
    """The PPO stage's flags: `PPOOptions`' fields as ``--ppo-*``, with the corpus defaults."""
    from agentic.training.corpus.options import CORPUS_PPO, PPO_SET_BY_STAGE
    from agentic.training.rl_config import PPOOptions

    add_option_flags(
        parser, PPOOptions, prefix="ppo-", defaults=CORPUS_PPO, set_by_command=PPO_SET_BY_STAGE, deprecated=PPO_RENAMED
    )


def run_dir(args: argparse.Namespace) -> Path:
    """``--out``, or ``runs/corpus/MODEL-CORPUS`` from the model's and corpus's last path parts."""
    return Path(args.out) if args.out else Path("runs") / "corpus" / f"{Path(args.model).name}-{Path(args.corpus).stem}"


def settings(group: str, args: argparse.Namespace, **fixed: Any) -> Any:
    """The group's settings: its defaults, overridden by the flags given and by ``fixed``."""
    defaults, flags = groups()[group]
    given = {flag.field: getattr(args, flag.dest) for flag in flags if hasattr(args, flag.dest)}
    return replace(defaults, **given, **fixed)


def stage_settings(args: argparse.Namespace) -> dict[str, Any]:
    """Every stage's settings from the flags (those a subcommand lacks keep their defaults)."""
    return {
        "prepare": settings("prepare", args, corpus=args.corpus, standin=args.standin, seed=args.seed),
        "sft": settings("sft", args, model=args.model, seed=args.seed, tiny=settings("tiny", args, seed=args.seed)),
        "reward": settings("reward", args, seed=args.seed),
        "ppo": ppo_options(args),
        "eval": settings("eval", args, seed=args.seed),
    }


def ppo_options(args: argparse.Namespace) -> Any:
    """The PPO stage's options from its ``--ppo-*`` flags and the run."""
    from agentic.training.corpus.options import corpus_ppo_options
    from agentic.training.rl_config import PPOOptions

    return corpus_ppo_options(run_dir(args), args.seed, **option_values(PPOOptions, args, prefix="ppo-"))


def _handle(args: argparse.Namespace, console: Console) -> None:
    from agentic.training.ppo import TrainingDiverged

    out = run_dir(args)
    needs = ("prepare",) if args.stage == "reward" and hasattr(args, "reward_model") else COMMANDS[args.stage][2]
    for stage in needs:
        if not (out / stage / "summary.json").is_file():
            raise UsageError(
                f"agentic corpus {args.stage}: {out} has no `{stage}` stage output: run `agentic corpus {stage} --out {out}` first"
            )
    if args.model.startswith((".", "/", "~")) and not Path(args.model).expanduser().exists():
        raise UsageError(f"agentic corpus {args.stage}: model directory {args.model} does not exist")
    try:
        STAGES[args.stage](args, out, stage_settings(args), console)
    except TrainingDiverged as err:
        raise UsageError(f"agentic corpus {args.stage}: {err}") from err


def _prepare(args: argparse.Namespace, out: Path, stages: dict[str, Any], console: Console) -> None:
    from agentic.training.corpus.prepare import prepare

    summary = prepare(out, stages["prepare"])
    parts = ", ".join(f"{summary[f'{part}_examples']} {part}" for part in ("train", "heldout", "eval"))
    console.print(
        f"prepare: {parts} examples; {summary['train_pairs']} train and {summary['heldout_pairs']} held-out pairs in {out / 'prepare'}"
    )


def _sft(args: argparse.Namespace, out: Path, stages: dict[str, Any], console: Console) -> None:
    from agentic.training.corpus.sft import train_sft

    summary = train_sft(out, stages["sft"])
    console.print(
        f"sft: LoRA rank {summary['lora_rank']}, train loss {summary['train_loss']:.3f}, {summary['seconds']:.0f} s; model {out / 'sft' / 'model'}"
    )


def _reward(args: argparse.Namespace, out: Path, stages: dict[str, Any], console: Console) -> None:
    from agentic.training.corpus.reward import reward_stage

    summary = reward_stage(out, stages["reward"])
    accuracy = summary["heldout"]["accuracy"]
    console.print(
        f"reward: held-out pairwise accuracy {accuracy['value']:.3f} [{accuracy['low']:.3f}, {accuracy['high']:.3f}] "
        f"on {accuracy['n']} pairs, {summary['seconds']:.0f} s; model {summary['reward_model']}"
    )


def _ppo(args: argparse.Namespace, out: Path, stages: dict[str, Any], console: Console) -> None:
    from agentic.training.corpus.ppo import ppo_stage

    summary = ppo_stage(out, stages["ppo"])
    console.print(
        f"ppo: {summary['iterations']} updates, reward-model score {summary['score_first']:.3f} -> {summary['score_last']:.3f}, "
        f"{summary['seconds']:.0f} s; metrics {summary['metrics']}; model {out / 'ppo' / 'model'}"
    )


def _evaluate(args: argparse.Namespace, out: Path, stages: dict[str, Any], console: Console) -> None:
    from agentic.training.corpus.evaluate import evaluate, write_results_table

    evaluate(out, stages["eval"])
    write_results_table(out.parent)
    _print_results(out, console)


def _run(args: argparse.Namespace, out: Path, stages: dict[str, Any], console: Console) -> None:
    from agentic.training.corpus.pipeline import run_pipeline

    summaries = run_pipeline(
        args.model,
        args.corpus,
        out,
        standin=args.standin,
        seed=args.seed,
        prepare_settings=stages["prepare"],
        sft_settings=stages["sft"],
        reward_settings=stages["reward"],
        eval_settings=stages["eval"],
        ppo_options=stages["ppo"],
        skip_ppo=args.no_ppo,
    )
    accuracy = summaries["reward"]["heldout"]["accuracy"]
    seconds = ", ".join(f"{stage} {summary['seconds']:.0f} s" for stage, summary in summaries.items())
    console.print(
        f"stages: {seconds}\nreward model held-out pairwise accuracy {accuracy['value']:.3f} [{accuracy['low']:.3f}, {accuracy['high']:.3f}]"
    )
    _print_results(out, console)


def _print_results(out: Path, console: Console) -> None:
    console.print((out / "eval" / "results.md").read_text(), markup=False, highlight=False)
    console.print(f"results: {out / 'eval' / 'results.json'}; table over runs: {out.parent / 'results.md'}")


STAGES = {"prepare": _prepare, "sft": _sft, "reward": _reward, "ppo": _ppo, "evaluate": _evaluate, "run": _run}


CORPUS = Command(
    "corpus", "the single-turn corpus pipeline: SFT -> reward model -> PPO -> evaluation", add_corpus_commands, _handle
)
