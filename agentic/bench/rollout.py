"""Rollout throughput: the batched token-in/token-out engine against the loops people write without it.

Two baselines, each running the model as transformers loads it (stock SDPA attention) and calling
``model.generate`` from scratch every turn on a context rendered and tokenized again from the whole
episode (in chat mode the model's chat template renders the conversation, as ``apply_chat_template``
users do; in raw mode the context is the observation text):

- ``batched_generate``: every live episode in one ``generate`` call per turn, left-padded, finished
  rows waiting for the longest (what a TRL or plain-transformers script does);
- ``sequential``: one episode at a time (the paper's design).

The engine runs the model through `Policy` (on CPU, `agentic.kv_cache.cpu_attention`). All sides use
the same weights, seeds, sampling (temperature 1, no top-k/top-p) and per-turn token limit, stop at a
closing sentinel or the end-of-sequence token, and run in the same process, each timed after a
warm-up run, several times in turn. The baselines record no log-probs, which only flatters them.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Sequence
from typing import Any

import torch
from transformers import AutoModelForCausalLM, PreTrainedModel

from agentic.bench import throughput
from agentic.encoding import prompt_messages
from agentic.env import AgenticEnvironment
from agentic.models import resolve_model
from agentic.policy import Policy
from agentic.rollout import rollout
from agentic.sampling import Sampling

CLOSING_SENTINELS = ["</tool>", "</ask>", "</finish>"]
BASELINES = ("batched_generate", "sequential")


def chat_messages(env: AgenticEnvironment) -> list[dict[str, str]]:
    """The episode so far as chat messages: the prompt's, then each action the environment kept and its reply."""
    messages = prompt_messages(env.task, env.instance)
    for turn in env.history:
        raw = turn.action.raw
        messages.append({"role": "assistant", "content": raw[: len(raw) - len(turn.action.discarded)]})
        if turn.observation.strip():
            messages.append({"role": "user", "content": turn.observation.strip()})
    return messages


def render_context(policy: Policy, env: AgenticEnvironment) -> str:
    """The text a re-tokenizing loop feeds the model: the chat rendered by the template, or the observation."""
    if policy.mode == "raw":
        return env.context
    return policy.tokenizer.apply_chat_template(chat_messages(env), tokenize=False, add_generation_prompt=True)


def _generate(policy: Policy, model: PreTrainedModel, inputs: Any, max_new_tokens: int) -> torch.Tensor:
    """``model.generate`` sampling at temperature 1 until a closing sentinel; returns the new tokens of each row."""
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
    return output[:, inputs["input_ids"].shape[1] :]


def _action_text(policy: Policy, tokens: torch.Tensor) -> str:
    """An action's text as such a loop reads it (in chat mode without the special tokens, as users decode)."""
    return policy.tokenizer.decode(tokens, skip_special_tokens=policy.mode == "chat")


def sequential_rollout(policy: Policy, model: PreTrainedModel, task: str, seeds: list[int], max_new_tokens: int) -> int:
    """Play one episode per seed, one after another, re-tokenizing the context every turn; returns the agent tokens generated.

    ``model`` generates (the stock model); ``policy`` only lends its tokenizer and mode.
    """
    generated = 0
    for seed in seeds:
        env = AgenticEnvironment(task, count_tokens=policy.count_tokens)
        env.reset(seed=seed)
        done = False
        while not done:
            context = render_context(policy, env)
            inputs = policy.tokenizer(context, return_tensors="pt", add_special_tokens=False).to(model.device)
            new_tokens = _generate(policy, model, inputs, max_new_tokens)[0]
            generated += len(new_tokens)
            _, _, terminated, truncated, _ = env.step(_action_text(policy, new_tokens))
            done = terminated or truncated
    return generated


def batched_generate_rollout(
    policy: Policy, model: PreTrainedModel, task: str, seeds: list[int], max_new_tokens: int
) -> int:
    """Play one episode per seed, all live ones in one left-padded ``model.generate`` call per turn, re-rendering
    and re-tokenizing every context every turn; returns the agent tokens generated (padding after a row's end not
    counted)."""
    tokenizer = copy.copy(policy.tokenizer)
    tokenizer.padding_side = "left"
    envs = [AgenticEnvironment(task, count_tokens=policy.count_tokens) for _ in seeds]
    for env, seed in zip(envs, seeds):
        env.reset(seed=seed)
    live, generated = envs, 0
    while live:
        contexts = [render_context(policy, env) for env in live]
        inputs = tokenizer(contexts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
        going = []
        for env, row in zip(live, _generate(policy, model, inputs, max_new_tokens)):
            kept = (row != policy.pad_id).nonzero()
            tokens = row[: int(kept[-1]) + 1] if len(kept) else row[:0]
            generated += len(tokens)
            *_, terminated, truncated, _ = env.step(_action_text(policy, tokens))
            if not (terminated or truncated):
                going.append(env)
        live = going
    return generated


LOOPS = {"batched_generate": batched_generate_rollout, "sequential": sequential_rollout}


def _timed_runs(
    policy: Policy,
    stock_model: PreTrainedModel,
    task: str,
    seeds: list[int],
    sampling: Sampling,
    baselines: Sequence[str],
    repeats: int,
) -> tuple[dict[str, list[float]], dict[str, int]]:
    """Each side's times over ``repeats`` runs taking turns, after a warm-up, and its agent tokens per run."""
    times: dict[str, list[float]] = {side: [] for side in ("engine", *baselines)}
    tokens: dict[str, int] = {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(sampling.seed)
        rollout(policy, task, seeds[:2], sampling)  # warm-ups: first-call allocations
        for name in baselines:
            LOOPS[name](policy, stock_model, task, seeds[:2], sampling.max_new_tokens)
        for _ in range(repeats):
            start = time.perf_counter()
            trajectories = rollout(policy, task, seeds, sampling)
            times["engine"].append(time.perf_counter() - start)
            tokens["engine"] = sum(sum(t.loss_mask) for t in trajectories)
            for name in baselines:
                torch.manual_seed(sampling.seed)  # the same baseline episodes every time
                start = time.perf_counter()
                tokens[name] = LOOPS[name](policy, stock_model, task, seeds, sampling.max_new_tokens)
                times[name].append(time.perf_counter() - start)
    return times, tokens


def bench_rollout(
    model_dir: str,
    task: str = "Arithmetic",
    n_episodes: int = 64,
    *,
    max_new_tokens: int = 64,
    seed: int = 0,
    device: str | None = None,
    repeats: int = 3,
    mode: str = "auto",
    baselines: Sequence[str] = BASELINES,
) -> dict[str, Any]:
    """Episodes/s (and agent tokens/s) of `rollout` on all episodes at once versus each of ``baselines``, and the ratios.

    ``model_dir`` is what ``--model`` takes: a directory, a hub id or a name `agentic.models` knows.

    After a warm-up, the sides run ``repeats`` times each, taking turns, on the same episodes
    every time. Each ratio is of the best times (a busy machine only ever adds time); the median
    ratios and every time are reported beside them.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    unknown = set(baselines) - set(BASELINES)
    if unknown or not baselines:
        raise ValueError(f"baselines must be some of {', '.join(BASELINES)}, got {', '.join(baselines) or 'none'}")
    model_dir = resolve_model(model_dir)
    policy = Policy.from_pretrained(model_dir, device=device, mode=mode)
    stock_model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=policy.model.dtype).to(policy.device).eval()
    seeds = list(range(seed, seed + n_episodes))
    sampling = Sampling(max_new_tokens=max_new_tokens, seed=seed)
    times, tokens = _timed_runs(policy, stock_model, task, seeds, sampling, baselines, repeats)
    sides = {side: throughput(seconds, n_episodes, tokens[side]) for side, seconds in times.items()}
    return {
        "task": task,
        "model": str(model_dir),
        "mode": policy.mode,
        "device": str(policy.device),
        "episodes": n_episodes,
        "max_new_tokens": max_new_tokens,
        "repeats": repeats,
        **sides,
        "speedup": {name: sides[name]["seconds"] / sides["engine"]["seconds"] for name in baselines},
        "median_speedup": {
            name: statistics.median(times[name]) / statistics.median(times["engine"]) for name in baselines
        },
    }
