"""The environment contract: the Gymnasium API, budgets as documented, and hostile input that never crashes it."""

from __future__ import annotations

import time
from collections.abc import Sequence

import gymnasium
import pytest

import agentic
from agentic import (
    AgenticEnvironment,
    Budget,
    Score,
    Task,
    Turn,
    finish,
    tool,
    tool_call,
)
from agentic.limits import ACTION_CHARS, ERROR_CHARS
from agentic.tools.calculator import calculator


@tool
def echo(text: str) -> str:
    """Repeat the text.

    Args:
        text: What to repeat.
    """
    return text


@tool(timeout_s=0.2)
def hang(seconds: float) -> str:
    """Sleep for a while.

    Args:
        seconds: How long.
    """
    time.sleep(seconds)
    return "woke up"


@tool
def crash() -> str:
    """Always fails."""
    raise ValueError("broken on purpose")


@tool(max_output_chars=100)
def firehose(instance: dict) -> str:
    """Return a huge output."""
    return instance["word"] * 100_000


class Hostile(Task):
    """A task whose tools misbehave, to test that nothing a model or tool does crashes an episode."""

    name = "Hostile"
    tools = (echo, hang, crash, firehose, calculator)
    budget = Budget(max_turns=20, max_tool_calls=8, max_invalid=12, max_action_tokens=64)

    def sample(self, rng):
        return {"word": rng.choice(["ab", "cd"])}

    def prompt(self, instance):
        return f"{self.tool_manual()}\nSay {instance['word']}.\n"

    def user(self, instance, question, state):
        return f"you asked: {question}"

    def score(self, instance, answer, history: Sequence[Turn]) -> Score:
        ok = answer == instance["word"]
        return Score(float(ok), {"said": float(ok)}, ok)

    def oracle(self, instance, history):
        return finish(instance["word"])


@pytest.fixture
def env() -> AgenticEnvironment:
    environment = AgenticEnvironment(Hostile(), render_mode="ansi")
    environment.reset(seed=0)
    return environment


HOSTILE_ACTIONS = [
    # (action, event, text that must appear in the observation)
    ('<tool name="echo">{"text": "hi"', "invalid", "never closed: expected </tool>"),
    ("<ask>are you", "invalid", "never closed: expected </ask>"),
    ("<tool>{}</tool>", "invalid", "malformed tool tag"),
    ('<tool name="echo">{text: hi}</tool>', "invalid", "not valid JSON"),
    ("I will just talk.", "text", "no action"),
    ("</finish>", "invalid", "has no opening <finish>"),
    (
        '<tool name="rm_rf">{}</tool>',
        "bad_tool_call",
        "unknown tool 'rm_rf'; known tools: calculator, crash, echo, firehose, hang",
    ),
    (
        '<tool name="echo">{"text": 5}</tool>',
        "bad_tool_call",
        "invalid argument 'text' for echo: 5 is not of type 'string'",
    ),
    ('<tool name="echo">{"txt": "a"}</tool>', "bad_tool_call", "'text' is a required property"),
    ('<tool name="crash">{}</tool>', "tool_error", "error: crash raised ValueError: broken on purpose"),
    ('<tool name="hang">{"seconds": 60}</tool>', "tool_error", "error: hang timed out after 0.2s"),
    ('<tool name="calculator">{"expression": "9**9**9"}</tool>', "tool_error", "exponent"),
    ('<tool name="firehose">{}</tool>', "tool", "…[truncated 199900 chars]"),
    ('<tool name="echo">{"text": "' + "x" * 200 + '"}</tool>', "tool", "x" * 200),
]


@pytest.mark.parametrize("action, event, message", HOSTILE_ACTIONS)
def test_hostile_actions_get_a_clear_observation_and_the_episode_continues(env, action, event, message):
    before = env.context
    obs, reward, terminated, truncated, info = env.step(action)
    assert info["event"] == event
    assert message in info["delta"]
    assert obs == before + action + info["delta"]
    assert not terminated and not truncated
    obs, reward, terminated, truncated, info = env.step(finish(env.instance["word"]))
    assert terminated and reward == 1.0


def test_budget_charges(env):
    env.step('<tool name="echo">{"text": "a"}</tool>')  # runs: tool call
    env.step('<tool name="crash">{}</tool>')  # runs and fails: tool call
    env.step('<tool name="nope">{}</tool>')  # refused: invalid
    env.step('<tool name="echo">{}</tool>')  # refused: invalid
    env.step("<ask>q</ask>")  # neither
    *_, info = env.step("chatter")  # invalid
    assert info["budget"] == {"turns": 20 - 6, "tool_calls": 8 - 2, "invalid": 12 - 3}


def test_an_overlong_action_is_invalid(env):
    *_, info = env.step("<finish>" + "word " * 100 + "</finish>")
    assert info["event"] == "invalid" and "longer than 64 tokens" in info["delta"]


def test_huge_arguments_are_validated_not_crashed(env):
    *_, info = env.step(tool_call("echo", {"text": "y" * 20, "extra": "z" * 10_000}))
    assert info["event"] == "invalid", "over the token budget"
    env.budget = Budget(max_action_tokens=10**7, max_invalid=5)
    *_, info = env.step(tool_call("echo", {"text": "y" * 20, "extra": "z" * 10_000}))
    assert info["event"] == "bad_tool_call" and "was unexpected" in info["delta"]
    assert len(info["delta"]) <= ERROR_CHARS + 60, "the message quotes the extra key, cut"
    *_, info = env.step(tool_call("echo", {"text": "y" * 20, "extra": "z" * 1_000_000}))
    assert info["event"] == "invalid" and f"longer than {ACTION_CHARS} characters" in info["delta"]


@pytest.mark.parametrize(
    "action, fragment",
    [
        (" " * 10_000 + "<finish>x</finish>", "longer than 64 tokens"),  # whitespace counts
        ("\n" * 500 + "<finish>x</finish>", "longer than 64 tokens"),
        ("<finish>" + "a" * 4_000_000 + "</finish>", f"longer than {ACTION_CHARS} characters"),
        ('<tool name="echo">{"text": "a", "n": 1e400}</tool>', "too large"),
        ('<tool name="echo">{"text": "\\ud800"}</tool>', "surrogate"),
    ],
    ids=["spaces", "newlines", "4MB", "1e400", "lone-surrogate"],
)
def test_oversized_and_unrepresentable_actions_are_invalid_and_bounded(env, action, fragment):
    before = len(env.context)
    start = time.perf_counter()
    obs, *_, info = env.step(action)
    assert time.perf_counter() - start < 1.0
    assert info["event"] == "invalid" and fragment in info["delta"]
    assert len(obs) - before <= ACTION_CHARS + 40 + len(info["delta"])


def test_lone_surrogates_never_reach_the_observation(env):
    obs, *_ = env.step("\ud800 <ask>who is \udfff?</ask>")
    obs.encode("utf-8")
    obs, *_ = env.step(tool_call("echo", {"text": "ok"}) + "\ud83d")
    obs.encode("utf-8")


def test_the_observation_never_passes_its_bound():
    env = AgenticEnvironment(Hostile(), budget=Budget(max_turns=10_000, max_invalid=10_000, max_action_tokens=10**6))
    env.reset(seed=0)
    truncated, steps, obs = False, 0, ""
    while not truncated:
        obs, _, _, truncated, info = env.step("x" * (ACTION_CHARS - 1) + " <ask>?</ask>")
        steps += 1
        assert env.observation_space.contains(obs)
    assert "the context is full" in info["truncation_reason"] and steps > 50


def test_a_vector_env_refuses_shared_memory_clearly_and_carries_unicode_without_it():
    with pytest.raises(ValueError, match="shared_memory=False"):
        gymnasium.vector.AsyncVectorEnv([lambda: AgenticEnvironment(Hostile())] * 2)
    vector = gymnasium.vector.AsyncVectorEnv([lambda: AgenticEnvironment(Hostile())] * 2, shared_memory=False)
    try:
        observations, _ = vector.reset(seed=[0, 1])
        observations, *_ = vector.step(['<tool name="echo">{"text": "héllo ☃ 😀"}</tool>', "<ask>ça va?</ask>"])
        assert "<result>héllo ☃ 😀</result>" in observations[0] and "<ask>ça va?</ask>" in observations[1]
        assert observations[0].startswith(AgenticEnvironment(Hostile()).reset(seed=0)[0])
    finally:
        vector.close()


def test_invalid_budget_truncates_and_scores_no_answer():
    env = AgenticEnvironment(Hostile(), budget=Budget(max_invalid=2))
    env.reset(seed=1)
    _, r1, terminated, truncated, _ = env.step("nonsense")
    assert (terminated, truncated, r1) == (False, False, pytest.approx(-0.1))
    _, r2, terminated, truncated, info = env.step("<ask>oops")
    assert (terminated, truncated) == (False, True)
    assert "episode over: 2 invalid actions" in info["delta"] and info["score"] == Score(0.0, {"said": 0.0}, False)
    with pytest.raises(RuntimeError, match="reset"):
        env.step("<finish>x</finish>")


def test_turn_budget_truncates():
    env = AgenticEnvironment(Hostile(), budget=Budget(max_turns=2))
    env.reset(seed=0)
    assert env.step("<ask>one</ask>")[3] is False
    *_, truncated, info = env.step("<ask>two</ask>")
    assert truncated and info["truncation_reason"] == "turn budget of 2 spent without <finish>"


def test_tool_call_budget_refuses_the_extra_call_and_truncates():
    env = AgenticEnvironment(Hostile(), budget=Budget(max_tool_calls=1))
    env.reset(seed=0)
    assert env.step(tool_call("echo", {"text": "a"}))[3] is False
    *_, truncated, info = env.step(tool_call("echo", {"text": "b"}))
    assert truncated and info["event"] == "over_budget" and info["tool_result"] is None
    assert "tool-call budget of 1 spent" in info["delta"]


def test_finish_terminates_with_the_score_and_breakdown(env):
    obs, reward, terminated, truncated, info = env.step("Done. <finish>nope</finish> trailing")
    assert terminated and not truncated and reward == 0.0
    assert info["reward_breakdown"] == {"shaping": 0.0, "terminal": 0.0, "said": 0.0}
    assert info["action"].discarded == " trailing" and not obs.endswith("trailing")


def test_ask_reaches_the_user_simulator_and_a_custom_user(env):
    *_, info = env.step("<ask>Which word?</ask>")
    assert info["delta"] == "\n<user>you asked: Which word?</user>\n"
    custom = AgenticEnvironment(Hostile(), user=lambda instance, question, state: "ab, obviously")
    custom.reset(seed=0)
    assert "<user>ab, obviously</user>" in custom.step("<ask>?</ask>")[0]


def test_observation_is_the_full_context_and_render_shows_it(env):
    obs, *_ = env.step(tool_call("echo", {"text": "hello"}))
    assert obs.startswith(Hostile().prompt(env.instance)) and obs.endswith("<result>hello</result>\n")
    assert env.render() == obs


def test_non_string_actions_do_not_crash(env):
    *_, info = env.step(12345)  # type: ignore[arg-type]
    assert info["event"] == "text"


def test_gymnasium_make_and_reset_with_a_given_instance():
    env = gymnasium.make(agentic.gym_id("Arithmetic"))
    obs, info = env.reset(options={"instance": {"expression": "1 + 1", "answer": "2"}})
    assert "compute 1 + 1." in obs and info["task"] == "Arithmetic"
    env.step(tool_call("calculator", {"expression": "1 + 1"}))
    _, reward, terminated, _, _ = env.step(finish("2"))
    assert terminated and reward == 1.0


def test_unknown_task_and_bad_render_mode_are_clear_errors():
    with pytest.raises(KeyError, match="unknown task 'Nope'; registered tasks: Arithmetic"):
        AgenticEnvironment("Nope")
    with pytest.raises(ValueError, match="render_mode"):
        AgenticEnvironment("Arithmetic", render_mode="rgb_array")


def test_register_a_new_task_makes_a_gymnasium_id():
    agentic.register_task(Hostile)
    env = gymnasium.make("agentic/Hostile-v0")
    obs, _ = env.reset(seed=0)
    assert "Say" in obs and "Hostile" in agentic.task_names()


@tool
def googol_power() -> int:
    """A user tool returning an integer of 5001 digits, past what str() and json may show."""
    return 10**5000


class BigNumber(Hostile):
    tools = (googol_power,)


def test_a_tool_value_that_cannot_be_shown_is_named_in_the_observation():
    env = AgenticEnvironment(BigNumber())
    env.reset(seed=0)
    obs, *_, info = env.step('<tool name="googol_power">{}</tool>')
    assert info["event"] == "tool" and "[non-text output" in info["delta"]
