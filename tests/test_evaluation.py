"""Evaluation metrics on scripted policies with known answers."""

from __future__ import annotations

import math

import pytest

from agentic import make_task, tool_call
from agentic.evaluation import decision_points, episode_metrics, tool_call_metrics
from agentic.metrics import mean_interval, wilson
from agentic.rollout import oracle_trajectories
from agentic.training.tiny_model import task_corpus, train_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(task_corpus(["TwoHop", "MissingQuantity"], range(20)), vocab_size=400)


@pytest.fixture(scope="module")
def two_hop(tokenizer):
    task = make_task("TwoHop")
    demos = oracle_trajectories(task, range(10), tokenizer)
    return task, demos, decision_points(demos)


def test_decision_points_are_the_oracle_tool_calls_with_their_token_context(two_hop, tokenizer):
    task, demos, points = two_hop
    assert len(points) == 20 and {p.tool for p in points} == {"kb_lookup"}
    first = points[0]
    assert tokenizer.decode(first.context_ids) == demos[0].prompt
    assert tokenizer.decode(points[1].context_ids).endswith("</result>\n")


def test_a_policy_right_on_exactly_half_the_points_scores_one_half(two_hop):
    task, _, points = two_hop
    actions = [
        tool_call(p.tool, p.arguments) if i % 2 == 0 else tool_call(p.tool, {"entity": "Nobody", "relation": "born_in"})
        for i, p in enumerate(points)
    ]
    metrics = tool_call_metrics(task, points, actions)
    assert metrics["tool_call_validity"]["value"] == 1.0
    assert metrics["tool_call_accuracy"]["value"] == 0.5
    assert metrics["tool_call_accuracy"]["k"] == 10 and metrics["tool_call_accuracy"]["n"] == 20
    assert metrics["per_tool"]["kb_lookup"]["tool_call_accuracy"]["value"] == 0.5


def test_validity_needs_the_grammar_a_known_tool_and_the_schema_but_the_paper_figure_does_not(two_hop):
    task, _, points = two_hop
    p = points[0]
    cases = {
        "valid and right": (tool_call(p.tool, p.arguments), (True, True, True)),
        "case and spacing still match": (
            tool_call(p.tool, {k: f"  {str(v).upper()} " for k, v in p.arguments.items()}),
            (True, True, True),
        ),
        "truncated JSON": (f'<tool name="{p.tool}">{{"entity": "x"', (False, False, True)),
        "schema violation": (tool_call(p.tool, {"entity": 3}), (False, False, True)),
        "unknown tool": (tool_call("calculator", {"expression": "1"}), (False, False, False)),
        "finish instead": ("<finish>Paris</finish>", (False, False, False)),
        "ask first, tool later": (f"<ask>?</ask>{tool_call(p.tool, p.arguments)}", (False, False, False)),
    }
    for name, (action, (valid, accurate, loose)) in cases.items():
        metrics = tool_call_metrics(task, [p], [action])
        got = tuple(
            metrics[k]["value"] == 1.0 for k in ("tool_call_validity", "tool_call_accuracy", "first_sentinel_is_tool")
        )
        assert got == (valid, accurate, loose), name


def test_mismatched_lengths_are_refused(two_hop):
    task, _, points = two_hop
    with pytest.raises(ValueError, match="20 decision points but 1 actions"):
        tool_call_metrics(task, points, ["<finish>x</finish>"])


def test_episode_metrics_of_the_oracle(tokenizer):
    demos = oracle_trajectories(make_task("MissingQuantity"), range(8), tokenizer)
    metrics = episode_metrics(demos)
    assert metrics["success"]["value"] == 1.0 and metrics["ask_rate"]["value"] == 1.0
    assert metrics["invalid_action_rate"]["k"] == 0 and metrics["mean_turns"] == 3.0
    assert metrics["mean_return"] == 1.0 and metrics["std_return"] == 0.0
    assert metrics["mean_score"] == {"value": 1.0, "n": 8, "low": 1.0, "high": 1.0}


def test_mean_interval_is_students_t():
    # mean 0.5, sample sd sqrt(0.2 / 3), t(0.975; 3 df) = 3.18245: half-width 3.18245 * sd / 2 = 0.41085
    interval = mean_interval([0.2, 0.4, 0.6, 0.8])
    assert interval.value == pytest.approx(0.5) and interval.n == 4
    assert interval.low == pytest.approx(0.08915, abs=1e-5) and interval.high == pytest.approx(0.91085, abs=1e-5)
    alone, none = mean_interval([0.7]), mean_interval([])
    assert alone.value == 0.7 and math.isnan(alone.low) and none.n == 0 and math.isnan(none.value)


def test_wilson_interval_matches_the_closed_form():
    # p = 0.98, n = 200, z = 1.96: centre (p + z²/2n)/(1 + z²/n), half-width z·sqrt(p(1-p)/n + z²/4n²)/(1 + z²/n)
    interval = wilson(196, 200)
    assert interval.low == pytest.approx(0.94971, abs=1e-5) and interval.high == pytest.approx(0.99220, abs=1e-5)
    assert wilson(0, 0).n == 0 and wilson(5, 5).high == pytest.approx(1.0)
    with pytest.raises(ValueError):
        wilson(3, 2)


def test_lone_surrogates_in_a_policy_action_are_judged_not_raised():
    from agentic.evaluation import DecisionPoint

    task = make_task("Arithmetic")
    point = DecisionPoint(
        seed=0, turn=0, context_ids=[], tool="calculator", arguments={"expression": "1 + 2"}, instance={}
    )
    actions = [
        '<tool name="calculator">{"expression": "1 + \\ud800"}</tool>',
        tool_call("calculator", {"expression": "1 + \ud800"}),
    ]
    metrics = tool_call_metrics(task, [point] * 2, actions)
    assert metrics["tool_call_validity"]["k"] == 0 and metrics["tool_call_accuracy"]["k"] == 0
