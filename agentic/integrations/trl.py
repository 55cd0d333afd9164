"""TRL's `GRPOTrainer` over any registered task, on this project's batched token-in/token-out engine.

TRL 1.16 lets the trainer take its completions from ``rollout_func(prompts, trainer)``, which returns
``prompt_ids``, ``completion_ids`` and ``logprobs`` for each prompt and may add fields of its own: TRL hands them
to the reward functions, except ``env_mask`` (1 on tokens the model wrote, 0 elsewhere), which it multiplies into
the loss mask. `TaskRollout` is such a function: it plays one episode per prompt with `agentic.rollout.rollout`
and gives TRL each trajectory split at its first agent token. `environment_reward` is the reward function to
pair it with::

    rollout = TaskRollout("Arithmetic")
    trainer = GRPOTrainer(model=model, processing_class=tokenizer, reward_funcs=environment_reward,
                          train_dataset=rollout.dataset(range(1_000_000, 1_000_256)), rollout_func=rollout,
                          args=GRPOConfig(output_dir="runs/trl", mask_truncated_completions=True))

Why each piece is there:

- **Prompts are episode keys** (``"Arithmetic:1000000"``), not prompt text. TRL 1.16 passes ``rollout_func`` the
  dataset's ``prompt`` column and nothing else, so the prompt must name the instance itself; prompt text would
  not, since two seeds may share a prompt and differ in what it hides (`MissingQuantity`'s missing number). The
  rollout returns the real prompt's token ids, so TRL never tokenizes a key; its logs show keys as prompts.
- **The completion is the rest of the episode**: the agent's actions and the environment's replies in the order
  the model saw them, ``env_mask`` the trajectory's loss mask over them (1 on agent tokens only), ``logprobs`` the
  engine's sampling log-probs, NaN on environment tokens (TRL 1.16 treats NaN as "not sampled" and leaves such
  tokens out of its importance-sampling and off-policy corrections).
- **Episodes end with eos.** TRL counts a completion whose last token is neither eos nor pad as cut off at its
  length limit, and ``mask_truncated_completions=True`` then drops it from the loss. Episodes end at
  ``<finish>`` or at a budget, never on eos, so without a marker every episode would be dropped and the run
  would silently train nothing. Every episode the environment ended therefore gets the tokenizer's eos appended
  as an environment token (mask 0, log-prob NaN): its reward is final. An episode that filled the model's
  context was cut off, which is what TRL's flag is for, and gets no marker.
- **Sampling follows the trainer**: ``temperature`` and ``top_p`` come from ``trainer.args``, since TRL recomputes
  log-probs at its own temperature; ``top_k``, ``min_p`` and ``repetition_penalty``, which the engine does not
  implement, are refused rather than ignored. Each call samples from a fresh reproducible seed (run seed, step,
  process, call), so processes and updates do not replay the same random numbers.
- **Train mode is restored**: `agentic.policy.Policy` puts the model in eval mode to sample; the rollout leaves
  it in the mode it found.
- **Rewards come from the environment**: the trajectories reach the reward functions as the extra field
  ``trajectory``, and `environment_reward` returns each episode's return (every turn's reward, shaping plus the
  terminal score), as the project's own GRPO does.

`TaskRollout` does not use TRL's ``environment_factory``: that route generates with TRL's own loop, so the model
would act through its chat template's tool calls instead of this grammar (``<ask>`` and ``<finish>`` would have to
become tools, and task prompts describe the grammar), on TRL's engine instead of this one. It also needs a chat
template that renders a whole tool-calling exchange and whose replies TRL can parse (TRL 1.16 parses the Qwen 2.5
and 3, Llama 3.1 and 3.2 families and a few others); GRPOTrainer refuses the tiny model's tokenizer, which has no
chat template.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import datasets
import numpy as np

from agentic.policy import Policy
from agentic.registry import make_task
from agentic.rollout import rollout
from agentic.sampling import Sampling
from agentic.task import Task
from agentic.trajectory import Trajectory

UNSUPPORTED_SAMPLING = {"top_k": (0, None), "min_p": (0.0, None), "repetition_penalty": (1.0, None)}
"""GRPOConfig's sampling settings the engine does not implement, with the values that switch each off."""


class TaskRollout:
    """A ``rollout_func`` for `trl.GRPOTrainer` that plays episodes of ``task`` (a name, with ``task_kwargs``
    for its constructor, or a `Task`); the dataset's prompts are episode keys made by `dataset`."""

    def __init__(self, task: str | Task, **task_kwargs: Any):
        self.task = make_task(task, **task_kwargs) if isinstance(task, str) else task
        self.calls = 0

    def key(self, seed: int) -> str:
        """The prompt that stands for the episode of ``seed``."""
        return f"{self.task.name}:{seed}"

    def seed(self, key: str) -> int:
        """The seed a prompt made by `key` stands for."""
        name, _, seed = key.rpartition(":")
        if name == self.task.name and seed.lstrip("-").isdigit():
            return int(seed)
        raise ValueError(
            f"prompt {key[:80]!r} is not an episode key of task {self.task.name}; "
            "build the dataset with TaskRollout.dataset(seeds)"
        )

    def dataset(self, seeds: Iterable[int]) -> datasets.Dataset:
        """A prompt-only dataset for GRPOTrainer: one episode key per seed."""
        return datasets.Dataset.from_dict({"prompt": [self.key(seed) for seed in seeds]})

    def __call__(self, prompts: Sequence[str], trainer: Any) -> dict[str, list]:
        """One episode per prompt, sampled together; TRL's ``rollout_func`` contract (see the module docstring)."""
        seeds = [self.seed(prompt) for prompt in prompts]
        model = trainer.accelerator.unwrap_model(trainer.model)
        tokenizer = getattr(trainer.processing_class, "tokenizer", trainer.processing_class)
        end = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.pad_token_id
        if end is None:
            raise ValueError("the tokenizer has neither an eos nor a pad token to end episodes with")
        training = model.training
        try:
            policy = Policy(model, tokenizer)
            trajectories = rollout(policy, self.task, seeds, self.sampling(trainer))
        finally:
            model.train(training)
        parts = [completion(t, end, policy.context_length or math.inf) for t in trajectories]
        fields = ("prompt_ids", "completion_ids", "env_mask", "logprobs")
        return {name: [part[i] for part in parts] for i, name in enumerate(fields)} | {"trajectory": trajectories}

    def sampling(self, trainer: Any) -> Sampling:
        """The trainer's temperature and top_p, a fresh seed for this call, actions as long as the task allows."""
        args = trainer.args
        refused = [
            f"{name}={getattr(args, name)!r}"
            for name, off in UNSUPPORTED_SAMPLING.items()
            if getattr(args, name) not in off
        ]
        if refused:
            raise ValueError(f"the agentic engine samples with temperature and top_p only; unset {', '.join(refused)}")
        entropy = [args.seed, trainer.state.global_step, trainer.accelerator.process_index, self.calls]
        self.calls += 1
        return Sampling(
            temperature=args.temperature,
            top_p=args.top_p,
            max_new_tokens=self.task.budget.max_action_tokens,
            seed=int(np.random.SeedSequence(entropy).generate_state(1)[0]),
        )


def completion(
    trajectory: Trajectory, end: int, context_length: float
) -> tuple[list[int], list[int], list[int], list[float]]:
    """``(prompt_ids, completion_ids, env_mask, logprobs)`` of one episode for TRL, split at its first agent token.

    ``end`` (eos) is appended as an environment token unless the episode filled the context (it was cut off);
    a completion is never empty, as TRL reads its last token.
    """
    start = trajectory.turns[0].start if trajectory.turns else len(trajectory.token_ids)
    ids, mask, logprobs = trajectory.token_ids[start:], trajectory.loss_mask[start:], trajectory.logprobs[start:]
    if len(trajectory.token_ids) < context_length or not ids:
        ids, mask, logprobs = [*ids, end], [*mask, 0], [*logprobs, math.nan]
    return trajectory.token_ids[:start], ids, mask, logprobs


def environment_reward(
    trajectory: Sequence[Trajectory], log_metric: Callable[[str, float], None] | None = None, **_: Any
) -> list[float]:
    """GRPOTrainer reward function: each episode's return (the sum of its turns' rewards) from the environment.

    Also logs the share of successful episodes as the metric ``success``.
    """
    if log_metric is not None:
        log_metric("success", sum(t.success for t in trajectory) / len(trajectory))
    return [sum(t.rewards) for t in trajectory]
