"""`agentic.integrations.verifiers`: a verifiers 0.4 taskset played as an agentic task, scored by its own rewards.

The taskset is written here with verifiers' public API (`vf.Taskset`, `vf.Task`, `@vf.reward`), as a
verifiers user would write one; every score comes out of verifiers' own `Task.score`.
"""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from agentic import AgenticEnvironment, ask, finish

vf = pytest.importorskip("verifiers.v1", reason="verifiers is optional: pip install agentic-slm[verifiers]")
from agentic.integrations.verifiers import VerifiersTask  # noqa: E402

QUESTIONS = [("What is 2 + 3?", "5"), ("Name the capital of France.", "Paris"), ("What is 7 * 6?", "42")]


class QuestionData(vf.TaskData):
    answer: str


class Question(vf.Task[QuestionData, vf.State, vf.TaskConfig]):
    @vf.reward
    async def correct(self, trace: vf.Trace) -> float:
        return float(trace.last_reply == self.data.answer)

    @vf.reward(weight=0.5)
    async def direct(self, trace: vf.Trace) -> float:
        """Answered at once: the transcript holds one assistant message."""
        return float(len(trace.assistant_messages) == 1)


class Questions(vf.Taskset[Question, vf.TasksetConfig]):
    def load(self):
        for question, answer in QUESTIONS:
            yield Question(QuestionData(prompt=question, answer=answer, system_prompt="Be brief."), self.config.task)


def play(task: VerifiersTask, actions, seed: int = 0):
    """Play ``actions`` (strings, or callables of the instance's answer) until the episode ends; the last info."""
    env = AgenticEnvironment(task)
    env.reset(seed=seed)
    for action in actions:
        text = action(env.instance["data"]["answer"]) if callable(action) else action
        *_, terminated, truncated, info = env.step(text)
        if terminated or truncated:
            return env, info
    raise AssertionError("the episode did not end")


@pytest.fixture
def task() -> VerifiersTask:
    return VerifiersTask(Questions(vf.TasksetConfig(id="questions")))


def test_the_oracle_solves_every_task_and_verifiers_scores_it(task):
    assert task.name == "questions" and len(task.tasks) == 3
    for seed in range(10):
        env, info = play(task, [lambda answer: f"I know this. {finish(answer)}"], seed)
        assert info["score"].success and info["score"].total == 1.5
        assert info["score"].breakdown == {"correct": 1.0, "direct": 0.5}
        assert json.loads(json.dumps(env.instance)) == env.instance, "instances are JSON, as trajectories need"
        question = QUESTIONS[env.instance["index"]][0]
        assert env.context.startswith(task.tool_manual()) and f"Be brief.\nTask: {question}\n" in env.context
        assert play(task, [task.oracle(env.instance, [])], seed)[1]["score"].success


def test_the_trace_holds_the_whole_conversation(task):
    env, info = play(task, [ask("Any hint?"), lambda answer: finish(answer)])
    assert info["score"].breakdown == {"correct": 1.0, "direct": 0.0}, "two assistant messages: not direct"
    assert info["score"].success and info["score"].total == 1.0, "success: a total of at least 1 by default"
    strict = VerifiersTask(Questions(vf.TasksetConfig()), success_threshold=1.5)
    assert not play(strict, [ask("Any hint?"), lambda answer: finish(answer)])[1]["score"].success
    _, wrong = play(task, [finish("no idea")])
    assert wrong["score"].breakdown == {"correct": 0.0, "direct": 0.5}


def test_an_episode_cut_short_has_no_answer_even_if_its_text_had_one(task):
    env, info = play(task, [lambda answer: answer] * 3)  # plain text, no <finish>: invalid, budget of 3
    assert info["truncation_reason"] and info["score"].total == 0.0 and not info["score"].success


def test_scoring_works_inside_a_running_event_loop(task):
    async def score_in_a_notebook():
        return play(task, [lambda answer: finish(answer)])[1]["score"]

    assert asyncio.run(score_in_a_notebook()).success


def test_a_reward_that_raises_scores_zero_and_is_logged(caplog):
    class Fragile(Question):
        @vf.reward
        async def correct(self, trace: vf.Trace) -> float:
            return float(int(trace.last_reply) == int(self.data.answer))

    class FragileQuestions(Questions):
        def load(self):
            yield Fragile(QuestionData(prompt="What is 2 + 3?", answer="5"), self.config.task)

    task = VerifiersTask(FragileQuestions(vf.TasksetConfig()))
    assert play(task, [finish("5")])[1]["score"].success
    with caplog.at_level(logging.WARNING):
        score = play(task, [finish("five")])[1]["score"]
    assert score.total == 0.0 and score.breakdown == {"scoring_error": 1.0}
    assert "FragileQuestions: scoring instance 0 failed" in caplog.text


def test_tasksets_that_need_a_harness_are_refused_with_the_reason():
    class Boxed(Question):
        NEEDS_CONTAINER = True

        @vf.reward
        async def file_written(self, trace: vf.Trace, runtime) -> float:
            return 1.0

    class BoxedQuestions(Questions):
        def load(self):
            yield Boxed(QuestionData(prompt="Write answer.txt", answer="5"), self.config.task)

    needs = "boxed cannot be played without a harness: its tasks need a container; file_written read the task's runtime"
    with pytest.raises(ValueError, match=needs):
        VerifiersTask(BoxedQuestions(vf.TasksetConfig(id="boxed")))

    class Endless(Questions):
        INFINITE = True

    with pytest.raises(ValueError, match="verifiers taskset Endless is infinite: bound it first"):
        VerifiersTask(Endless(vf.TasksetConfig()))
    assert len(VerifiersTask(Endless(vf.TasksetConfig()).take(2)).tasks) == 2


def test_a_task_whose_data_has_no_answer_has_no_oracle(task):
    unanswered = VerifiersTask(Questions(vf.TasksetConfig()), answer_field="solution")
    with pytest.raises(NotImplementedError, match="the task data has no 'solution' field"):
        unanswered.oracle({"index": 0}, [])
