"""`agentic tasks` and `agentic tools`: what is registered."""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.table import Table

from agentic.cli.command import Command


def _task_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--schemas", action="store_true", help="print each tool's full JSON Schema")


def _tasks(args: argparse.Namespace, console: Console) -> None:
    from agentic.registry import gym_id, make_task, task_names

    for name in task_names():
        task = make_task(name)
        console.print(f"[bold]{name}[/]  ({gym_id(name)})  {task.description}")
        if task.held_out:
            console.print("    held out: evaluation instances never occur in training, by content", markup=False)
        else:
            console.print("    not held out: evaluation may draw instances that training draws", markup=False)
        for note in task.notes:
            console.print(f"    note: {note}", markup=False)
        if args.schemas:
            console.print_json(json.dumps([t.schema() for t in task.tools]))
        else:
            for t in task.tools:
                console.print(f"    {t.signature()}")


def _tool_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the JSON Schemas")


def _tools(args: argparse.Namespace, console: Console) -> None:
    from agentic.registry import all_tools

    tools = all_tools()
    if args.json:
        print(json.dumps([t.schema() for t in tools.values()], indent=2))
        return
    table = Table("tool", "signature", "description", "time-out")
    for t in tools.values():
        table.add_row(
            t.name, t.signature(), t.description.splitlines()[0] if t.description else "", f"{t.timeout_s:g}s"
        )
    console.print(table)


TASKS = Command("tasks", "list registered tasks, their Gymnasium ids and tools", _task_arguments, _tasks)
TOOLS = Command("tools", "list registered tools with their signatures", _tool_arguments, _tools)
