"""Environments travel between processes: every task and a running environment pickle with plain `pickle`,
gymnasium's AsyncVectorEnv works without shared memory (also when it spawns its workers), and `async def` tools
run under their time-out or are refused."""

from __future__ import annotations

import asyncio
import functools
import pickle
import threading
import time

import gymnasium
import pytest

import agentic
from agentic import AgenticEnvironment, Tool, ToolRegistry, oracle_action, tool
from agentic.tools.calculator import arithmetic, calculator

TASKS = agentic.task_names()


def _finish_oracle(env: AgenticEnvironment) -> list[tuple[str, float, bool, bool]]:
    """The rest of the episode under the oracle: (observation, reward, terminated, truncated) per step."""
    steps = []
    while not steps or not (steps[-1][2] or steps[-1][3]):
        observation, reward, terminated, truncated, _ = env.step(oracle_action(env))
        steps.append((observation, reward, terminated, truncated))
    return steps


@pytest.mark.parametrize("name", TASKS)
def test_every_task_and_a_running_environment_pickle_and_carry_on_alike(name):
    task = pickle.loads(pickle.dumps(agentic.make_task(name)))
    assert type(task).__name__ and task.name == name
    env = AgenticEnvironment(name)
    env.reset(seed=3)
    copy = pickle.loads(pickle.dumps(env))
    assert copy.context == env.context and copy.tools.names == env.tools.names
    assert _finish_oracle(copy) == _finish_oracle(env)


def test_tools_pickle_by_reference_or_around_their_function():
    assert pickle.loads(pickle.dumps(calculator)) is calculator
    assert pickle.loads(pickle.dumps(arithmetic)) is arithmetic
    registry = pickle.loads(pickle.dumps(ToolRegistry([calculator, arithmetic])))
    assert registry.call("arithmetic", {"expression": "6*7"}).text == "42"
    assert registry.call("calculator", {"expression": 1}).status == "invalid_arguments", "validators are rebuilt"
    renamed = tool(calculator.fn, name="calc")  # held by no module: rebuilt around the function calculator holds
    again = pickle.loads(pickle.dumps(renamed))
    assert again is not renamed and again == renamed and again.fn is calculator.fn


def test_a_tool_whose_function_is_local_says_why_it_cannot_pickle():
    @tool
    def local(x: int) -> int:
        """Twice x.

        Args:
            x: a number.
        """
        return 2 * x

    with pytest.raises((pickle.PicklingError, AttributeError), match="local"):
        pickle.dumps(local)


def _make(name: str) -> gymnasium.Env:
    return gymnasium.make(agentic.gym_id(name))


def test_an_async_vector_env_runs_without_shared_memory_also_when_it_spawns_its_workers():
    context = "spawn"  # the workers get their factories pickled (gymnasium's fork case is in test_env.py)
    with pytest.raises(ValueError, match="shared_memory=False"):  # gymnasium's message
        gymnasium.vector.AsyncVectorEnv([functools.partial(_make, "Arithmetic")] * 2, context=context)
    factories = [functools.partial(_make, "Arithmetic"), functools.partial(_make, "TwoHop")]
    vector = gymnasium.vector.AsyncVectorEnv(factories, shared_memory=False, context=context)
    try:
        observations, _ = vector.reset(seed=[5, 6])
        single = [AgenticEnvironment("Arithmetic"), AgenticEnvironment("TwoHop")]
        assert list(observations) == [env.reset(seed=seed)[0] for env, seed in zip(single, [5, 6])]
        actions = [oracle_action(env) for env in single]
        observations, rewards, *_ = vector.step(actions)
        assert list(observations) == [env.step(action)[0] for env, action in zip(single, actions)]
        assert "<result>" in observations[0] and "<result>" in observations[1]
    finally:
        vector.close()


@tool(timeout_s=2.0)
async def slow_echo(text: str, delay: float = 0.0) -> str:
    """Echo the text after a delay.

    Args:
        text: what to echo.
        delay: seconds to wait first.
    """
    await asyncio.sleep(delay)
    return text.upper()


def test_an_async_tool_is_awaited_and_its_value_returned():
    result = ToolRegistry([slow_echo]).call("slow_echo", {"text": "héllo", "delay": 0.01})
    assert (result.status, result.text) == ("ok", "HÉLLO")


def test_an_async_tool_stops_at_its_time_out_and_its_worker_ends():
    quick = tool(slow_echo.fn, name="quick", timeout_s=0.2)
    before = {t for t in threading.enumerate() if t.name == "agentic-tool"}
    start = time.perf_counter()
    result = ToolRegistry([quick]).call("quick", {"text": "x", "delay": 30.0})
    assert result.status == "timeout" and "timed out after 0.2s" in result.text
    assert time.perf_counter() - start < 0.5
    deadline = time.perf_counter() + 3
    while {t for t in threading.enumerate() if t.name == "agentic-tool"} - before and time.perf_counter() < deadline:
        time.sleep(0.05)
    assert not {t for t in threading.enumerate() if t.name == "agentic-tool"} - before, "the worker still runs"


def test_an_async_tool_without_a_time_out_is_refused_when_made():
    with pytest.raises(ValueError, match="async tool slow_echo needs a time-out"):
        tool(slow_echo.fn, timeout_s=0)
    with pytest.raises(ValueError, match="async tool raw needs a time-out"):
        Tool("raw", "", {"type": "object"}, slow_echo.fn, timeout_s=0)
