"""The evaluation's metrics, as pure functions of numbers and texts.

- perplexity: ``exp`` of the mean negative log-likelihood per reference token, pooled over all
  references (a long reference weighs by its tokens, as in language-model evaluation);
- reward: mean and sample standard deviation; a mean with its Student-t interval (the reward model's margins);
- paired win rate of system A over system B on the same prompts: a win scores 1, a tie 1/2, a loss 0;
- ROUGE-1/2/L F1 (`rouge-score`, stemmed), averaged over pairs, in [0, 1];
- BLEU: `sacrebleu.corpus_bleu`, in [0, 100];
- Distinct-n: distinct n-grams over all n-grams of all generations (whitespace words; an
  n-gram never spans two generations).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import sacrebleu
from rouge_score import rouge_scorer
from scipy import stats

from agentic.metrics import wilson


def perplexity(token_logprobs: Sequence[Sequence[float]]) -> float:
    """Perplexity from the natural-log probabilities of every reference token."""
    flat = [lp for sequence in token_logprobs for lp in sequence]
    if not flat:
        raise ValueError("perplexity needs at least one token")
    return math.exp(-sum(flat) / len(flat))


def mean_std(values: Sequence[float]) -> dict[str, float]:
    """Mean and sample standard deviation (ddof=1; NaN for one value)."""
    array = np.asarray(values, dtype=float)
    return {"mean": float(array.mean()), "std": float(array.std(ddof=1)) if len(array) > 1 else float("nan")}


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> dict[str, float]:
    """The mean with its Student-t interval (NaN bounds for fewer than two values)."""
    array, n = np.asarray(values, dtype=float), len(values)
    if n < 2:
        mean = float(array.mean()) if n else float("nan")
        return {"mean": mean, "low": float("nan"), "high": float("nan"), "n": n}
    mean, spread = float(array.mean()), float(array.std(ddof=1)) / math.sqrt(n)
    low, high = stats.t.interval(confidence, n - 1, loc=mean, scale=spread) if spread else (mean, mean)
    return {"mean": mean, "low": float(low), "high": float(high), "n": n}


def paired_win_rate(
    rewards_a: Sequence[float], rewards_b: Sequence[float], confidence: float = 0.95
) -> dict[str, float]:
    """How often A's reward beats B's on the same prompt (ties count half), with a score interval.

    Paired, not a comparison of means: ``rewards_a[i]`` and ``rewards_b[i]`` must be the two
    systems' rewards on prompt ``i``.
    """
    if len(rewards_a) != len(rewards_b):
        raise ValueError(
            f"paired win rate needs one reward per prompt for both systems, got {len(rewards_a)} and {len(rewards_b)}"
        )
    wins = sum(a > b for a, b in zip(rewards_a, rewards_b))
    ties = sum(a == b for a, b in zip(rewards_a, rewards_b))
    n = len(rewards_a)
    interval = wilson(wins + ties / 2, n, confidence)
    low, high = interval.low, interval.high
    return {
        "value": (wins + ties / 2) / n if n else float("nan"),
        "wins": wins,
        "ties": ties,
        "losses": n - wins - ties,
        "n": n,
        "low": low,
        "high": high,
    }


def rouge(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Mean ROUGE-1, ROUGE-2 and ROUGE-L F1 over (hypothesis, reference) pairs."""
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    scores = [scorer.score(reference, hypothesis) for hypothesis, reference in zip(hypotheses, references, strict=True)]
    return {name: float(np.mean([s[name].fmeasure for s in scores])) for name in ("rouge1", "rouge2", "rougeL")}


def bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU (sacrebleu's defaults: 4-grams, brevity penalty, 13a tokenisation), one reference per hypothesis."""
    return float(sacrebleu.corpus_bleu(list(hypotheses), [list(references)]).score)


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Distinct n-grams / all n-grams over every text; 0 when there is no n-gram at all."""
    ngrams = [tuple(words[i : i + n]) for words in (text.split() for text in texts) for i in range(len(words) - n + 1)]
    return len(set(ngrams)) / len(ngrams) if ngrams else 0.0
