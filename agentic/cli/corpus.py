"""`agentic corpus prepare | sft | reward | ppo | evaluate | run`: the single-turn pipeline's stages from the command line.

Every subcommand takes the run's identity (`CorpusRunOptions`: ``--model``, ``--corpus``, ``--standin``,
``--out-dir``, ``--seed``) and the options of its stage(s), each stage's fields as flags under its prefix
(``--sft-epochs``, ``--ppo-kl-coef``; the split's flags have none). A stage run before the stages it reads is refused
in one line; ``run`` chains them all and writes the results table over every run beside it
(``runs/corpus/results.{json,md}`` by default). Flags from before the stages' options were generated still work,
with a deprecation warning. ``--recipe smollm-rlhf`` presets the PPO stage as the seed recipes run it (chat RLHF of
an instruct model: ``--corpus chat --preferences chat``); a ``--ppo-*`` flag given with another value still wins.

`CORPUS` is the ``agentic corpus`` command; the stages themselves import trl, transformers and datasets, so they are
imported only when a stage runs.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from rich.console import Console

from agentic.cli.command import Command, UsageError, add_config_flag, add_option_flags, options_from


@dataclass(frozen=True)
class StageFlags:
    """How one stage's options class becomes flags: under ``prefix``, with ``defaults`` for this pipeline, old
    ``deprecated`` flag names, and the fields the run sets (``from_run`` gives their values)."""

    options: type
    prefix: str
    set_by_run: tuple[str, ...] = ("seed",)
    deprecated: Mapping[str, Any] = field(default_factory=dict)
    defaults: Mapping[str, Any] = field(default_factory=dict)
    from_run: Callable[[Any], dict[str, Any]] | None = None

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        add_option_flags(
            parser,
            self.options,
            prefix=self.prefix,
            defaults=self.defaults,
            set_by_command=self.set_by_run,
            deprecated=self.deprecated,
        )

    def options_of(self, args: argparse.Namespace, run: Any) -> Any:
        fixed = self.from_run(run) if self.from_run else {name: getattr(run, name) for name in self.set_by_run}
        return options_from(self.options, args, prefix=self.prefix, **fixed)


@cache
def stages() -> dict[str, StageFlags]:
    """Each stage's flags. The PPO stage's flags from before it ran on the agentic loop are deprecated names."""
    from agentic.training.corpus import options as corpus
    from agentic.training.rl_config import PPOOptions

    ppo_renamed = {
        "--ppo-prompts": "episodes",
        "--kl-coef": "kl_coef",
        "--kl-target": "kl_target",
        "--reward-normalization": "reward_normalization",
        "--reward-clip": "reward_clip",
        "--clip-range": "clip_range",
    }
    return {
        "prepare": StageFlags(corpus.PrepareOptions, "", ("corpus", "standin", "seed")),
        "tiny": StageFlags(corpus.TinyBaseOptions, "tiny-"),
        "sft": StageFlags(corpus.CorpusSFTOptions, "sft-", ("model", "seed"), {"--lora-rank": "lora_rank"}),
        "reward": StageFlags(corpus.RewardOptions, "reward-"),
        "ppo": StageFlags(
            PPOOptions,
            "ppo-",
            corpus.PPO_SET_BY_STAGE,
            ppo_renamed,
            corpus.CORPUS_PPO,
            lambda run: corpus.ppo_fields_of_run(run.run_dir, run.seed),
        ),
        "eval": StageFlags(corpus.CorpusEvalOptions, "eval-"),
    }


# What each subcommand does, the stages whose options it takes, and the stages whose output it reads.
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
        "PPO from the SFT model against the reward model: the agentic training loop on one-turn episodes",
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


def identity(command: str) -> type:
    """The options every subcommand takes; ``run`` adds whether PPO is part of it."""
    from agentic.training.corpus.options import CorpusRunOptions, PipelineOptions

    return PipelineOptions if command == "run" else CorpusRunOptions


def add_corpus_commands(corpus: argparse.ArgumentParser) -> None:
    """Add the stages' subcommands to ``agentic``'s ``corpus`` parser (its parser class, so errors stay one line)."""
    subcommands = corpus.add_subparsers(dest="stage", required=True, parser_class=type(corpus))
    for command, (help_text, stage_names, _) in COMMANDS.items():
        parser = subcommands.add_parser(command, help=help_text, description=help_text)
        add_option_flags(parser, identity(command), deprecated={"--out": "out_dir"})
        for name in stage_names:
            stages()[name].add_to(parser)
        add_config_flag(parser)
        parser.set_defaults(run=_handle)


def _handle(args: argparse.Namespace, console: Console) -> None:
    from agentic.training.ppo import TrainingDiverged

    run = options_from(identity(args.stage), args)
    options = {name: stages()[name].options_of(args, run) for name in COMMANDS[args.stage][1]}
    if "ppo" in options:
        from agentic.training.corpus.options import with_recipe

        options["ppo"] = with_recipe(options["ppo"], run.recipe)
    needs = ("prepare",) if args.stage == "reward" and options["reward"].model else COMMANDS[args.stage][2]
    for stage in needs:
        if not (run.run_dir / stage / "summary.json").is_file():
            raise UsageError(
                f"agentic corpus {args.stage}: {run.run_dir} has no `{stage}` stage output: "
                f"run `agentic corpus {stage} --out-dir {run.run_dir}` first"
            )
    try:
        RUNNERS[args.stage](run, options, console)
    except TrainingDiverged as err:
        raise UsageError(f"agentic corpus {args.stage}: {err}") from err


def _prepare(run: Any, options: dict[str, Any], console: Console) -> None:
    from agentic.training.corpus.prepare import prepare

    summary = prepare(run.run_dir, options["prepare"])
    parts = ", ".join(f"{summary[f'{part}_examples']} {part}" for part in ("train", "heldout", "eval"))
    console.print(
        f"prepare: {parts} examples; {summary['train_pairs']} train and {summary['heldout_pairs']} held-out pairs in {run.run_dir / 'prepare'}"
    )


def _sft(run: Any, options: dict[str, Any], console: Console) -> None:
    from agentic.training.corpus.sft import train_sft

    summary = train_sft(run.run_dir, options["sft"], options["tiny"])
    if not summary["trained"]:
        console.print(f"sft: prompts only, nothing to fine-tune on: the policy is {summary['base_model']} as it is")
        return
    console.print(
        f"sft: LoRA rank {summary['lora_rank']}, train loss {summary['train_loss']:.3f}, {summary['seconds']:.0f} s; model {run.run_dir / 'sft' / 'model'}"
    )


def _reward(run: Any, options: dict[str, Any], console: Console) -> None:
    from agentic.training.corpus.reward import reward_stage

    summary = reward_stage(run.run_dir, options["reward"])
    console.print(
        f"reward: {heldout_line(summary['heldout'])}, {summary['seconds']:.0f} s; model {summary['reward_model']}"
    )


def heldout_line(heldout: dict) -> str:
    """The reward model's held-out pairwise accuracy and mean margin, with their 95% intervals."""
    accuracy, margin = heldout["accuracy"], heldout["margin"]
    return (
        f"held-out pairwise accuracy {accuracy['value']:.3f} [{accuracy['low']:.3f}, {accuracy['high']:.3f}], "
        f"mean margin {margin['mean']:.3f} [{margin['low']:.3f}, {margin['high']:.3f}] on {accuracy['n']} pairs"
    )


def _ppo(run: Any, options: dict[str, Any], console: Console) -> None:
    from agentic.training.corpus.ppo import ppo_stage

    summary = ppo_stage(run.run_dir, options["ppo"])
    console.print(
        f"ppo: {summary['iterations']} updates, reward-model score {summary['score_first']:.3f} -> {summary['score_last']:.3f}, "
        f"{summary['seconds']:.0f} s; metrics {summary['metrics']}; model {run.run_dir / 'ppo' / 'model'}"
    )


def _evaluate(run: Any, options: dict[str, Any], console: Console) -> None:
    from agentic.training.corpus.evaluate import evaluate_run, write_results_table

    evaluate_run(run.run_dir, options["eval"])
    write_results_table(run.run_dir.parent)
    _print_results(run.run_dir, console)


def _run(run: Any, options: dict[str, Any], console: Console) -> None:
    from agentic.training.corpus.pipeline import run_pipeline

    summaries = run_pipeline(
        run.model,
        run.corpus,
        run.run_dir,
        standin=run.standin,
        seed=run.seed,
        prepare_options=options["prepare"],
        tiny_options=options["tiny"],
        sft_options=options["sft"],
        reward_options=options["reward"],
        ppo_options=options["ppo"],
        eval_options=options["eval"],
        skip_ppo=not run.ppo,
    )
    seconds = ", ".join(f"{stage} {summary['seconds']:.0f} s" for stage, summary in summaries.items())
    console.print(f"stages: {seconds}\nreward model {heldout_line(summaries['reward']['heldout'])}")
    _print_results(run.run_dir, console)


def _print_results(out: Path, console: Console) -> None:
    console.print((out / "eval" / "results.md").read_text(), markup=False, highlight=False)
    if (out / "eval" / "before_after.md").is_file():
        console.print(f"generations before and after PPO: {out / 'eval' / 'before_after.md'}")
    console.print(f"results: {out / 'eval' / 'results.json'}; table over runs: {out.parent / 'results.md'}")


RUNNERS = {"prepare": _prepare, "sft": _sft, "reward": _reward, "ppo": _ppo, "evaluate": _evaluate, "run": _run}


CORPUS = Command(
    "corpus", "the single-turn corpus pipeline: SFT -> reward model -> PPO -> evaluation", add_corpus_commands, _handle
)
