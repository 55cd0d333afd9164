"""The policy and the batched token-in/token-out rollout engine, on the tiny default model (untrained weights)."""

import math
import re

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from sliding_window import sliding_window_policy

from agentic.bench.rollout import bench_rollout
from agentic.decoding import CHUNK_OVERHEAD_TOKENS, PaddedBatch, RaggedBatch, staircase
from agentic.encoding import episode_encoding
from agentic.env import AgenticEnvironment
from agentic.kv_cache import RaggedCache
from agentic.parsing import parse_action
from agentic.policy import Policy, encode
from agentic.rollout import Episode, oracle_trajectories, rollout
from agentic.sampling import Sampling, sample
from agentic.stopping import turn_is_over
from agentic.task import Budget
from agentic.training.tiny_model import build_tiny_model, task_corpus, train_tokenizer

SEEDS = list(range(6))
SAMPLING = Sampling(max_new_tokens=12, seed=3)
SENTINEL_HEAVY_LOGITS = {"<ask>": 2.0, "</ask>": 1.0, "</tool>": 1.0, '<tool name="': 1.0, "</finish>": 1.0, "a": 3.0}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return build_tiny_model(["Arithmetic"], tmp_path_factory.mktemp("tiny"), seeds=range(50))


@pytest.fixture(scope="module")
def policy(model_dir):
    return Policy.from_pretrained(model_dir)


@pytest.fixture(scope="module")
def trajectories(policy):
    return rollout(policy, "Arithmetic", SEEDS, SAMPLING)


def sentinel_heavy_policy(model_dir) -> Policy:
    """The tiny model rewired so that its next tokens are sentinels and a letter, drawn in proportions that depend on
    the context: its samples open and close actions in every order, and a cache that loses or mixes up any of the
    context changes their log-probs. Feature 0 of the final LayerNorm becomes a constant 1 whose output weights hold
    the sentinel bias (-30 for every other token); the other features still read the context."""
    policy = Policy.from_pretrained(model_dir)
    model, tokenizer = policy.model, policy.tokenizer
    with torch.no_grad():
        model.gpt_neox.final_layer_norm.weight[0] = 0.0
        model.gpt_neox.final_layer_norm.bias[0] = 1.0
        model.get_output_embeddings().weight[:, 0] = -30.0
        for token, logit in SENTINEL_HEAVY_LOGITS.items():
            model.get_output_embeddings().weight[tokenizer.convert_tokens_to_ids(token), 0] = logit
    return policy


def recomputed_logprobs(policy: Policy, token_ids: list[int]) -> torch.Tensor:
    """log p(token_t | tokens_<t) for every t >= 1, by one plain forward pass (no cache, no padding)."""
    with torch.no_grad():
        logits = policy.model(torch.tensor([token_ids])).logits[0].float()
    return torch.log_softmax(logits[:-1], -1).gather(1, torch.tensor(token_ids[1:])[:, None]).squeeze(1)


def test_decoding_the_stored_ids_gives_the_transcript(policy, trajectories):
    for trajectory in trajectories:
        assert policy.decode(trajectory.token_ids) == trajectory.transcript
        assert trajectory.transcript.startswith(trajectory.prompt)


def test_loss_mask_covers_exactly_the_agent_tokens(policy, trajectories):
    for trajectory in trajectories:
        spans = [range(turn.start, turn.end) for turn in trajectory.turns]
        agent_positions = {position for span in spans for position in span}
        assert {i for i, bit in enumerate(trajectory.loss_mask) if bit} == agent_positions
        assert len(trajectory.loss_mask) == len(trajectory.logprobs) == len(trajectory.token_ids)
        for turn, next_turn in zip(trajectory.turns, [*trajectory.turns[1:], None]):
            assert policy.decode(trajectory.token_ids[turn.start : turn.end]) == turn.action
            reply_end = next_turn.start if next_turn else len(trajectory.token_ids)
            assert policy.decode(trajectory.token_ids[turn.end : reply_end]) == turn.reply
            assert turn.decision_index == turn.start - 1 and trajectory.loss_mask[turn.decision_index] == 0


def test_recorded_logprobs_match_a_forward_pass(policy, trajectories):
    for trajectory in trajectories:
        expected = recomputed_logprobs(policy, trajectory.token_ids)
        for position, (bit, recorded) in enumerate(zip(trajectory.loss_mask, trajectory.logprobs)):
            if bit:
                assert recorded == pytest.approx(expected[position - 1].item(), abs=1e-4)
            else:
                assert math.isnan(recorded)


def test_rollouts_are_deterministic_and_step_the_real_environment(policy, trajectories):
    assert rollout(policy, "Arithmetic", SEEDS, SAMPLING) == trajectories
    assert rollout(policy, "Arithmetic", SEEDS, Sampling(max_new_tokens=12, seed=4)) != trajectories
    for seed, trajectory in zip(SEEDS, trajectories):
        assert trajectory.seed == seed and trajectory.task == "Arithmetic"
        assert trajectory.terminated or trajectory.truncated
        assert all(turn.end - turn.start <= SAMPLING.max_new_tokens for turn in trajectory.turns)
        assert [turn.kind for turn in trajectory.turns] == [
            parse_action(turn.action).kind.value for turn in trajectory.turns
        ]


def test_the_sentinel_heavy_model_reads_its_context(model_dir):
    """What makes the log-prob tests below able to fail: an earlier token moves the next token's log-probs."""
    policy = sentinel_heavy_policy(model_dir)
    contexts = torch.tensor([policy.encode(start)[:2] + policy.encode(" a a a a") for start in ("Task: 1", "zz")])
    favoured = [policy.tokenizer.convert_tokens_to_ids(token) for token in SENTINEL_HEAVY_LOGITS]
    with torch.no_grad():
        logprobs = torch.log_softmax(policy.model(contexts).logits[:, -1].float(), -1)[:, favoured]
    assert logprobs.exp().sum(-1).min() > 0.99, "nearly all the mass on the sentinels and the letter"
    assert (logprobs[0] - logprobs[1]).abs().max() > 0.05


def test_each_action_stops_at_its_first_closing_sentinel(model_dir):
    policy = sentinel_heavy_policy(model_dir)
    prompt = policy.encode("Task: act.\n")
    generations = policy.generate([prompt] * 24, Sampling(max_new_tokens=10, seed=0))
    assert {g.stop for g in generations} == {"action", "length"}
    for generation in generations:
        prefixes = [policy.decode(generation.token_ids[:n]) for n in range(1, len(generation.token_ids))]
        assert not any(turn_is_over(prefix) for prefix in prefixes), generation.text
        assert turn_is_over(generation.text) == (generation.stop == "action")
        assert generation.stop == "action" or len(generation.token_ids) == 10
    inside_ask = [g.text for g in generations if g.text.startswith("<ask>") and g.stop == "action"]
    assert inside_ask and all(text.endswith("</ask>") for text in inside_ask), "</tool> inside <ask> does not end it"


def test_multi_turn_rollout_stops_actions_and_keeps_logprobs_exact(model_dir):
    """Rows stop at different tokens and get replies of different lengths, so the batch parks and reorders rows."""
    policy = sentinel_heavy_policy(model_dir)
    trajectories = rollout(policy, "Arithmetic", range(16), Sampling(max_new_tokens=10))
    assert len({t.turns[0].end - t.turns[0].start for t in trajectories}) > 1
    assert len({len(t.turns[0].reply) for t in trajectories}) > 1
    for trajectory in trajectories:
        assert any(turn.event != "text" for turn in trajectory.turns)
        for turn in trajectory.turns:
            agent = trajectory.token_ids[turn.start : turn.end]
            assert not any(turn_is_over(policy.decode(agent[:n])) for n in range(1, len(agent)))
        expected = recomputed_logprobs(policy, trajectory.token_ids)
        sampled = [(p, lp) for p, (bit, lp) in enumerate(zip(trajectory.loss_mask, trajectory.logprobs)) if bit]
        assert all(lp == pytest.approx(expected[p - 1].item(), abs=1e-4) for p, lp in sampled)


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_the_ragged_cache_in_the_plain_layout_with_stock_attention_keeps_logprobs_exact(model_dir, attention):
    """What a GPU runs: keys and values in transformers' usual layout, its own attention, the engine's 4D mask."""
    policy = sentinel_heavy_policy(model_dir)
    policy.model.set_attn_implementation(attention)
    batch = policy.decoding_batch([[1]])
    assert isinstance(batch, RaggedBatch) and isinstance(batch.cache, RaggedCache)
    assert not any(layer.transpose for layer in batch.cache.layers)
    trajectories = rollout(policy, "Arithmetic", range(8), Sampling(max_new_tokens=10))
    for trajectory in trajectories:
        assert policy.decode(trajectory.token_ids) == trajectory.transcript
        expected = recomputed_logprobs(policy, trajectory.token_ids)
        sampled = [(p, lp) for p, (bit, lp) in enumerate(zip(trajectory.loss_mask, trajectory.logprobs)) if bit]
        assert all(lp == pytest.approx(expected[p - 1].item(), abs=1e-4) for p, lp in sampled)


def test_a_model_with_sliding_window_layers_decodes_through_its_own_cache(model_dir):
    """Such a cache cannot keep rows at their own lengths: every row is fed at every step, padding masked out.

    The first layer attends to the whole context, so a padding column left visible (the prompts differ in
    length) moves every later log-prob; the second only to the last 16 tokens, which the sequences outgrow.
    """
    policy = sliding_window_policy(Policy.from_pretrained(model_dir).tokenizer)
    batch = policy.decoding_batch([[1]])
    assert isinstance(batch, PaddedBatch) and not isinstance(batch.cache, RaggedCache)
    trajectories = rollout(policy, "Arithmetic", range(4), Sampling(max_new_tokens=12, seed=3))
    assert len({t.turns[0].start for t in trajectories}) > 1, "prompts of different lengths: padding to mask"
    assert min(len(t.token_ids) for t in trajectories) > 100, "longer than the window"
    for trajectory in trajectories:
        assert policy.decode(trajectory.token_ids) == trajectory.transcript
        expected = recomputed_logprobs(policy, trajectory.token_ids)
        sampled = [(p, lp) for p, (bit, lp) in enumerate(zip(trajectory.loss_mask, trajectory.logprobs)) if bit]
        assert all(lp == pytest.approx(expected[p - 1].item(), abs=1e-4) for p, lp in sampled)


@pytest.mark.parametrize(
    "queues",
    [[5], [7, 7, 7], [170, 90, 90, 89, 50, 46, 46], [300] + [1] * 40, [60, 59, 58, 3, 2, 1], list(range(64, 0, -1))],
)
def test_staircase_feeds_each_queue_exactly_once_at_no_more_cost_than_one_chunk(queues):
    plan = staircase(queues)
    left = list(queues)
    for front, keep in plan:
        for row in range(len(queues)):
            fed = max(left[row] - keep, 0) if row < front else 0
            assert row < front or left[row] <= keep, "a row left out of a chunk must not be owed its tokens"
            left[row] -= fed
    assert left == [0] * len(queues) and plan[-1] == (len(queues), 0)
    cost = sum(
        CHUNK_OVERHEAD_TOKENS + front * (high - keep)
        for (front, keep), high in zip(plan, [max(queues)] + [k for _, k in plan])
    )
    assert cost <= CHUNK_OVERHEAD_TOKENS + len(queues) * max(queues)


@pytest.mark.parametrize("top_p", [1.0, 0.7])
def test_sampled_tokens_follow_the_distribution_and_carry_its_logprobs(top_p):
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0, -30.0, 0.5]]).repeat(40_000, 1)
    sampling = Sampling(temperature=1.5, top_p=top_p)
    tokens, logprobs = sample(logits, sampling, torch.Generator().manual_seed(0))
    probs = torch.softmax(logits[0] / 1.5, -1)
    if top_p < 1:  # the nucleus: tokens 0, 1, 5 (by descending probability) cover 0.7
        probs = torch.where(torch.tensor([True, True, False, False, False, True]), probs, 0.0)
        probs = probs / probs.sum()
    frequencies = torch.bincount(tokens, minlength=6) / len(tokens)
    assert torch.allclose(frequencies, probs, atol=0.01), (frequencies, probs)
    assert (frequencies[probs == 0] == 0).all()
    torch.testing.assert_close(logprobs, probs.log()[tokens])


def test_greedy_and_nucleus_sampling(policy):
    contexts = [policy.encode("Task: compute 1 + 2.\n"), policy.encode("Act now.\n")]
    greedy = policy.generate(contexts, Sampling(temperature=0, max_new_tokens=6))
    narrow = policy.generate(contexts, Sampling(top_p=1e-6, max_new_tokens=6, seed=9))
    assert [g.token_ids for g in greedy] == [g.token_ids for g in narrow]
    assert all(lp == 0.0 for g in greedy + narrow for lp in g.logprobs), "a point mass has log-prob 0"


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"temperature": math.nan}, "temperature must be a finite number, got nan"),
        ({"temperature": math.inf}, "temperature must be a finite number, got inf"),
        ({"temperature": -0.5}, "temperature must be >= 0"),
        ({"top_p": math.nan}, "top_p must be a finite number, got nan"),
        ({"top_p": 0}, "top_p must be > 0"),
        ({"top_p": 1.5}, "top_p must lie in [0, 1]"),
        ({"max_new_tokens": 2.5}, "max_new_tokens must be a whole number, got 2.5"),
        ({"max_new_tokens": True}, "max_new_tokens must be a whole number, got True"),
        ({"max_new_tokens": 0}, "max_new_tokens must be positive"),
        ({"max_new_tokens": 10**12}, "max_new_tokens must be at most 1,048,576"),
        ({"seed": 0.5}, "seed must be a whole number"),
    ],
)
def test_bad_sampling_settings_are_refused_when_made(settings, message):
    with pytest.raises(ValueError, match=re.escape(message)) as refused:
        Sampling(**settings)
    assert len(str(refused.value).splitlines()) == 1


def test_a_model_gone_non_finite_stops_sampling_with_a_message_naming_its_rows(model_dir):
    """A NaN embedding poisons exactly the contexts that contain its token; rows are reordered inside the batch."""
    policy = Policy.from_pretrained(model_dir)
    poisoned = policy.encode("7")[0]
    with torch.no_grad():
        policy.model.get_input_embeddings().weight[poisoned] = math.nan
    long_clean_context = policy.encode("Task: compute 1 + 2 now.\n" * 12)  # fed first: the batch puts it in front
    contexts = [policy.encode("Task: 7 + 1.\n"), long_clean_context, policy.encode("7")]
    for sampling in (Sampling(max_new_tokens=4), Sampling(temperature=0, max_new_tokens=4)):
        with pytest.raises(ValueError, match=r"cannot sample a token for row 0 \(NaN logits\), row 2 \(NaN logits\):"):
            policy.generate(contexts, sampling)
    assert policy.generate(contexts[1:2], Sampling(max_new_tokens=4))[0].token_ids, "a clean context still samples"


@pytest.mark.parametrize("temperature", [1.0, 0.0])
def test_logits_must_describe_a_distribution(temperature):
    """-inf marks a token that cannot be drawn; +inf (softmax is undefined there), NaN, or no possible token is an error."""
    logits = torch.tensor([[0.0, -math.inf, 1.0], [0.0, math.inf, 1.0], [-math.inf] * 3, [0.0, math.nan, 1.0]])
    sampling, generator = Sampling(temperature=temperature), torch.Generator().manual_seed(0)
    tokens, _ = sample(logits[:1], sampling, generator)
    assert tokens.tolist() != [1]
    with pytest.raises(ValueError) as refused:
        sample(logits, sampling, generator, rows=[10, 11, 12, 13])
    assert "row 11 (+inf logits), row 12 (every logit -inf), row 13 (NaN logits):" in str(refused.value)
    assert "row 10" not in str(refused.value)


def test_logits_that_overflow_at_a_tiny_temperature_are_named_as_such():
    with pytest.raises(ValueError, match=r"row 0 \(logits overflow when divided by temperature 1e-39\)"):
        sample(torch.tensor([[0.0, 1.0, 2.0]]), Sampling(temperature=1e-39), torch.Generator())


def test_episodes_end_truncated_when_the_context_is_full(tmp_path):
    policy = Policy.from_pretrained(
        build_tiny_model(["Arithmetic"], tmp_path, seeds=range(20), max_position_embeddings=96)
    )
    for trajectory in rollout(policy, "Arithmetic", SEEDS, Sampling(max_new_tokens=16)):
        assert trajectory.turns and all(turn.end <= 96 for turn in trajectory.turns)
        assert (
            trajectory.truncated
            and not trajectory.success
            and "context of 96 tokens is full" in trajectory.truncation_reason
        )


def test_oracle_trajectories_succeed_with_exact_tokens(policy):
    demos = oracle_trajectories("Arithmetic", range(20), policy.tokenizer)
    for demo in demos:
        assert demo.success and demo.terminated and not demo.truncated and demo.score == 1.0
        assert policy.decode(demo.token_ids) == demo.transcript
        assert all(math.isnan(lp) for lp in demo.logprobs)
        assert sum(demo.loss_mask) == sum(len(policy.encode(turn.action)) for turn in demo.turns)
        assert [turn.event for turn in demo.turns] == ["tool", "finish"]


def test_the_token_budget_counts_the_tokens_the_model_wrote_not_a_re_encoding_of_them():
    """A model may write a word in other tokens than its tokenizer's own split: with names spelt, `M|or` where the
    tokenizer re-encodes `M|o|r`. The action's budget counts the tokens written, so an action within it is played."""
    tokenizer = train_tokenizer(task_corpus(["Arithmetic"], range(20)), spell_names=True)
    text = "<finish>Mor</finish>"
    spelt = encode(tokenizer, text)
    letters = [tokenizer.convert_tokens_to_ids(letter) for letter in "or"]
    at = next(i for i in range(len(spelt)) if spelt[i : i + 2] == letters)
    written = [*spelt[:at], tokenizer.convert_tokens_to_ids("or"), *spelt[at + 2 :]]
    assert tokenizer.decode(written) == text and len(written) == len(spelt) - 1

    def re_encoded(action: str) -> int:  # how the environment counted a rollout's actions before
        return len(encode(tokenizer, action))

    env = AgenticEnvironment("Arithmetic", budget=Budget(max_action_tokens=len(written)), count_tokens=re_encoded)
    episode = Episode(env, 0, episode_encoding(tokenizer, "raw"))
    episode.step(text, written)
    assert [turn.event for turn in episode.trajectory.turns] == ["finish"]
    over = Episode(
        AgenticEnvironment("Arithmetic", budget=Budget(max_action_tokens=len(written) - 1)), 0, episode.encoding
    )
    over.step(text, written)
    assert [turn.event for turn in over.trajectory.turns] == ["invalid"], "one token over the budget is refused"


def test_a_peft_adapter_directory_loads_with_its_base_model(model_dir, policy, tmp_path):
    lora = get_peft_model(policy.model, LoraConfig(r=4, target_modules=["query_key_value"]))
    with torch.no_grad():
        for name, parameter in lora.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.5, generator=torch.Generator().manual_seed(0))
    lora.save_pretrained(tmp_path)
    ids = torch.tensor([policy.encode("Task: compute 1 + 2.\n")])
    with torch.no_grad():
        adapted = lora(ids).logits
        base = lora.get_base_model()
        with lora.disable_adapter():
            plain = base(ids).logits
    loaded = Policy.from_pretrained(tmp_path)
    assert isinstance(loaded.model, PeftModel)
    with torch.no_grad():
        logits = loaded.model(ids).logits
    assert torch.allclose(logits, adapted, atol=1e-5) and not torch.allclose(logits, plain, atol=1e-3)
    assert loaded.decode(ids[0].tolist()) == "Task: compute 1 + 2.\n"
    assert rollout(loaded, "Arithmetic", [0], Sampling(max_new_tokens=4))[0].turns


def test_bench_compares_the_engine_with_both_re_tokenizing_loops_on_the_same_seeds(model_dir):
    result = bench_rollout(str(model_dir), "Arithmetic", n_episodes=3, max_new_tokens=4, repeats=2)
    assert result["episodes"] == 3 and result["mode"] == "raw"
    for side in ("engine", "batched_generate", "sequential"):
        timing = result[side]
        assert len(timing["all_seconds"]) == 2 and timing["seconds"] == min(timing["all_seconds"])
        assert timing["episodes_per_s"] == pytest.approx(3 / timing["seconds"]) and timing["agent_tokens_per_s"] > 0
    for baseline in ("batched_generate", "sequential"):
        assert result["speedup"][baseline] == pytest.approx(result[baseline]["seconds"] / result["engine"]["seconds"])
    only = bench_rollout(
        str(model_dir), "Arithmetic", n_episodes=2, max_new_tokens=4, repeats=1, baselines=["sequential"]
    )
    assert "batched_generate" not in only and set(only["speedup"]) == {"sequential"}
    with pytest.raises(ValueError, match="repeats"):
        bench_rollout(str(model_dir), repeats=0)
    with pytest.raises(ValueError, match="baselines must be some of batched_generate, sequential, got nope"):
        bench_rollout(str(model_dir), baselines=["nope"])
