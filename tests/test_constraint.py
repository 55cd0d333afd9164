"""Constrained actions (`agentic.constraint`): the grammar agrees with the parser, the engine samples under it,
and the recorded log-probs are those of the masked distribution, replayable from the trajectory."""

from __future__ import annotations

import json
import math
import random
import sys

import pytest
import torch
from chat_model import chat_tokenizer
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sliding_window import sliding_window_policy

from agentic import (
    AgenticEnvironment,
    ask,
    finish,
    make_task,
    oracle_action,
    parse_action,
    run_episode,
    task_names,
    tool,
    tool_call,
)
from agentic.actions import ActionKind
from agentic.cli import main
from agentic.constraint import (
    BatchConstraint,
    Grammars,
    action_grammar,
    admits,
    constrained_masks,
    episode_grammar,
    size_bounded,
    task_grammar,
)
from agentic.decoding import PaddedBatch
from agentic.policy import Policy, encode
from agentic.rollout import oracle_trajectories, rollout
from agentic.run_dir import write_jsonl
from agentic.sampling import Sampling
from agentic.task import INVALID_EVENTS
from agentic.tooling import ToolRegistry
from agentic.training.action_length import default_action_limit
from agentic.training.tiny_model import build_tiny_model, task_corpus, train_tokenizer
from agentic.trajectory import from_dataset, read_trajectories, to_dataset

pytestmark = pytest.mark.usefixtures("one_thread")

SHORT_ARGUMENT_TASKS = ["Arithmetic", "MissingQuantity", "TwoHop", "MultiHopKnowledge", "ReasoningGym"]
"""Tasks whose oracle's arguments fit the constraint's byte bound at the tasks' 256-token budget; the story and
summary drafts (up to some 470 characters, quotes escaped) only fit a larger limit (see `agentic.constraint`)."""


@tool(
    schema={
        "type": "object",
        "properties": {
            "count": {"type": "integer", "minimum": 0},
            "ratio": {"type": "number"},
            "flag": {"type": "boolean"},
            "mode": {"enum": ["fast", "slow"]},
            "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
            "where": {
                "type": "object",
                "properties": {"x": {"type": "number"}, "name": {"type": "string", "minLength": 1}},
                "required": ["x"],
                "additionalProperties": False,
            },
            "note": {"type": ["string", "null"], "maxLength": 5},
            "extra": {"type": "object"},
            "anything": {"description": "no type: any JSON value"},
        },
        "required": ["count", "ratio", "mode"],
    }
)
def probe(count: int, ratio: float, mode: str, **rest) -> str:
    """A tool whose schema uses every kind of value the constraint bounds."""
    return "ok"


@pytest.fixture(scope="module")
def tiny_tokenizer():
    """The tiny model's tokenizer: every sentinel one token, digits one a token."""
    return train_tokenizer(task_corpus(["Arithmetic", "MissingQuantity", "TwoHop"], range(20)), vocab_size=512)


@pytest.fixture(scope="module", params=["tiny", "bpe"])
def tokenizer(request, tiny_tokenizer):
    """Both kinds of tokenizer: the tiny model's, and a real-BPE-like one where ``</tool>`` spans several tokens."""
    return tiny_tokenizer if request.param == "tiny" else chat_tokenizer()


def walk(grammar: str, tokenizer, rng: random.Random, closing_bias: float) -> list[int]:
    """Tokens drawn at random among those the grammar allows (with probability ``closing_bias`` among those that
    hold ``<``, ``>`` or ``"`` when there are such), until the action is complete."""
    constraint = BatchConstraint(tokenizer, {0: grammar})
    size = Grammars.of(tokenizer).vocab_size
    tokens: list[int] = []
    while True:
        allowed = (constraint.mask(torch.zeros(1, size), [0])[0] == 0).nonzero().flatten().tolist()
        closing = [t for t in allowed if any(c in tokenizer.decode([t]) for c in '<>"')]
        token = rng.choice(closing if closing and rng.random() < closing_bias else allowed)
        tokens.append(token)
        if constraint.advance(0, token):
            return tokens


def longest_walk(grammar: str, tokenizer) -> list[int]:
    """The action that takes the most tokens: always a one-byte token where one is allowed, starting a four-byte
    character where it can, and ending nothing (a string, a text, a thought) that can go on; ``f`` (``<finish>``)
    comes last among the choices, so a grammar with one other alternative takes that one."""
    constraint = BatchConstraint(tokenizer, {0: grammar})
    grammars = Grammars.of(tokenizer)

    def cost(token: int) -> tuple[int, int]:
        data = grammars.vocabulary.decode_bytes([token])
        kind = (
            0
            if 0xF0 <= data[0] <= 0xF4
            else 1
            if data[0] >= 0x80
            else 4
            if data in (b'"', b"<", b">", b"}", b"]")
            else 3
            if data == b"f"
            else 2
        )
        return len(data), kind

    tokens: list[int] = []
    while True:
        allowed = (constraint.mask(torch.zeros(1, grammars.vocab_size), [0])[0] == 0).nonzero().flatten().tolist()
        tokens.append(min(allowed, key=cost))
        if constraint.advance(0, tokens[-1]):
            return tokens


def check_valid(text: str, tools, *, ask_allowed: bool) -> None:
    action = parse_action(text)
    assert action.kind is not ActionKind.INVALID and action.kind is not ActionKind.TEXT, (text, action.error)
    assert action.kind is not ActionKind.ASK or ask_allowed, text
    if action.kind is ActionKind.TOOL:
        assert action.tool in [t.name for t in tools], text
        assert ToolRegistry(tools).validate(action.tool, action.arguments) is None, text
    assert not action.discarded, "the action ends at its closing tag"


@pytest.fixture(scope="module")
def environments():
    """One environment per task and tokenizer, reset by each example (building some tasks loads a corpus)."""
    return {}


@pytest.mark.parametrize("name", task_names())
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_action_the_constraint_admits_is_valid_and_fits_the_limit(name, tokenizer, environments, data):
    """Random walks through each task's grammar, at random limits up to the tasks' budget: every action parses as
    a valid action of an offered kind, its arguments pass the tool's schema, its tokens fit the limit, and the
    environment (counting tokens with the same tokenizer) takes it."""
    limit = data.draw(st.integers(17, 256), label="limit")
    rng = data.draw(st.randoms(use_true_random=False))
    key = (name, id(tokenizer))
    if key not in environments:
        environments[key] = AgenticEnvironment(name, count_tokens=lambda text: len(encode(tokenizer, text)))
    env = environments[key]
    env.reset(seed=data.draw(st.integers(0, 10**6), label="seed"))
    tokens = walk(episode_grammar(env, limit), tokenizer, rng, data.draw(st.floats(0, 1), label="closing bias"))
    text = tokenizer.decode(tokens)
    if all(size_bounded(t.parameters) for t in env.tools):  # else no guarantee: an open array may run past it
        assert len(tokens) <= limit
    check_valid(text, list(env.tools), ask_allowed=env.task.allows_ask)
    if len(tokens) <= env.budget.max_action_tokens:
        _, _, _, _, info = env.step(text)
        assert info["event"] not in INVALID_EVENTS, (text, info["delta"])


@pytest.mark.parametrize("name", task_names())
@pytest.mark.parametrize("limit", [24, 96, 256])
def test_the_longest_action_of_each_kind_still_fits_the_limit(name, tokenizer, limit):
    """The bound is by construction: the action that spends the most tokens, of each kind the task offers, fits."""
    task = make_task(name)
    grammars = [action_grammar([t], ask=False, max_tokens=limit) for t in task.tools]
    grammars += [
        action_grammar([], ask=task.allows_ask, max_tokens=limit),
        action_grammar([], ask=False, max_tokens=limit),
    ]
    kinds = set()
    for grammar in grammars:
        tokens = longest_walk(grammar, tokenizer)
        kinds.add(parse_action(tokenizer.decode(tokens)).kind.value)
        assert len(tokens) <= limit, tokenizer.decode(tokens)
        check_valid(tokenizer.decode(tokens), task.tools, ask_allowed=task.allows_ask)
    assert "finish" in kinds and (limit < 96 or not task.tools or "tool" in kinds)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_arguments_of_every_kind_of_schema_are_valid_and_bounded(tokenizer, data):
    """Integers, unbounded numbers (``1e400`` would be infinite), booleans, enums, arrays, nested objects, optional
    and nullable fields: every admitted call passes the schema and fits."""
    limit = data.draw(st.integers(600, 900), label="limit")
    grammar = action_grammar([probe], ask=False, max_tokens=limit)
    tokens = walk(grammar, tokenizer, data.draw(st.randoms(use_true_random=False)), data.draw(st.floats(0, 1)))
    text = tokenizer.decode(tokens)
    assume(parse_action(text).kind is ActionKind.TOOL)
    assert len(tokens) <= limit
    check_valid(text, [probe], ask_allowed=False)


@pytest.mark.parametrize("name", task_names())
def test_every_oracle_action_is_admitted(name, tokenizer):
    """In each state of the oracle's episodes, its action is admitted by that state's grammar: at the tasks'
    budget for short arguments, and at a limit that leaves room for the story and summary drafts otherwise."""
    limit = 256 if name in SHORT_ARGUMENT_TASKS else 8192

    def checked_oracle(env: AgenticEnvironment) -> str:
        action = oracle_action(env)
        parsed = parse_action(action)  # BFCL's ground truth sometimes breaks its own schema: then refused
        valid = parsed.kind is not ActionKind.TOOL or env.tools.validate(parsed.tool, parsed.arguments) is None
        assert admits(episode_grammar(env, limit), tokenizer, action) is valid, action
        return action

    env = AgenticEnvironment(name)
    assert sum(len(run_episode(env, checked_oracle, seed)) for seed in range(8)) >= 8


@pytest.mark.parametrize("name", ["Arithmetic", "TwoHop", "MultiHopKnowledge"])
def test_the_default_limit_under_the_constraint_admits_every_held_out_oracle_action(name, tokenizer):
    """The grammar bounds each string by its worst case, so a limit that holds the oracle's tokens can still cut its
    arguments (at 130 tokens MultiHopKnowledge's names to 4 characters). Under the constraint the default limit admits
    every oracle action, held-out ones too, and is the shortest that admits the training ones."""
    task = make_task(name)
    limit = default_action_limit([task], tokenizer, constrained=True)
    assert limit >= default_action_limit([task], tokenizer)
    for split, seeds in (("evaluation", range(100)), ("training", range(10_000, 10_200))):
        actions = [
            (t.instance, turn.action)
            for t in oracle_trajectories(task, seeds, tokenizer, split=split)
            for turn in t.turns
        ]
        assert all(admits(task_grammar(task, instance, limit), tokenizer, action) for instance, action in actions), (
            split
        )
    assert not all(admits(task_grammar(task, instance, limit - 1), tokenizer, action) for instance, action in actions)


def plain_text(max_size: int) -> st.SearchStrategy[str]:
    """Text with no ``<`` and no lone surrogates, control characters only where JSON has a short escape."""
    characters = st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="<") | st.sampled_from(
        '\n\t\r"\\'
    )
    return st.text(characters, max_size=max_size)


@st.composite
def rendered_actions(draw, task) -> str:
    """A valid action of ``task``, rendered as `agentic.tool_call`, `ask` and `finish` write them."""
    kinds = ["finish"] + (["ask"] if task.allows_ask else []) + (["tool"] if task.tools else [])
    kind, thought = draw(st.sampled_from(kinds)), draw(plain_text(30))
    if kind == "ask":
        return ask(draw(plain_text(40)), thought)
    if kind == "finish":
        return finish(draw(plain_text(40)), thought)
    chosen = draw(st.sampled_from(task.tools))
    schema = chosen.parameters
    arguments = {}
    for key, spec in schema["properties"].items():
        if key in schema.get("required", []) or draw(st.booleans()):
            values = {
                "string": plain_text(12),
                "integer": st.integers(-(10**15), 10**15),
                "number": st.integers(-(10**9), 10**9).map(lambda n: n / 1000) | st.integers(-(10**6), 10**6),
            }
            arguments[key] = draw(values[spec["type"]])
    return tool_call(chosen.name, arguments, thought)


@pytest.mark.parametrize("name", task_names())
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_rendered_valid_action_is_admitted(name, tokenizer, data):
    task = make_task(name)
    text = data.draw(rendered_actions(task))
    action = parse_action(text)
    assume(action.kind is not ActionKind.INVALID)
    assert (
        action.kind is not ActionKind.TOOL or ToolRegistry(task.tools).validate(action.tool, action.arguments) is None
    )
    assert admits(task_grammar(task, task.sample(random.Random(0)), 1024), tokenizer, text), text


def test_the_grammar_leaves_out_what_cannot_fit_and_refuses_what_it_cannot_write():
    calculator = make_task("Arithmetic").tools[0]
    assert '"<tool name=\\"calculator\\">"' in action_grammar([calculator], ask=True, max_tokens=256)
    small = action_grammar([calculator], ask=True, max_tokens=40)
    assert "calculator" not in small and "<ask>" in small and "<finish>" in small
    assert "thought" not in action_grammar([], ask=False, max_tokens=17)
    with pytest.raises(ValueError, match="cannot be written"):
        action_grammar([tool(lambda: 0, name="two words", schema={"properties": {}})], ask=False, max_tokens=64)
    with pytest.raises(ValueError, match="at least 1"):
        action_grammar([], ask=False, max_tokens=0)


@pytest.mark.parametrize(
    "arguments",
    ['"ratio": 1e400', '"ratio": 1.5e3', '"ratio": 2, "note": "\\ud800"', '"ratio": 2, "note": "ab\\u0001"'],
)
def test_json_the_parser_refuses_or_that_has_no_bound_is_not_admitted(tiny_tokenizer, arguments):
    """``1e400`` is infinite in Python (the parser refuses it); exponents and ``\\u`` escapes have no byte bound."""
    text = f'<tool name="probe">{{"count": 0, {arguments}, "mode": "fast"}}</tool>'
    assert not admits(action_grammar([probe], ask=False, max_tokens=1000), tiny_tokenizer, text)
    if "1e400" in text:
        assert parse_action(text).kind is ActionKind.INVALID
    plain = '<tool name="probe">{"count": 0, "ratio": 2, "mode": "fast"}</tool>'
    assert admits(action_grammar([probe], ask=False, max_tokens=1000), tiny_tokenizer, plain)


@pytest.mark.parametrize(
    ("open_values", "admitted"),
    [
        ('"extra": {"a": 1, "b": "x"}, "anything": [true, null]', True),
        ('"extra": {"a": -1E310}', False),
        ('"anything": 1e400', False),
        ('"extra": {"a": {"deeper": {"x": 1}}}', False),
    ],
)
def test_values_the_schema_leaves_open_are_bounded_scalars(tiny_tokenizer, open_values, admitted):
    """An object open to other keys and an untyped value hold scalars or flat arrays/objects of them, their
    numbers bounded: any JSON there would admit ``-1E310``, which the parser refuses (a hypothesis walk found it
    in a BFCL function's open object)."""
    text = f'<tool name="probe">{{"count": 0, "ratio": 2, "mode": "fast", {open_values}}}</tool>'
    assert admits(action_grammar([probe], ask=False, max_tokens=1000), tiny_tokenizer, text) is admitted
    if admitted:
        check_valid(text, [probe], ask_allowed=False)


def test_the_tool_budget_spent_leaves_only_ask_and_finish():
    env = AgenticEnvironment("MissingQuantity")
    env.reset(seed=0)
    assert "calculator" in episode_grammar(env, 256)
    env.tool_calls = env.budget.max_tool_calls
    assert "calculator" not in episode_grammar(env, 256) and "<ask>" in episode_grammar(env, 256)


def test_without_llguidance_constrained_sampling_says_what_to_install(monkeypatch, tiny_tokenizer):
    monkeypatch.setitem(sys.modules, "llguidance", None)
    with pytest.raises(ImportError, match=r"pip install 'agentic-slm\[constrained\]'"):
        Grammars(tiny_tokenizer)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """The tiny model, untrained: it writes noise, the worst case for a constraint."""
    return build_tiny_model(["Arithmetic", "MissingQuantity"], tmp_path_factory.mktemp("tiny"), seeds=range(30))


@pytest.fixture(scope="module")
def policy(model_dir):
    return Policy.from_pretrained(model_dir)


def recompute_logprobs(policy: Policy, trajectory, masks: torch.Tensor | None) -> torch.Tensor:
    """log p(token_t | tokens_<t) by one plain forward pass, under the replayed masks when given."""
    with torch.no_grad():
        logits = policy.model(torch.tensor([trajectory.token_ids])).logits[0, :-1].float()
    if masks is not None:
        logits = logits.masked_fill(~masks[1:], -math.inf)
    targets = torch.tensor(trajectory.token_ids[1:])[:, None]
    return torch.log_softmax(logits, -1).gather(1, targets).squeeze(1)


def sampled(trajectory) -> list[tuple[int, float]]:
    return [(p, lp) for p, (bit, lp) in enumerate(zip(trajectory.loss_mask, trajectory.logprobs)) if bit]


def check_constrained_rollout(policy: Policy, trajectories, limit: int) -> None:
    """Every action valid and within the limit; the recorded log-probs are the masked distribution's, exactly."""
    vocab_size = policy.model.get_output_embeddings().weight.shape[0]
    for trajectory in trajectories:
        task = make_task(trajectory.task)
        assert len(trajectory.turn_grammars) == len(trajectory.turns) and trajectory.grammars
        for turn in trajectory.turns:
            assert turn.event not in INVALID_EVENTS and turn.end - turn.start <= limit, turn
            check_valid(turn.action, task.tools, ask_allowed=task.allows_ask)
        masks = constrained_masks(trajectory, policy.tokenizer, vocab_size)
        under_masks = recompute_logprobs(policy, trajectory, masks)
        assert all(lp == pytest.approx(under_masks[p - 1].item(), abs=1e-4) for p, lp in sampled(trajectory))
        unmasked = recompute_logprobs(policy, trajectory, None)
        assert max(abs(lp - unmasked[p - 1].item()) for p, lp in sampled(trajectory)) > 0.1, "the masks matter"


@pytest.mark.parametrize("task", ["Arithmetic", "MissingQuantity"])
def test_a_constrained_rollout_of_an_untrained_model_is_all_valid_with_exact_logprobs(policy, task):
    trajectories = rollout(policy, task, range(6), Sampling(max_new_tokens=96, seed=2, constrained=True))
    check_constrained_rollout(policy, trajectories, 96)
    assert {turn.kind for t in trajectories for turn in t.turns} >= {"tool", "finish"}


def test_greedy_and_nucleus_sampling_under_the_constraint_stay_valid(policy):
    for sampling in (
        Sampling(temperature=0, max_new_tokens=96, constrained=True),
        Sampling(top_p=0.5, seed=1, max_new_tokens=96, constrained=True),
    ):
        for trajectory in rollout(policy, "MissingQuantity", range(3), sampling):
            assert all(turn.event not in INVALID_EVENTS for turn in trajectory.turns)


def test_rows_under_different_grammars_sample_in_one_batch(policy):
    calculator = make_task("Arithmetic").tools[0]
    grammars = [action_grammar([], ask=True, max_tokens=64), action_grammar([calculator], ask=False, max_tokens=96)]
    contexts = [policy.encode("Task: act.\n")] * 12
    generations = policy.generate(
        contexts, Sampling(max_new_tokens=96, seed=5, constrained=True), lambda row, limit: grammars[row % 2]
    )
    for row, generation in enumerate(generations):
        assert generation.stop == "action" and generation.grammar == grammars[row % 2]
        assert len(generation.token_ids) <= (64 if row % 2 == 0 else 96)
        check_valid(generation.text, [] if row % 2 == 0 else [calculator], ask_allowed=row % 2 == 0)


def test_constrained_sampling_needs_each_rows_grammar(policy):
    with pytest.raises(ValueError, match="needs the grammar"):
        policy.generate([policy.encode("Task: act.\n")], Sampling(constrained=True))


def test_a_padded_batch_samples_under_the_constraint_too(policy):
    """A model with sliding-window layers decodes through its own cache: finished rows are still fed."""
    padded = sliding_window_policy(policy.tokenizer)
    assert isinstance(padded.decoding_batch([[1]]), PaddedBatch)
    trajectories = rollout(padded, "Arithmetic", range(4), Sampling(max_new_tokens=96, seed=3, constrained=True))
    check_constrained_rollout(padded, trajectories, 96)


def test_the_grammars_travel_with_saved_trajectories_and_replay_the_same_masks(policy, tmp_path):
    trajectories = rollout(policy, "Arithmetic", range(2), Sampling(max_new_tokens=64, seed=4, constrained=True))
    for loaded in (
        read_trajectories(write_jsonl(trajectories, tmp_path / "t.jsonl")),
        from_dataset(to_dataset(trajectories)),
    ):
        assert loaded == trajectories
        for before, after in zip(trajectories, loaded):
            assert torch.equal(constrained_masks(before, policy.tokenizer), constrained_masks(after, policy.tokenizer))


def test_masks_are_none_without_a_constraint_and_refuse_a_trajectory_that_does_not_add_up(policy):
    demo = oracle_trajectories("Arithmetic", [0], policy.tokenizer)[0]
    assert constrained_masks(demo, policy.tokenizer) is None
    constrained = rollout(policy, "Arithmetic", [0], Sampling(max_new_tokens=64, seed=4, constrained=True))[0]
    masks = constrained_masks(constrained, policy.tokenizer)
    outside = [p for p, bit in enumerate(constrained.loss_mask) if not bit]
    assert masks[outside].all() and not masks[[p for p, _ in sampled(constrained)]].all()
    constrained.turn_grammars.append(0)
    with pytest.raises(ValueError, match="grammar indices"):
        constrained_masks(constrained, policy.tokenizer)


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_eval_constrained_reports_no_invalid_action_and_every_tool_call_valid(model_dir, tmp_path, capsys):
    out = tmp_path / "eval"
    argv = [
        "eval",
        "--model",
        str(model_dir),
        "--task",
        "Arithmetic",
        "--n",
        "2",
        "--constrained",
        "--out-dir",
        str(out),
    ]
    code, _, _ = run(argv, capsys)
    report = json.loads((out / "report.json").read_text())
    assert code == 0 and report["sampling"]["constrained"] is True
    assert report["episodes"]["invalid_action_rate"]["k"] == 0
    calls = report["tool_calls"]
    assert calls["tool_call_validity"]["k"] == calls["first_sentinel_is_tool"]["k"]


def test_play_and_bench_take_constrained(model_dir, capsys):
    code, out, _ = run(
        ["play", "--task", "Arithmetic", "--model", str(model_dir), "--constrained", "--seed", "1"], capsys
    )
    assert code == 0 and ("finished" in out or "truncated" in out)
    code, _, err = run(["play", "--task", "Arithmetic", "--constrained"], capsys)
    assert code == 2 and "give --model" in err and len(err.strip().splitlines()) == 1
    argv = ["bench", "rollout", "--constrained", "--model", str(model_dir), "--episodes", "2", "--repeats", "1"]
    code, out, _ = run([*argv, "--max-new-tokens", "64", "--json"], capsys)
    result = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and "constraint overhead" in out
    assert result["validity"]["invalid_actions"] == 0 and result["validity"]["turns"] > 0
    assert result["validity"]["valid_tool_calls"] == result["validity"]["tool_calls"]


def test_the_byte_bound_is_guaranteed_only_for_closed_schemas():
    """Every built-in tool's schema is closed (so its actions provably fit the limit); an open array or object is not."""
    assert all(size_bounded(t.parameters) for name in task_names() for t in make_task(name).tools)
    closed = {"type": "object", "properties": {"x": {"type": "string"}}, "additionalProperties": False}
    assert size_bounded(closed)
    assert not size_bounded({**closed, "properties": {"x": {"type": "array", "items": {"type": "string"}}}})
    assert not size_bounded({"type": "object", "properties": {"x": {"type": "string"}}})
