"""Interactive rollouts: a person, the oracle or a model acts; the simulator or a person answers `<ask>`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.text import Text

from agentic.constraint import episode_grammar
from agentic.env import AgenticEnvironment
from agentic.trajectory import visible

Actor = Callable[[AgenticEnvironment], str]

_STYLES = {"<result>": "green", "<user>": "yellow", "<sys>": "red"}


def environment_text(delta: str) -> Text:
    """The environment's reply, coloured by who speaks: tool, user or environment."""
    style = next((s for tag, s in _STYLES.items() if tag in delta), "dim")
    return Text(visible(delta), style=style)


def model_actor(policy: Any, sampling: Any) -> Actor:
    """A language model acting token-in/token-out, its context encoded as the rollout engine encodes an episode
    (the policy's `agentic.encoding`, raw text or chat): the ids are extended, never re-encoded. Under
    constrained sampling each action is drawn from the grammar of the actions valid in the episode's state."""
    ids: list[int] = []
    last_action: list[int] = []

    def act(env: AgenticEnvironment) -> str:
        if not env.history:
            ids[:] = policy.encoding.prompt(env).ids
        else:
            ids.extend(policy.encoding.reply(env.history[-1].observation, last_action).ids)

        def grammar(row: int, limit: int) -> str:  # under constrained sampling: the actions valid in env's state
            return episode_grammar(env, min(limit, env.budget.max_action_tokens))

        generation = policy.generate([ids], sampling, grammar)[0]
        ids.extend(generation.token_ids)
        last_action[:] = generation.token_ids
        return policy.encoding.environment_text(generation.text, generation.token_ids)

    return act


def human_actor(console: Console) -> Actor:
    """Reads one action per line; ``\\n`` in the line stands for a newline."""

    def act(env: AgenticEnvironment) -> str:
        return console.input("[bold cyan]agent> [/]").replace("\\n", "\n")

    return act


def human_user(console: Console) -> Callable[[Any, str, dict[str, Any]], str]:
    """Asks the person at the terminal. The model's question is shown as plain text: never read as Rich
    markup (``[/]`` would raise, ``[link=…]`` would plant a hyperlink) and with control characters escaped."""

    def reply(instance: Any, question: str, state: dict[str, Any]) -> str:
        prompt = Text.assemble(("user (asked: ", "bold yellow"), visible(question), (")> ", "bold yellow"))
        return console.input(prompt)

    return reply


def play(env: AgenticEnvironment, actor: Actor, console: Console, seed: int | None = None) -> dict[str, Any]:
    """Run one episode, printing the transcript as it grows; returns the last step's info."""
    observation, _ = env.reset(seed=seed)
    console.print(Text(visible(observation), style="bold"))
    total = 0.0
    while True:
        action = actor(env)
        _, reward, terminated, truncated, info = env.step(action)
        total += reward
        console.print(Text(visible(action[: len(action) - len(info["action"].discarded)]), style="cyan"), end="")
        console.print(environment_text(info["delta"]), end="")
        if terminated or truncated:
            score = info["score"]
            console.print()
            console.print(
                f"[bold]{'finished' if terminated else 'truncated'}[/] after {len(env.history)} turns: "
                f"return {total:.3f}, success {score.success if score else False}, breakdown {score.breakdown if score else {}}"
            )
            return info
