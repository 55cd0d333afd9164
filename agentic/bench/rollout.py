"""Rollout throughput: the batched token-in/token-out engine against a sequential re-tokenizing loop.

The baseline is the paper's design: one episode at a time, and every turn re-tokenizes the
whole context (``tokenizer(env.context)``) and calls ``model.generate`` from scratch, stopping
at a closing sentinel. It runs the model as transformers loads it (stock SDPA attention);
the engine runs it through `Policy` (on CPU, `agentic.kv_cache.cpu_decode_attention`). Both
sides use the same weights, seeds, sampling (temperature 1, no top-k/top-p) and per-turn
token limit, in the same process, each timed after a warm-up run. The baseline records no
log-probs, which only flatters it.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from transformers import AutoModelForCausalLM, PreTrainedModel

from agentic.env import AgenticEnvironment
from agentic.policy import Policy, Sampling
from agentic.rollout import rollout

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
) -> dict[str, Any]:
    """Episodes/s (and agent tokens/s) of `rollout` on all episodes at once versus `sequential_rollout`, and their ratio."""
    policy = Policy.from_pretrained(model_dir, device=device)
    stock_model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=policy.model.dtype).to(policy.device).eval()
    seeds = list(range(seed, seed + n_episodes))
    sampling = Sampling(max_new_tokens=max_new_tokens, seed=seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        rollout(policy, task, seeds, sampling)  # warm-ups: first-call allocations
        sequential_rollout(policy, stock_model, task, seeds[:1], max_new_tokens)
        start = time.perf_counter()
        trajectories = rollout(policy, task, seeds, sampling)
        batched_s = time.perf_counter() - start
        start = time.perf_counter()
        sequential_tokens = sequential_rollout(policy, stock_model, task, seeds, max_new_tokens)
        sequential_s = time.perf_counter() - start
    batched_tokens = sum(sum(t.loss_mask) for t in trajectories)
    batched = {"seconds": batched_s, "episodes_per_s": n_episodes / batched_s, "agent_tokens_per_s": batched_tokens / batched_s}
    sequential = {"seconds": sequential_s, "episodes_per_s": n_episodes / sequential_s, "agent_tokens_per_s": sequential_tokens / sequential_s}
    return {
        "task": task,
        "model": str(model_dir),
        "device": str(policy.device),
        "episodes": n_episodes,
        "max_new_tokens": max_new_tokens,
        "batched": batched,
        "sequential": sequential,
        "speedup": batched["episodes_per_s"] / sequential["episodes_per_s"],
    }
