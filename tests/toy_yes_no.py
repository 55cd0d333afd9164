"""A toy task with an obvious best action, and a tiny policy warmed up to answer it at random: the PPO and GRPO tests' bench.

`YesOrNo` is one turn: finishing with "yes" scores 1, anything else 0. `warmed_up_policy` builds a
very small GPT-NeoX with a tokenizer learnt from the task's text and teaches it, by a few steps of
supervised learning, to answer ``<finish>yes</finish>``, ``<finish>no</finish>`` or
``<finish>maybe</finish>`` about equally often, so RL starts from a mean reward near 1/3.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import torch
from transformers import GPTNeoXForCausalLM

from agentic import Budget, Score, Task, Turn, finish
from agentic.policy import Policy, encode
from agentic.training.ppo.core import masked_mean, token_logprobs
from agentic.training.tiny_model import tiny_config, train_tokenizer

ANSWERS = ("yes", "no", "maybe")


class YesOrNo(Task):
    name = "YesOrNo"
    description = "answer yes"
    budget = Budget(max_turns=1, max_action_tokens=8)
    held_out = False  # one instance: nothing to hold out

    def sample(self, rng: random.Random) -> dict[str, Any]:
        return {}

    def prompt(self, instance: dict[str, Any]) -> str:
        return "Answer yes, no or maybe.\n"

    def score(self, instance: dict[str, Any], answer: str | None, history: Sequence[Turn]) -> Score:
        yes = answer is not None and answer.strip() == "yes"
        return Score(float(yes), {"yes": float(yes)}, success=yes)

    def oracle(self, instance: dict[str, Any], history: Sequence[Turn]) -> str:
        return finish("yes")


def warmed_up_policy(steps: int = 30, seed: int = 0) -> Policy:
    """A ~50k-parameter GPT-NeoX that answers each of `ANSWERS` with probability about 1/3."""
    prompt = YesOrNo().prompt({})
    tokenizer = train_tokenizer([prompt + finish(answer) for answer in ANSWERS] * 4, vocab_size=300)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GPTNeoXForCausalLM(
            tiny_config(tokenizer, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
        )
    rows = [(encode(tokenizer, prompt), encode(tokenizer, finish(answer))) for answer in ANSWERS]
    width = max(len(p) + len(a) for p, a in rows)
    input_ids = torch.full((len(rows), width), tokenizer.pad_token_id)
    agent_mask = torch.zeros(len(rows), width, dtype=torch.bool)
    for row, (prompt_ids, action_ids) in enumerate(rows):
        input_ids[row, : len(prompt_ids) + len(action_ids)] = torch.tensor(prompt_ids + action_ids)
        agent_mask[row, len(prompt_ids) : len(prompt_ids) + len(action_ids)] = True
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        logprobs, _ = token_logprobs(model(input_ids).logits, input_ids)
        loss = -masked_mean(logprobs, agent_mask)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return Policy(model, tokenizer)
