"""`AgenticEnvironment`: a Gymnasium environment in which a language model acts in text.

One step takes the agent's text for one turn, parses it (`parse_action`) and
dispatches it: a tool call goes to the `ToolRegistry` of the instance's tools
(`Task.instance_tools`) and comes back as ``<result>…</result>``; a question goes to the user
simulator and comes back as ``<user>…</user>``; ``<finish>`` ends the episode with the task's
score, unless the task has a next request for the agent (`Task.next_user_turn`, a conversation
of several requests), which comes back as ``<user>…</user>`` with the event ``"user_turn"``;
plain text and invalid actions get ``<sys>…</sys>`` feedback. The observation is always the full
context the policy continues from. ``reset(seed=...)`` takes the instance from `Task.instance_for`, for
the split ``options["split"]`` ("training" unless given; evaluation passes "evaluation"), so that
evaluation instances never occur in training.

Budgets (defaults from the task's `Budget`, overridable per environment):

- every step spends one turn; after ``max_turns`` turns without ``<finish>`` the episode is truncated;
- invalid actions (unparseable, plain text, over ``max_action_tokens``, unknown tool,
  arguments that fail the schema) count against ``max_invalid``; the ``max_invalid``-th truncates;
- tool calls that run (including ones that raise or time out) count against ``max_tool_calls``;
  a call beyond it is not run and truncates the episode.

On truncation the task scores ``answer=None`` and that score is the last reward.

Every size follows `agentic.limits`: an action over `ACTION_CHARS` characters is invalid without
being parsed, users' replies and all messages are capped, and an episode whose context comes within
one turn's maximum of `OBSERVATION_CHARS` is truncated, so an observation never passes that bound.

A free-text task (`Task.free_text`) has no action grammar: the whole text of a step is the answer, scored at once.
"""

from __future__ import annotations

import random
import re
import string
from collections.abc import Callable
from typing import Any

import gymnasium
from gymnasium import spaces
from gymnasium.error import CustomSpaceError
from gymnasium.vector.utils import shared_memory

from agentic.actions import Action, ActionKind
from agentic.limits import ACTION_CHARS, OBSERVATION_CHARS, TURN_CHARS, USER_REPLY_CHARS, cap, clean_text
from agentic.parsing import parse_action
from agentic.registry import make_task
from agentic.task import INVALID_EVENTS, Budget, Score, Task, Turn, check_split
from agentic.tooling import ToolRegistry, ToolResult

REPLY_TAGS = {"tool": "result", "user": "user", "system": "sys"}
"""The tag of the environment's reply that stands for a chat message of each role: a tool's output, the user's words,
the environment's own feedback."""


def reply_text(tag: str, text: str) -> str:
    """What the environment appends for a reply tagged ``tag`` (one of `REPLY_TAGS`' values)."""
    return f"\n<{tag}>{text}</{tag}>\n"


MAX_CONTEXT_CHARS = OBSERVATION_CHARS
_SUBWORD = re.compile(r"\s?(?:\w{1,6}|[^\w\s])|\s{1,6}")


def approximate_token_count(text: str) -> int:
    """Word pieces of up to six characters and punctuation marks, each with one space before it,
    and runs of other whitespace six characters a token: a tokenizer-free stand-in for the per-turn
    token budget (pass ``count_tokens`` to use the policy's tokenizer). Whitespace counts, so a page
    of blanks cannot pass as a short action."""
    return len(_SUBWORD.findall(text))


class UnicodeText(spaces.Text):
    """A `Text` space holding any Unicode string of bounded length.

    Gymnasium's `Text` checks membership against a finite charset; agent text is
    arbitrary Unicode, so membership only bounds the length. Samples are drawn from
    printable ASCII, which includes the sentinel characters.
    """

    def __init__(self, max_length: int, *, min_length: int = 0, seed: int | None = None):
        super().__init__(max_length, min_length=min_length, charset=string.printable, seed=seed)

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and self.min_length <= len(x) <= self.max_length


@shared_memory.create_shared_memory.register(UnicodeText)
def _refuse_shared_memory(space: UnicodeText, n: int = 1, ctx: Any = None) -> Any:
    """Gymnasium's AsyncVectorEnv reads a shared-memory observation once, when it is built: fine for
    arrays (views that follow the memory), wrong for strings (it returned the initial one, 10**6
    zeros, and failed on non-ASCII). So it is refused, in gymnasium's words, at construction."""
    raise CustomSpaceError("text observations cannot be shared; use AsyncVectorEnv(..., shared_memory=False)")


class AgenticEnvironment(gymnasium.Env[str, str]):
    metadata = {"render_modes": ["ansi", "human"], "render_fps": 4}

    def __init__(
        self,
        task: str | Task,
        *,
        render_mode: str | None = None,
        budget: Budget | None = None,
        count_tokens: Callable[[str], int] = approximate_token_count,
        user: Callable[[Any, str, dict[str, Any]], str] | None = None,
        **task_kwargs: Any,
    ):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.task = make_task(task, **task_kwargs) if isinstance(task, str) else task
        self.budget = budget or self.task.budget
        self.tools = ToolRegistry(self.task.tools)
        self.count_tokens = count_tokens
        self.user = user or self.task.user
        self.render_mode = render_mode
        self.observation_space = UnicodeText(OBSERVATION_CHARS)
        self.action_space = UnicodeText(ACTION_CHARS)
        self.instance: Any = None
        self.history: list[Turn] = []
        self.context = ""
        self._done = True

    # -- Gymnasium API -------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        rng = random.Random(int(self.np_random.integers(2**63)))
        options = options or {}
        split = check_split(options.get("split", "training"))
        self.instance = options["instance"] if "instance" in options else self.task.instance_for(seed, rng, split)
        self.tools = ToolRegistry(self.task.instance_tools(self.instance))
        self.state = self.task.initial_state(self.instance)
        self.history = []
        self.turns = self.tool_calls = self.invalid = 0
        self.context = clean_text(self.task.prompt(self.instance))
        if len(self.context) > OBSERVATION_CHARS - TURN_CHARS:
            raise ValueError(
                f"{self.task.name}'s prompt has {len(self.context)} characters, over the observation limit"
            )
        self._done = False
        return self.context, {"task": self.task.name, "split": split, "budget": self._budget_left()}

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        if self._done:
            raise RuntimeError("the episode is over: call reset() before step()")
        text = clean_text(action if isinstance(action, str) else str(action))
        self.turns += 1
        parsed = self._parse(text)
        event, delta, result, score = self._dispatch(parsed)
        delta = clean_text(delta)
        if event in INVALID_EVENTS:
            self.invalid += 1
        consumed = cap(text[: len(text) - len(parsed.discarded)], ACTION_CHARS)
        terminated = score is not None
        truncated, reason = False, None
        if not terminated:
            reason = self._spent_budget(event, len(self.context) + len(consumed) + len(delta))
            if reason is not None:
                truncated = True
                delta += f"<sys>episode over: {reason}</sys>\n"
        turn = Turn(parsed, event, delta, result)
        shaping = 0.0 if terminated else self.task.shaping(self.instance, turn, self.state)
        if truncated:
            score = self.task.score(self.instance, None, [*self.history, turn])
        terminal = score.total if score is not None else 0.0
        reward = float(shaping + terminal)
        self.history.append(Turn(parsed, event, delta, result, reward))
        self.context += consumed + delta
        self._done = terminated or truncated
        info = {
            "action": parsed,
            "event": event,
            "delta": delta,
            "tool_result": result,
            "reward_breakdown": {"shaping": shaping, **({"terminal": terminal} | (score.breakdown if score else {}))},
            "score": score,
            "budget": self._budget_left(),
            "truncation_reason": reason,
        }
        if self.render_mode == "human":
            print(consumed + delta, end="", flush=True)
        return self.context, reward, terminated, truncated, info

    def render(self) -> str | None:
        if self.render_mode == "ansi":
            return self.context
        if self.render_mode == "human":
            print(self.context)
        return None

    def close(self) -> None:
        self.task.close()
        super().close()

    # -- dispatch ------------------------------------------------------------------------

    def _parse(self, text: str) -> Action:
        """`parse_action` (a free-text task's whole text is its answer), after the size checks: characters first
        (so a huge text is never parsed), then tokens."""
        if len(text) > ACTION_CHARS:
            return Action(ActionKind.INVALID, error=f"the action is longer than {ACTION_CHARS} characters", raw=text)
        parsed = Action(ActionKind.FINISH, content=text, raw=text) if self.task.free_text else parse_action(text)
        if self.count_tokens(text) > self.budget.max_action_tokens:
            error = f"the action is longer than {self.budget.max_action_tokens} tokens"
            return Action(ActionKind.INVALID, thought=parsed.thought, error=error, raw=text)
        return parsed

    def _dispatch(self, action: Action) -> tuple[str, str, ToolResult | None, Score | None]:
        """(event, appended text, tool result, terminal score) for one parsed action."""
        if action.kind is ActionKind.FINISH:
            request = self.task.next_user_turn(self.instance, action.content, self.history)
            if request is not None:
                return "user_turn", reply_text("user", request), None, None
            return "finish", "", None, self.task.score(self.instance, action.content, self.history)
        if action.kind is ActionKind.ASK:
            reply = cap(str(self.user(self.instance, action.content, self.state)), USER_REPLY_CHARS)
            return "ask", reply_text("user", reply), None, None
        if action.kind is ActionKind.TOOL:
            if action.tool in self.tools and self.tool_calls >= self.budget.max_tool_calls:
                return "over_budget", "\n", None, None
            result = self.tools.call(
                action.tool, action.arguments, {"instance": self.instance, "state": self.state, "env": self}
            )
            if not result.executed:
                return "bad_tool_call", reply_text("sys", result.text), result, None
            self.tool_calls += 1
            return ("tool" if result.ok else "tool_error"), reply_text("result", result.text), result, None
        if action.kind is ActionKind.TEXT:
            message = (
                'no action: end the turn with <tool name="NAME">{...}</tool>, <ask>...</ask> or <finish>...</finish>'
            )
            return "text", reply_text("sys", message), None, None
        return "invalid", reply_text("sys", action.error), None, None

    def _spent_budget(self, event: str, context_chars: int) -> str | None:
        if event == "over_budget":
            return f"tool-call budget of {self.budget.max_tool_calls} spent"
        if context_chars > OBSERVATION_CHARS - TURN_CHARS:
            return f"the context is full ({context_chars} characters)"
        if self.invalid >= self.budget.max_invalid:
            return f"{self.invalid} invalid actions (budget {self.budget.max_invalid})"
        if self.turns >= self.budget.max_turns:
            return f"turn budget of {self.budget.max_turns} spent without <finish>"
        return None

    def _budget_left(self) -> dict[str, int]:
        return {
            "turns": self.budget.max_turns - getattr(self, "turns", 0),
            "tool_calls": self.budget.max_tool_calls - getattr(self, "tool_calls", 0),
            "invalid": self.budget.max_invalid - getattr(self, "invalid", 0),
        }


def oracle_action(env: AgenticEnvironment) -> str:
    """The task oracle's next action in ``env``'s current episode."""
    return env.task.oracle(env.instance, env.history)


def run_episode(
    env: AgenticEnvironment, act: Callable[[AgenticEnvironment], str], seed: int | None = None, split: str = "training"
) -> list[dict[str, Any]]:
    """Reset ``env`` with ``seed`` for ``split`` and step it with ``act(env)`` until the episode ends; the ``info`` of
    every step."""
    env.reset(seed=seed, options={"split": split})
    infos = []
    while True:
        *_, terminated, truncated, info = env.step(act(env))
        infos.append(info)
        if terminated or truncated:
            return infos
