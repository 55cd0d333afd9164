"""`agentic bench parse | rollout | sft | rl-update | fuzz`: each benchmark a ratio against a baseline in the same run."""

from __future__ import annotations

import argparse
import json

from rich.console import Console

from agentic.cli.command import Command
from agentic.cli.flags import non_negative_int, positive_int
from agentic.cli.model_args import add_mode_flag, default_model_dir


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "what",
        choices=["parse", "rollout", "sft", "rl-update", "fuzz"],
        help="parse: parse_action vs a paper-style regex parser, and env steps/s; "
        "rollout: the batched engine vs re-tokenizing model.generate loops (batched and sequential); "
        "sft: SFTTrainer vs a bare PyTorch loop (or, with --micro-batches / --shared-prefix, vs itself with that change); "
        "rl-update: the PPO/GRPO update with each pass's shared prefix run once vs every episode run whole; "
        "fuzz: hostile actions against every task, counting exceptions (0 expected)",
    )
    parser.add_argument(
        "--task",
        action="append",
        help="task(s) to draw inputs or episodes from (parse, fuzz: default all; rollout, sft, rl-update: Arithmetic); "
        "fuzz also takes NAME:key=value,... (e.g. ReasoningGym:dataset=n_queens)",
    )
    parser.add_argument(
        "--episodes",
        type=positive_int,
        default=None,
        help="oracle episodes per task (parse, default 20), episodes (rollout, default 64), training steps "
        "(sft, default 30), updates (rl-update, default 8) or hostile episodes per task (fuzz, default 1000)",
    )
    parser.add_argument(
        "--model",
        help="rollout, sft, rl-update: model directory, hub id or a name `agentic models list` shows "
        "(default: a fresh embedded tiny model)",
    )
    parser.add_argument("--max-new-tokens", type=positive_int, default=64, help="rollout, rl-update: action limit")
    parser.add_argument(
        "--baseline",
        action="append",
        choices=["batched_generate", "sequential"],
        help="rollout: the loop(s) the engine is compared with (default both): batched_generate, every live episode "
        "in one left-padded model.generate call per turn; sequential, one episode at a time",
    )
    parser.add_argument(
        "--repeats",
        type=positive_int,
        default=None,
        help="rollout (default 3), rl-update (default 2): timed runs of each side, taking turns (the best of each is "
        "compared)",
    )
    _training_arguments(parser)
    add_mode_flag(parser)
    parser.add_argument(
        "--constrained",
        action="store_true",
        help="rollout: the engine with and without constrained sampling instead (time, and validity of the actions)",
    )
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--json", action="store_true", help="also print the result as JSON")


def _training_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of the training benchmarks (sft, rl-update)."""
    parser.add_argument(
        "--micro-batches",
        type=positive_int,
        default=None,
        help="sft: compare one padded batch of 32 per step with N micro-batches of similar lengths instead (the "
        "demo's demonstrations, half of them giving up at once)",
    )
    parser.add_argument(
        "--shared-prefix", action="store_true", help="sft: compare with each batch's shared prefix run once instead"
    )
    parser.add_argument("--algorithm", choices=["ppo", "grpo"], default="ppo", help="rl-update: the update timed")


def _parse(args: argparse.Namespace, console: Console) -> dict:
    from agentic.bench.parse import bench_parse

    result = bench_parse(args.task or None, episodes_per_task=args.episodes or 20, seed=args.seed)
    console.print(
        f"parse_action (Lark): {result['lark_actions_per_s']:,.0f} actions/s\n"
        f"regex parser (paper style): {result['regex_actions_per_s']:,.0f} actions/s\n"
        f"ratio Lark/regex: {result['lark_over_regex']:.3f}  (same {result['inputs']} inputs, one run)\n"
        f"inputs the regex parser reads differently: {result['regex_disagreements']} of {result['inputs']}\n"
        f"environment: {result['env_steps_per_s']:,.0f} steps/s over {result['env_steps']} oracle steps"
    )
    return result


ROLLOUT_SIDES = {
    "engine": "batched token-in/token-out engine",
    "batched_generate": "batched model.generate loop, re-tokenizing",
    "sequential": "sequential model.generate loop, re-tokenizing",
}


def _rollout(args: argparse.Namespace, console: Console) -> dict:
    from agentic.bench.constrained import bench_constrained
    from agentic.bench.rollout import BASELINES, bench_rollout

    task = args.task[0] if args.task else "Arithmetic"
    common = dict(
        n_episodes=args.episodes or 64,
        max_new_tokens=args.max_new_tokens,
        seed=args.seed,
        repeats=args.repeats or 3,
        mode=args.mode,
    )
    if args.constrained:
        result = bench_constrained(default_model_dir(args), task, **common)
        _print_constrained(result, console)
        return result
    baselines = list(dict.fromkeys(args.baseline or BASELINES))
    result = bench_rollout(default_model_dir(args), task, baselines=baselines, **common)
    for side, name in ROLLOUT_SIDES.items():
        if side in result:
            row = result[side]
            console.print(
                f"{name}: {row['episodes_per_s']:.2f} episodes/s ({row['agent_tokens_per_s']:,.0f} agent tokens/s)"
            )
    for side, ratio in result["speedup"].items():
        console.print(
            f"engine / {side}: {ratio:.1f}x  (best of {result['repeats']} runs each, "
            f"median ratio {result['median_speedup'][side]:.1f}x)"
        )
    console.print(
        f"{result['episodes']} episodes of {task}, {result['mode']} mode, same model and seeds, device {result['device']}"
    )
    return result


def _print_constrained(result: dict, console: Console) -> None:
    free, constrained, validity = result["free"], result["constrained"], result["validity"]
    console.print(
        f"free sampling: {free['episodes_per_s']:.2f} episodes/s ({free['agent_tokens_per_s']:,.0f} agent tokens/s)\n"
        f"constrained: {constrained['episodes_per_s']:.2f} episodes/s ({constrained['agent_tokens_per_s']:,.0f} agent tokens/s)\n"
        f"constraint overhead: {result['constraint_overhead']:.1%} of the rest of the constrained rollout's time "
        f"({result['constraint_seconds']:.2f}s of {constrained['seconds']:.2f}s)\n"
        f"constrained actions: {validity['invalid_actions']} invalid of {validity['turns']} "
        f"(rate {validity['invalid_action_rate']:.3f}); tool calls {validity['valid_tool_calls']} valid of "
        f"{validity['tool_calls']}; kinds {validity['kinds']}\n"
        f"(best of {result['repeats']} runs each; {result['episodes']} episodes of {result['task']}, same model and "
        f"seeds, {result['max_new_tokens']} tokens per action at most, device {result['device']})",
        markup=False,
    )


def _sft(args: argparse.Namespace, console: Console) -> dict:
    from agentic.training.bench_sft import bench_sft

    task = args.task[0] if args.task else "Arithmetic"
    if args.micro_batches or args.shared_prefix:
        return _sft_change(args, task, console)
    result = bench_sft(default_model_dir(args), task, steps=args.episodes or 30, seed=args.seed)
    console.print(
        f"TRL SFTTrainer: {result['trl']['tokens_per_s']:,.0f} training tokens/s\n"
        f"bare PyTorch loop: {result['bare']['tokens_per_s']:,.0f} training tokens/s\n"
        f"overhead (trainer time / bare time): {result['overhead']:.2f}x  ({result['steps']} steps of {result['batch_size']} demonstrations of {task}, device {result['device']})"
    )
    return result


def _sft_change(args: argparse.Namespace, task: str, console: Console) -> dict:
    from agentic.training.bench_sft import bench_sft_change

    change = {"micro_batches": args.micro_batches} if args.micro_batches else {}
    change |= {"share_prefix": True} if args.shared_prefix else {}
    result = bench_sft_change(default_model_dir(args), task, change=change, steps=args.episodes or 30, seed=args.seed)
    described = ", ".join(f"{name}={value}" for name, value in change.items())
    plain, changed = result["plain"], result["changed"]
    console.print(
        f"plain (one padded batch per step, every row run whole): {plain['tokens_per_s']:,.0f} training tokens/s, "
        f"mean loss {plain['mean_loss']:.4f}\n"
        f"with {described}: {changed['tokens_per_s']:,.0f} training tokens/s, mean loss {changed['mean_loss']:.4f}\n"
        f"speed-up: {result['speedup']:.2f}x  ({result['steps']} steps of {result['batch_size']} demonstrations of "
        f"{task}, {result['sloppy_demos']:.0%} giving up at once, one run each)",
        markup=False,
    )
    return result


def _rl_update(args: argparse.Namespace, console: Console) -> dict:
    from agentic.training.bench_rl import bench_rl_update

    task = args.task[0] if args.task else "Arithmetic"
    result = bench_rl_update(
        default_model_dir(args),
        task,
        algorithm=args.algorithm,
        updates=args.episodes or 8,
        repeats=args.repeats or 2,
        max_new_tokens=args.max_new_tokens,
        seed=args.seed,
    )
    console.print(
        f"every episode run whole: {result['whole_seconds']:.2f} s\n"
        f"shared prefix run once per pass: {result['shared_seconds']:.2f} s\n"
        f"speed-up: {result['speedup']:.2f}x  (best of {result['repeats']} runs each; {result['updates']} "
        f"{result['algorithm'].upper()} updates with the demo's settings on the same {result['episodes']} episodes of "
        f"{task}, {result['tokens']:,} tokens; final weights at most {result['max_weight_difference']:.1e} apart)",
        markup=False,
    )
    return result


def _fuzz(args: argparse.Namespace, console: Console) -> dict:
    from agentic.bench.fuzz import bench_fuzz

    result = bench_fuzz(args.task or None, episodes_per_task=args.episodes or 1000, seed=args.seed)
    for name, row in result["tasks"].items():
        console.print(
            f"{name}: {row['inputs']:,} inputs, {row['exceptions']} exceptions, slowest step {row['max_step_s']:.3f}s",
            markup=False,
        )
    console.print(
        f"inputs tried: {result['inputs']:,} in {result['episodes']:,} episodes\n"
        f"exceptions: {result['exceptions']}\n"
        f"other problems (observation outside its space, reward not finite, budget broken): {result['problems']}\n"
        f"files written by code answers: {result['files_written_by_answers']}\n"
        f"max step time: {result['max_step_s']:.3f}s\n"
        f"max observation size: {result['max_observation_chars']:,} characters (limit {result['observation_limit']:,})",
        markup=False,
    )
    for example in result["examples"]:
        console.print(f"  {example}", markup=False)
    return result


BENCHMARKS = {"parse": _parse, "rollout": _rollout, "sft": _sft, "rl-update": _rl_update, "fuzz": _fuzz}


def _run(args: argparse.Namespace, console: Console) -> None:
    result = BENCHMARKS[args.what](args, console)
    if args.json:
        print(json.dumps(result))


BENCH = Command("bench", "benchmarks, each a ratio against a baseline in the same run", _arguments, _run)
