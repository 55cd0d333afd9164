"""`agentic play` and `agentic show`: one episode interactively, and saved trajectories rendered."""

from __future__ import annotations

import argparse

from rich.console import Console

from agentic.cli.command import Command, UsageError
from agentic.cli.flags import non_negative_int
from agentic.cli.model_args import add_mode_flag, add_sampling_flags, load_policy, sampling_from


def _play_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", required=True, help="registered task name (see `agentic tasks`)")
    parser.add_argument("--policy", choices=["human", "oracle"], default="human", help="who acts (default: you)")
    parser.add_argument("--user", choices=["simulator", "human"], default="simulator", help="who answers <ask>")
    parser.add_argument("--model", help="a model directory or hub id that acts instead (full model or PEFT adapter)")
    parser.add_argument("--seed", type=non_negative_int, default=None, help="instance seed")
    add_mode_flag(parser)
    add_sampling_flags(parser, temperature=0.0, set_by_command=("seed",))


def _play(args: argparse.Namespace, console: Console) -> None:
    from agentic import play
    from agentic.env import AgenticEnvironment, oracle_action

    if args.constrained and not args.model:
        raise UsageError("agentic play: --constrained constrains a model's sampling: give --model")
    user = play.human_user(console) if args.user == "human" else None
    if args.model:
        policy = load_policy(args.model, args.mode)
        env = AgenticEnvironment(args.task, user=user, count_tokens=policy.count_tokens)
        actor = play.model_actor(policy, sampling_from(args))
    else:
        env = AgenticEnvironment(args.task, user=user)
        actor = oracle_action if args.policy == "oracle" else play.human_actor(console)
    if args.policy == "human" and not args.model:
        console.print(
            '[dim]Type one action per line, e.g. <tool name="calculator">{"expression": "2+2"}</tool>; \\n is a newline.[/]'
        )
    play.play(env, actor, console, seed=args.seed)


def _show_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="a trajectories JSONL file (e.g. demos.jsonl in an SFT run directory)")
    parser.add_argument("--index", type=int, default=0, help="which trajectory (default the first)")
    parser.add_argument("--all", action="store_true", help="render every trajectory in the file")


def _show(args: argparse.Namespace, console: Console) -> None:
    from agentic.trajectory import read_trajectories, render_trajectory

    trajectories = read_trajectories(args.file)
    if not trajectories:
        raise UsageError(f"agentic show: {args.file} holds no trajectories")
    indices = range(len(trajectories)) if args.all else [args.index]
    for index in indices:
        if not -len(trajectories) <= index < len(trajectories):
            raise UsageError(
                f"agentic show: --index {index} is out of range: the file holds {len(trajectories)} trajectories"
            )
        console.print(render_trajectory(trajectories[index]))


PLAY = Command("play", "roll out one episode interactively", _play_arguments, _play)
SHOW = Command("show", "render a saved trajectory, agent tokens apart from environment tokens", _show_arguments, _show)
