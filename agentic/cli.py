"""The `agentic` command line. Every subcommand has --help; bad arguments print one line and exit 2."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Callable, Sequence

from rich.console import Console
from rich.table import Table


class UsageError(Exception):
    """A bad argument or input: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one clear line instead of usage + message
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def _cmd_tasks(args: argparse.Namespace, console: Console) -> None:
    from agentic.registry import gym_id, make_task, task_names

    for name in task_names():
        task = make_task(name)
        console.print(f"[bold]{name}[/]  ({gym_id(name)})  {task.description}")
        if args.schemas:
            console.print_json(json.dumps([t.schema() for t in task.tools]))
        else:
            for t in task.tools:
                console.print(f"    {t.signature()}")


def _cmd_tools(args: argparse.Namespace, console: Console) -> None:
    from agentic.registry import all_tools

    tools = all_tools()
    if args.json:
        print(json.dumps([t.schema() for t in tools.values()], indent=2))
        return
    table = Table("tool", "signature", "description", "time-out")
    for t in tools.values():
        table.add_row(t.name, t.signature(), t.description.splitlines()[0] if t.description else "", f"{t.timeout_s:g}s")
    console.print(table)


def _load_policy(name_or_path: str):
    """A model by directory or hub id; a path that does not exist is a usage error, not a hub lookup."""
    from pathlib import Path

    from agentic.policy import Policy

    if name_or_path.startswith((".", "/", "~")) and not Path(name_or_path).expanduser().exists():
        raise UsageError(f"agentic: model directory {name_or_path} does not exist")
    return Policy.from_pretrained(Path(name_or_path).expanduser() if name_or_path.startswith("~") else name_or_path)


def _sampling(args: argparse.Namespace):
    from agentic.policy import Sampling

    return Sampling(temperature=args.temperature, top_p=args.top_p, seed=args.seed or 0)


def _cmd_play(args: argparse.Namespace, console: Console) -> None:
    from agentic import play
    from agentic.env import AgenticEnvironment, oracle_action

    user = play.human_user(console) if args.user == "human" else None
    if args.model:
        policy = _load_policy(args.model)
        env = AgenticEnvironment(args.task, user=user, count_tokens=policy.count_tokens)
        actor = play.model_actor(policy, _sampling(args))
    else:
        env = AgenticEnvironment(args.task, user=user)
        actor = oracle_action if args.policy == "oracle" else play.human_actor(console)
    if args.policy == "human" and not args.model:
        console.print('[dim]Type one action per line, e.g. <tool name="calculator">{"expression": "2+2"}</tool>; \\n is a newline.[/]')
    play.play(env, actor, console, seed=args.seed)


def _cmd_eval(args: argparse.Namespace, console: Console) -> None:
    from pathlib import Path

    from agentic.evaluation import evaluate, report_markdown, report_rows
    from training.run_dir import RunDir

    if args.n < 1:
        raise UsageError("agentic eval: --n must be at least 1")
    policy = _load_policy(args.model)
    seeds = list(range(args.seed_start, args.seed_start + args.n))
    report = evaluate(policy, args.task, seeds, _sampling(args), batch_size=args.batch_size, progress=True)
    report["model"] = str(args.model)
    out = RunDir(Path(args.out) if args.out else Path("runs") / "eval" / args.task)
    out.write_report(report, report_markdown(report, title=f"Evaluation of {args.model}"))
    table = Table("metric", "value [Wilson 95%]", title=f"{args.task}: {args.model}")
    for metric, value in report_rows(report):
        table.add_row(metric, value)
    console.print(table)
    console.print(f"report: {out.path / 'report.json'}")


def _cmd_show(args: argparse.Namespace, console: Console) -> None:
    from agentic.trajectory import read_jsonl, render_trajectory

    trajectories = read_jsonl(args.file)
    if not trajectories:
        raise UsageError(f"agentic show: {args.file} holds no trajectories")
    indices = range(len(trajectories)) if args.all else [args.index]
    for index in indices:
        if not -len(trajectories) <= index < len(trajectories):
            raise UsageError(f"agentic show: --index {index} is out of range: the file holds {len(trajectories)} trajectories")
        console.print(render_trajectory(trajectories[index]))


def _default_model_dir(args: argparse.Namespace) -> str:
    """``--model``, or the embedded tiny model built for the task in a temporary directory."""
    if args.model:
        return args.model
    import tempfile

    from training.tiny_model import build_tiny_model

    return str(build_tiny_model([args.task[0] if args.task else "Arithmetic"], tempfile.mkdtemp(prefix="agentic-tiny-")))


def _cmd_bench(args: argparse.Namespace, console: Console) -> None:
    if args.what == "parse":
        from agentic.bench.parse import bench_parse

        result = bench_parse(args.task or None, episodes_per_task=args.episodes or 20, seed=args.seed)
        console.print(
            f"parse_action (Lark): {result['lark_actions_per_s']:,.0f} actions/s\n"
            f"regex parser (paper style): {result['regex_actions_per_s']:,.0f} actions/s\n"
            f"ratio Lark/regex: {result['lark_over_regex']:.3f}  (same {result['inputs']} inputs, one run)\n"
            f"inputs the regex parser reads differently: {result['regex_disagreements']} of {result['inputs']}\n"
            f"environment: {result['env_steps_per_s']:,.0f} steps/s over {result['env_steps']} oracle steps"
        )
    elif args.what == "rollout":
        from agentic.bench.rollout import bench_rollout

        task = args.task[0] if args.task else "Arithmetic"
        result = bench_rollout(
            _default_model_dir(args), task, n_episodes=args.episodes or 64, max_new_tokens=args.max_new_tokens, seed=args.seed, repeats=args.repeats
        )
        batched, sequential = result["batched"], result["sequential"]
        console.print(
            f"batched token-in/token-out: {batched['episodes_per_s']:.2f} episodes/s ({batched['agent_tokens_per_s']:,.0f} agent tokens/s)\n"
            f"sequential re-tokenizing loop: {sequential['episodes_per_s']:.2f} episodes/s ({sequential['agent_tokens_per_s']:,.0f} agent tokens/s)\n"
            f"ratio: {result['speedup']:.1f}x  (best of {result['repeats']} runs each, median ratio {result['median_speedup']:.1f}x; "
            f"{result['episodes']} episodes of {task}, same model and seeds, device {result['device']})"
        )
    elif args.what == "sft":
        from training.bench_sft import bench_sft

        task = args.task[0] if args.task else "Arithmetic"
        result = bench_sft(_default_model_dir(args), task, steps=args.episodes or 30, seed=args.seed)
        console.print(
            f"TRL SFTTrainer: {result['trl']['tokens_per_s']:,.0f} training tokens/s\n"
            f"bare PyTorch loop: {result['bare']['tokens_per_s']:,.0f} training tokens/s\n"
            f"overhead (trainer time / bare time): {result['overhead']:.2f}x  ({result['steps']} steps of {result['batch_size']} demonstrations of {task}, device {result['device']})"
        )
    if args.json:
        print(json.dumps(result))


def _add_option_flags(parser: argparse.ArgumentParser, options_class: type, skip: tuple[str, ...] = ()) -> None:
    """One ``--flag`` per field of an options dataclass, typed by its default (TRL's config/trainer style)."""
    for field in dataclasses.fields(options_class):
        if field.name in skip:
            continue
        flag = "--" + field.name.replace("_", "-")
        if isinstance(field.default, bool):
            parser.add_argument(flag, dest=field.name, action=argparse.BooleanOptionalAction, default=field.default)
        else:
            parser.add_argument(flag, dest=field.name, type=type(field.default), default=field.default, help=f"(default {field.default})")


def _options(options_class: type, args: argparse.Namespace, **fixed):
    names = {f.name for f in dataclasses.fields(options_class)}
    return options_class(**{k: v for k, v in vars(args).items() if k in names}, **fixed)


def _cmd_sft(args: argparse.Namespace, console: Console) -> None:
    from training.sft import run_sft
    from training.sft_config import SFTOptions

    result = run_sft(_options(SFTOptions, args))
    console.print(f"SFT done in {result.wall_seconds:.0f} s ({result.tokens_per_second:,.0f} tokens/s): model {result.model_dir}, report {result.run_dir / 'report.md'}")


def _cmd_rl(args: argparse.Namespace, console: Console) -> None:
    from accelerate import PartialState

    from training.ppo import TrainingDiverged
    from training.rl import run_rl
    from training.rl_config import RLOptions

    try:
        result = run_rl(_options(RLOptions, args, algorithm=args.command))
    except TrainingDiverged as err:
        raise SystemExit(f"agentic {args.command}: {err}") from None
    if not PartialState().is_main_process:
        return
    report = result.report
    evals = report["evaluations"]
    success = ""
    if evals:
        first, last = min(evals), max(evals)
        success = f"; held-out success {evals[first]['success']:.3f} (update {first}) -> {evals[last]['success']:.3f} (update {last})"
    console.print(
        f"{args.command.upper()} {report['updates']} updates ({result.stop_reason}) in {report['train_seconds']:.0f} s, "
        f"{report['seconds_per_update']:.1f} s/update, {report['episodes_per_second']:.1f} episodes/s{success}. "
        f"Model {result.model_dir}, report {result.run_dir / 'report.md'}"
    )


def _cmd_demo(args: argparse.Namespace, console: Console) -> None:
    from training.demo import column_names, run_demo, summary_rows
    from training.demo_config import DEMO_SFT, DemoOptions

    sft_flags = {"n_demos": args.n_demos, "epochs": args.epochs, "max_seconds": args.sft_seconds, "sloppy_demos": args.sloppy_demos}
    options = DemoOptions(
        task=args.task,
        out_dir=args.out,
        n_eval=args.n_eval,
        seed=args.seed,
        sft=dataclasses.replace(DEMO_SFT, **{k: v for k, v in sft_flags.items() if v is not None}),
        algorithm=args.algorithm,
        rl_iterations=args.rl_iterations,
        rl_seconds=args.rl_seconds,
    )
    report = run_demo(options)
    table = Table(*column_names(report), title=f"agentic demo: {args.task} on {args.n_eval} held-out seeds, greedy (Wilson 95%)")
    for row in summary_rows(report):
        table.add_row(*row)
    console.print(table)
    console.print(
        f"SFT {report['sft_train_seconds']:.0f} s of training, {args.algorithm.upper()} {report['rl_updates']} updates in "
        f"{report['rl_train_seconds']:.0f} s; whole demo {report['total_seconds']:.0f} s. Report: {args.out}/report.md; model: {report['model_dir']}"
    )


def _add_sampling_flags(parser: argparse.ArgumentParser, temperature: float) -> None:
    parser.add_argument("--temperature", type=float, default=temperature, help=f"0 is greedy (default {temperature:g})")
    parser.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (default 1)")


_PPO_ONLY_FLAGS = ("episodes", "critic", "value_lr", "gamma", "lam", "value_coef", "value_clip_range", "whiten_advantages", "kl_target", "kl_horizon")


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The ``agentic`` parser for the command line ``argv``: ``corpus``'s subcommands are built only when it is the
    command, as their settings come with trl, transformers and datasets (seconds of imports for every command)."""
    from training.demo_config import DEMO_SFT, DemoOptions
    from training.rl_config import RLOptions
    from training.sft_config import SFTOptions

    parser = _Parser(prog="agentic", description="Multi-turn agentic RL for small language models.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    tasks = sub.add_parser("tasks", help="list registered tasks, their Gymnasium ids and tools")
    tasks.add_argument("--schemas", action="store_true", help="print each tool's full JSON Schema")
    tasks.set_defaults(run=_cmd_tasks)

    tools = sub.add_parser("tools", help="list registered tools with their signatures")
    tools.add_argument("--json", action="store_true", help="print the JSON Schemas")
    tools.set_defaults(run=_cmd_tools)

    play = sub.add_parser("play", help="roll out one episode interactively")
    play.add_argument("--task", required=True, help="registered task name (see `agentic tasks`)")
    play.add_argument("--policy", choices=["human", "oracle"], default="human", help="who acts (default: you)")
    play.add_argument("--user", choices=["simulator", "human"], default="simulator", help="who answers <ask>")
    play.add_argument("--model", help="a model directory or hub id that acts instead (full model or PEFT adapter)")
    play.add_argument("--seed", type=int, default=None, help="instance seed")
    _add_sampling_flags(play, temperature=0.0)
    play.set_defaults(run=_cmd_play)

    evaluation = sub.add_parser("eval", help="tool-call accuracy and episode metrics of a model on held-out seeds")
    evaluation.add_argument("--model", required=True, help="model directory or hub id (full model or PEFT adapter)")
    evaluation.add_argument("--task", required=True, help="registered task name")
    evaluation.add_argument("--n", type=int, default=200, help="number of evaluation seeds (default 200)")
    evaluation.add_argument("--seed-start", type=int, default=0, help="first evaluation seed; SFT demos use 10000 and up")
    evaluation.add_argument("--batch-size", type=int, default=64)
    evaluation.add_argument("--out", help="run directory for report.json / report.md (default runs/eval/TASK)")
    _add_sampling_flags(evaluation, temperature=0.0)
    evaluation.add_argument("--seed", type=int, default=0, help="sampling seed (when temperature > 0)")
    evaluation.set_defaults(run=_cmd_eval)

    show = sub.add_parser("show", help="render a saved trajectory, agent tokens apart from environment tokens")
    show.add_argument("file", help="a trajectories JSONL file (e.g. demos.jsonl in an SFT run directory)")
    show.add_argument("--index", type=int, default=0, help="which trajectory (default the first)")
    show.add_argument("--all", action="store_true", help="render every trajectory in the file")
    show.set_defaults(run=_cmd_show)

    demo = sub.add_parser(
        "demo",
        help="the whole loop on the embedded tiny model: build, SFT on sloppy demonstrations, PPO, before/after report",
        description="Build the tiny model, SFT it on demonstrations most of which skip the tool, then PPO (or GRPO) it "
        "on the task's reward alone; evaluate untrained, SFT and RL models on the same held-out seeds.",
    )
    demo.add_argument("--task", default="Arithmetic", help="registered task (default Arithmetic)")
    demo.add_argument("--out", default="runs/demo", help="run directory (default runs/demo)")
    demo.add_argument("--n-eval", type=int, default=200, help="held-out evaluation seeds 0..N-1 (default 200)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--n-demos", type=int, help=f"SFT demonstrations (default {DEMO_SFT.n_demos})")
    demo.add_argument("--epochs", type=float, help=f"SFT epochs (default {DEMO_SFT.epochs:g})")
    demo.add_argument("--sft-seconds", type=float, help="stop SFT training after this many seconds")
    demo.add_argument("--sloppy-demos", type=float, help="fraction of demonstrations that give up at once (default 0.5)")
    demo.add_argument("--algorithm", choices=["ppo", "grpo"], default="ppo", help="the RL stage (default ppo)")
    demo.add_argument("--rl-iterations", type=int, default=DemoOptions.rl_iterations, help=f"RL updates (default {DemoOptions.rl_iterations})")
    demo.add_argument("--rl-seconds", type=float, default=DemoOptions.rl_seconds, help=f"start no RL update after this many seconds (default {DemoOptions.rl_seconds:g}; 0: no limit)")
    demo.set_defaults(run=_cmd_demo)

    sft = sub.add_parser("sft", help="agentic SFT warm-up on oracle demonstrations (loss on agent tokens only)")
    _add_option_flags(sft, SFTOptions)
    sft.set_defaults(run=_cmd_sft)

    for algorithm, description, not_for_it in (
        ("ppo", "turn-level PPO from a warm-up model (critic, GAE over turns, KL to the reference)", ("groups", "group_size")),
        ("grpo", "GRPO from a warm-up model (group-relative advantages, no critic)", _PPO_ONLY_FLAGS),
    ):
        rl = sub.add_parser(algorithm, help=description, description=f"{description}. Several processes: torchrun --standalone --nproc_per_node N -m agentic.cli {algorithm} ... (CPU, gloo) or accelerate launch --num_processes N -m agentic.cli {algorithm} ... (GPUs)")
        _add_option_flags(rl, RLOptions, skip=("algorithm", *not_for_it))
        rl.set_defaults(run=_cmd_rl)

    bench = sub.add_parser("bench", help="benchmarks, each a ratio against a baseline in the same run")
    bench.add_argument(
        "what",
        choices=["parse", "rollout", "sft"],
        help="parse: parse_action vs a paper-style regex parser, and env steps/s; "
        "rollout: the batched engine vs a sequential re-tokenizing loop; sft: SFTTrainer vs a bare PyTorch loop",
    )
    bench.add_argument("--task", action="append", help="task(s) to draw inputs or episodes from (parse: default all; rollout: Arithmetic)")
    bench.add_argument("--episodes", type=int, default=None, help="oracle episodes per task (parse, default 20), episodes (rollout, default 64) or training steps (sft, default 30)")
    bench.add_argument("--model", help="rollout, sft: model directory (default: a fresh embedded tiny model)")
    bench.add_argument("--max-new-tokens", type=int, default=64, help="rollout: per-turn token limit")
    bench.add_argument("--repeats", type=int, default=3, help="rollout: timed runs of each side, taking turns (the best of each is compared)")
    bench.add_argument("--seed", type=int, default=0)
    bench.add_argument("--json", action="store_true", help="also print the result as JSON")
    bench.set_defaults(run=_cmd_bench)

    corpus = sub.add_parser("corpus", help="the single-turn corpus pipeline: SFT -> reward model -> PPO -> evaluation")
    if list(argv[:1]) == ["corpus"]:
        from training.corpus.cli import add_corpus_commands

        add_corpus_commands(corpus)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # weight loading/saving bars; our own progress bars stay
    console = Console(soft_wrap=True)
    try:
        argv = sys.argv[1:] if argv is None else list(argv)
        args = build_parser(argv).parse_args(argv)
        run: Callable[[argparse.Namespace, Console], None] = args.run
        run(args, console)
    except UsageError as err:
        print(err, file=sys.stderr)
        return 2
    except (KeyError, ValueError, OSError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"agentic: error: {message}", file=sys.stderr)
        return 2
    except (EOFError, KeyboardInterrupt):
        print("\nagentic: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
