"""The `agentic` command line. Every subcommand has --help; bad arguments print one line and exit 2."""

from __future__ import annotations

import argparse
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


def _cmd_play(args: argparse.Namespace, console: Console) -> None:
    from agentic import play
    from agentic.env import AgenticEnvironment

    env = AgenticEnvironment(args.task, user=play.human_user(console) if args.user == "human" else None)
    actor = play.oracle_actor if args.policy == "oracle" else play.human_actor(console)
    if args.policy == "human":
        console.print('[dim]Type one action per line, e.g. <tool name="calculator">{"expression": "2+2"}</tool>; \\n is a newline.[/]')
    play.play(env, actor, console, seed=args.seed)


def _cmd_bench(args: argparse.Namespace, console: Console) -> None:
    if args.what == "parse":
        from agentic.bench.parse import bench_parse

        result = bench_parse(args.task or None, episodes_per_task=args.episodes, seed=args.seed)
        console.print(
            f"parse_action (Lark): {result['lark_actions_per_s']:,.0f} actions/s\n"
            f"regex parser (paper style): {result['regex_actions_per_s']:,.0f} actions/s\n"
            f"ratio Lark/regex: {result['lark_over_regex']:.3f}  (same {result['inputs']} inputs, one run)\n"
            f"inputs the regex parser reads differently: {result['regex_disagreements']} of {result['inputs']}\n"
            f"environment: {result['env_steps_per_s']:,.0f} steps/s over {result['env_steps']} oracle steps"
        )
    if args.json:
        print(json.dumps(result))


def build_parser() -> argparse.ArgumentParser:
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
    play.add_argument("--seed", type=int, default=None, help="instance seed")
    play.set_defaults(run=_cmd_play)

    bench = sub.add_parser("bench", help="benchmarks, each a ratio against a baseline in the same run")
    bench.add_argument("what", choices=["parse"], help="parse: parse_action vs a paper-style regex parser, and env steps/s")
    bench.add_argument("--task", action="append", help="task(s) whose oracle actions are the inputs (default: all)")
    bench.add_argument("--episodes", type=int, default=20, help="oracle episodes per task")
    bench.add_argument("--seed", type=int, default=0)
    bench.add_argument("--json", action="store_true", help="also print the result as JSON")
    bench.set_defaults(run=_cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    console = Console(soft_wrap=True)
    try:
        args = build_parser().parse_args(argv)
        run: Callable[[argparse.Namespace, Console], None] = args.run
        run(args, console)
    except UsageError as err:
        print(err, file=sys.stderr)
        return 2
    except (KeyError, ValueError, FileNotFoundError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"agentic: error: {message}", file=sys.stderr)
        return 2
    except (EOFError, KeyboardInterrupt):
        print("\nagentic: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
