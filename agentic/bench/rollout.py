"""Rollout throughput: the batched token-in/token-out engine against a sequential re-tokenizing loop.

The baseline is the paper's design: one episode at a time, and every turn re-tokenizes the
whole context (``tokenizer(env.context)``) and calls ``model.generate`` from scratch, stopping
at a closing sentinel. It runs the model as transformers loads it (stock SDPA attention);
the engine runs it through `Policy` (on CPU, `agentic.kv_cache.cpu_attention`). Both
sides use the same weights, seeds, sampling (temperature 1, no top-k/top-p) and per-turn
token limit, in the same process, each timed after a warm-up run, several times in turn. The
baseline records no log-probs, which only flatters it.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch
from transformers import AutoModelForCausalLM, PreTrainedModel

from agentic.bench import throughput
from agentic.env import AgenticEnvironment
from agentic.policy import Policy
from agentic.rollout import rollout
from agentic.sampling import Sampling

CLOSING_SENTINELS = ["</tool>", "</ask>", "</finish>"]


def sequential_rollout(policy: Policy, model: PreTrainedModel, task: str, seeds: list[int], max_new_tokens: int) -> int:
    """Play one episode per seed, one after another, re-tokenizing the context every turn; returns the agent tokens generated.

    ``model`` generates (the stock model); ``policy`` only lends its tokenizer.
    """
    generated = 0
    for seed in seeds:
        env = AgenticEnvironment(task, count_tokens=policy.count_tokens)
        env.reset(seed=seed)
        done = False
        while not done:
            inputs = policy.tokenizer(env.context, return_tensors="pt", add_special_tokens=False).to(model.device)
            output = model.generate(
                **inputs,
                do_sample=True,
                temperature=1.0,
                top_k=0,
                top_p=1.0,
                max_new_tokens=max_new_tokens,
                stop_strings=CLOSING_SENTINELS,
                tokenizer=policy.tokenizer,
                pad_token_id=policy.pad_id,
            )
            new_tokens = output[0, inputs["input_ids"].shape[1] :]
            generated += len(new_tokens)
            _, _, terminated, truncated, _ = env.step(policy.decode(new_tokens))
            done = terminated or truncated
    return generated


def bench_rollout(
    model_dir: str,
    task: str = "Arithmetic",
    n_episodes: int = 64,
    *,
    max_new_tokens: int = 64,
    seed: int = 0,
    device: str | None = None,
    repeats: int = 3,
) -> dict[str, Any]:
    """Episodes/s (and agent tokens/s) of `rollout` on all episodes at once versus `sequential_rollout`, and their ratio.

    After a warm-up, the two sides run ``repeats`` times each, taking turns, on the same
    episodes every time. The ratio is of each side's best time (a busy machine only ever adds
    time); the median ratio and every time are reported beside it.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    policy = Policy.from_pretrained(model_dir, device=device)
    stock_model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=policy.model.dtype).to(policy.device).eval()
    seeds = list(range(seed, seed + n_episodes))
    sampling = Sampling(max_new_tokens=max_new_tokens, seed=seed)
    times: dict[str, list[float]] = {"batched": [], "sequential": []}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        rollout(policy, task, seeds, sampling)  # warm-ups: first-call allocations
        sequential_rollout(policy, stock_model, task, seeds[:1], max_new_tokens)
        for _ in range(repeats):
            start = time.perf_counter()
            trajectories = rollout(policy, task, seeds, sampling)
            times["batched"].append(time.perf_counter() - start)
            torch.manual_seed(seed)  # the same sequential episodes every time
            start = time.perf_counter()
            sequential_tokens = sequential_rollout(policy, stock_model, task, seeds, max_new_tokens)
            times["sequential"].append(time.perf_counter() - start)
    tokens = {"batched": sum(sum(t.loss_mask) for t in trajectories), "sequential": sequential_tokens}
    sides = {side: throughput(seconds, n_episodes, tokens[side]) for side, seconds in times.items()}
    return {
        "task": task,
        "model": str(model_dir),
        "device": str(policy.device),
        "episodes": n_episodes,
        "max_new_tokens": max_new_tokens,
        "repeats": repeats,
        **sides,
        "speedup": sides["batched"]["episodes_per_s"] / sides["sequential"]["episodes_per_s"],
        "median_speedup": statistics.median(times["sequential"]) / statistics.median(times["batched"]),
    }
