"""The corpus pipeline's metrics on inputs whose answers are worked out by hand."""

import math

import pytest
import sacrebleu
import torch
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

from agentic.metrics import wilson
from agentic.policy import Policy
from agentic.training.corpus.evaluate import continuation_logprobs
from agentic.training.corpus.metrics import (
    bleu,
    distinct_n,
    mean_interval,
    mean_std,
    paired_win_rate,
    perplexity,
    rouge,
)
from agentic.training.tiny_model import train_tokenizer

HYPOTHESES = ["the cat sat on the mat today", "a storm hit the coast on monday", "the council approved the plan"]
REFERENCES = [
    "the cat sat on the mat",
    "a storm with strong winds hit the coast on monday",
    "council approves a plan to fix bridges",
]


def test_bleu_is_sacrebleu_corpus_bleu():
    assert bleu(HYPOTHESES, REFERENCES) == sacrebleu.corpus_bleu(HYPOTHESES, [REFERENCES]).score
    assert bleu(["the cat sat on the mat"], ["the cat sat on the mat"]) == pytest.approx(100.0)


def test_bleu_has_a_brevity_penalty_unlike_ngram_precision():
    short = bleu(["the cat sat on the"], ["the cat sat on the mat today"])
    assert 0 < short < 100 * 0.75  # every n-gram matches: only the brevity penalty lowers it


def test_distinct_n_counts_over_all_generations_without_crossing_them():
    texts = ["the cat the cat", "a dog"]
    assert distinct_n(texts, 1) == pytest.approx(4 / 6)  # the, cat, a, dog out of 6 words
    assert distinct_n(texts, 2) == pytest.approx(3 / 4)  # (the cat) twice, (cat the), (a dog); never (cat a)
    assert distinct_n(["one"], 2) == 0.0


def test_rouge_f1_on_hand_counted_overlap():
    scores = rouge(["the cat sat"], ["the cat sat on the mat"])
    assert scores["rouge1"] == pytest.approx(2 / 3)  # P = 3/3, R = 3/6
    assert scores["rouge2"] == pytest.approx(2 * 1 * 0.4 / 1.4)  # P = 2/2, R = 2/5
    assert scores["rougeL"] == pytest.approx(2 / 3)  # LCS = 3


def test_perplexity_from_token_log_probabilities():
    logprobs = [[math.log(0.5), math.log(0.25)], [math.log(0.5)]]
    assert perplexity(logprobs) == pytest.approx(16 ** (1 / 3))  # tokens pooled: exp(mean NLL) over 3 tokens
    with pytest.raises(ValueError):
        perplexity([[]])


def test_perplexity_of_a_uniform_model_is_its_vocabulary_size():
    tokenizer = train_tokenizer(["the cat sat on the mat. the dog ran to the park."], vocab_size=300)
    model = GPTNeoXForCausalLM(
        GPTNeoXConfig(
            vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64
        )
    )
    torch.nn.init.zeros_(model.get_output_embeddings().weight)  # every logit 0: uniform next-token distribution
    policy = Policy(model, tokenizer)
    references = [" sat on the mat.", " ran to the park."]
    logprobs = continuation_logprobs(policy, ["the cat", "the dog"], references)
    assert [len(lp) for lp in logprobs] == [len(policy.encode(r)) for r in references]  # reference tokens only
    assert perplexity(logprobs) == pytest.approx(len(tokenizer), rel=1e-5)


def test_continuation_logprobs_condition_on_the_prompt(tmp_path):
    tokenizer = train_tokenizer(["abc abd abe xyz"], vocab_size=270)
    model = GPTNeoXForCausalLM(
        GPTNeoXConfig(
            vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64
        )
    )
    policy = Policy(model, tokenizer)
    together = continuation_logprobs(policy, ["abc", "xyz xyz"], [" abd", " abd"])
    assert together[0] == pytest.approx(
        continuation_logprobs(policy, ["abc"], [" abd"])[0], abs=1e-5
    )  # padding changes nothing
    assert together[0] != pytest.approx(together[1], abs=1e-4)


def test_mean_std_uses_the_sample_standard_deviation():
    assert mean_std([1.0, 2.0, 3.0, 4.0]) == pytest.approx({"mean": 2.5, "std": math.sqrt(5 / 3)})


def test_win_rate_is_paired_not_a_comparison_of_means():
    a, b = [0.0, 0.0, 0.0, 10.0], [1.0, 1.0, 1.0, 7.0]
    assert sum(a) == sum(b)  # equal means ...
    assert paired_win_rate(a, b)["value"] == 0.25  # ... but A wins on one prompt out of four
    a, b = [1.0, 2.0, 3.0], [0.0, 1.0, 2.0]
    assert paired_win_rate(a, b)["value"] == 1.0
    assert paired_win_rate(a, [2.0, 0.0, 1.0])["value"] == pytest.approx(2 / 3)  # same rewards, other pairing


def test_win_rate_counts_ties_half_and_needs_one_reward_per_prompt():
    result = paired_win_rate([1.0, 1.0, 2.0, 0.0], [1.0, 0.0, 1.0, 1.0])
    assert (result["wins"], result["ties"], result["losses"], result["value"]) == (2, 1, 1, 0.625)
    assert result["low"] < 0.625 < result["high"]
    with pytest.raises(ValueError):
        paired_win_rate([1.0, 2.0], [1.0])


def test_the_win_rate_interval_is_wilson_with_ties_as_half_wins():
    result = paired_win_rate([1.0, 0.5, 0.0, 2.0], [0.0, 0.5, 1.0, 1.0])  # win, tie, loss, win: 2.5 of 4
    interval = wilson(2.5, 4)
    assert (result["low"], result["high"]) == pytest.approx((interval.low, interval.high))
    assert wilson(10, 10).low == pytest.approx(0.7225, abs=1e-4) and wilson(10, 10).high == pytest.approx(1.0)


def test_a_mean_comes_with_its_student_t_interval():
    interval = mean_interval([1.0, 2.0, 3.0])
    assert interval["mean"] == 2.0 and interval["n"] == 3
    half_width = 4.302652729911275 * 1.0 / 3**0.5  # t(0.975, 2 degrees of freedom) * sd / sqrt(n)
    assert (interval["low"], interval["high"]) == pytest.approx((2.0 - half_width, 2.0 + half_width))
    assert mean_interval([0.5, 0.5])["low"] == 0.5, "no spread: the interval is the mean"
    assert math.isnan(mean_interval([0.5])["low"]), "one value has no interval"
