"""agentic: multi-turn agentic reinforcement learning for small language models.

The core: the action grammar, tools, the task contract and the Gymnasium environment.
Built-in tools and tasks (`agentic.tools`, `agentic.tasks`) are found through entry points,
never imported here, so importing `agentic` stays light.
"""

from agentic.actions import Action, ActionKind, ask, finish, render_action, tool_call
from agentic.env import AgenticEnvironment, oracle_action, run_episode
from agentic.parsing import parse_action
from agentic.registry import (
    all_tools,
    gym_id,
    make_task,
    register_builtin_gym_ids,
    register_task,
    register_tool,
    task_names,
)
from agentic.task import Budget, Score, Task, Turn
from agentic.tooling import Tool, ToolRegistry, ToolResult, tool

register_builtin_gym_ids()

__all__ = [
    "Action",
    "ActionKind",
    "AgenticEnvironment",
    "Budget",
    "Score",
    "Task",
    "Tool",
    "ToolRegistry",
    "ToolResult",
    "Turn",
    "all_tools",
    "ask",
    "finish",
    "gym_id",
    "make_task",
    "oracle_action",
    "parse_action",
    "register_task",
    "register_tool",
    "render_action",
    "run_episode",
    "task_names",
    "tool",
    "tool_call",
]
__version__ = "0.1.0"
