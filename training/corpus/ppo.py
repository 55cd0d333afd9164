"""Stage 4: PPO on one-turn episodes scored by the reward model, through the shared turn-level core.

An episode is a train prompt's tokens, then one completion sampled by `agentic.policy.Policy`
(at temperature 1 and top-p 1, so the recorded log-probs are the policy's own, as the PPO ratio
and the KL need; stopped at eos or ``max_new_tokens``), then a terminal reward: the reward model's
score of (prompt, completion), normalised and clipped (`RewardNormalizer`). Episodes become `Trajectory` objects with one
`TurnRecord`, so `agentic.training.ppo.collate` and `agentic.training.ppo.ppo_update` do the update exactly as
for the agentic trainer: KL to the frozen SFT model (or, with ``lora_rank``, the base model under
disabled adapters), a value head on the policy's trunk, the NaN/Inf guard.

Writes to the stage directory (``RUN/ppo``): ``metrics.jsonl`` and ``tensorboard/`` (one record per
update), ``plots/training.png``, and the trained policy with its tokenizer in ``model/``.
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from statistics import fmean

import torch
from tqdm.auto import tqdm
from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed

from agentic.policy import Policy
from agentic.run_dir import RunDir
from agentic.sampling import Sampling
from agentic.training.corpus.hardware import on_cuda
from agentic.training.corpus.metrics import mean_std
from agentic.training.corpus.reward import RewardScorer
from agentic.training.ppo import (
    KLController,
    NonFiniteGuard,
    PPOConfig,
    TrainingDiverged,
    collate,
    make_optimizer,
    ppo_update,
    shared_value_head,
)
from agentic.trajectory import Trajectory, TurnRecord

NORMALIZATIONS = ("running", "batch", "none")
PLOTTED = ("reward_raw_mean", "reward_mean", "kl", "entropy", "clip_fraction", "value_loss")


@dataclass(frozen=True)
class PpoSettings:
    """The PPO stage. ``learning_rate`` None picks `ppo_learning_rate`; ``kl_target`` None keeps ``kl_coef`` fixed;
    ``lora_rank`` 0 trains every weight against a frozen copy of the SFT model, > 0 trains LoRA adapters against
    the model under them; ``reward_normalization`` is ``running`` (mean and std over every reward so far),
    ``batch`` (this update's rewards) or ``none``, and the normalised reward is clipped to ``+-reward_clip``."""

    iterations: int = 40
    prompts_per_update: int = 64
    max_new_tokens: int = 32
    learning_rate: float | None = None
    value_learning_rate: float = 1e-3
    kl_coef: float = 0.05
    kl_target: float | None = 6.0
    reward_normalization: str = "running"
    reward_clip: float = 5.0
    lora_rank: int = 0
    max_failures: int = 3
    update: PPOConfig = field(default_factory=lambda: PPOConfig(epochs=2, minibatch_size=8))

    def __post_init__(self) -> None:
        problems = [
            f"{name} must be at least 1"
            for name in ("iterations", "prompts_per_update", "max_new_tokens")
            if getattr(self, name) < 1
        ]
        if self.reward_normalization not in NORMALIZATIONS:
            problems.append(
                f"reward_normalization must be one of {', '.join(NORMALIZATIONS)}, got {self.reward_normalization!r}"
            )
        if not self.reward_clip > 0 or self.kl_coef < 0 or self.lora_rank < 0:
            problems.append("reward_clip must be positive, kl_coef and lora_rank at least 0")
        if problems:
            raise ValueError("bad PPO settings: " + "; ".join(problems))


@dataclass(frozen=True)
class PPOJob:
    """What the PPO stage works from. Score a completion with ``RewardScorer(reward_model).score(prompts, completions)``."""

    policy: Path
    reward_model: str
    prompts: list[str]
    out_dir: Path
    seed: int


PPOHook = Callable[[PPOJob], dict]


class RewardNormalizer:
    """Rewards shifted and scaled to mean 0 and std 1, then clipped to ``+-clip`` (statistics of the raw rewards).

    ``running`` pools every batch seen so far, this one included (Chan et al.'s parallel mean and variance,
    as TRL's running moments); ``batch`` whitens each batch alone; ``none`` only clips.
    """

    def __init__(self, mode: str = "running", clip: float = 5.0, eps: float = 1e-8):
        if mode not in NORMALIZATIONS:
            raise ValueError(f"reward normalisation must be one of {', '.join(NORMALIZATIONS)}, got {mode!r}")
        self.mode, self.clip, self.eps = mode, clip, eps
        self.count, self.mean, self.variance = 0, 0.0, 0.0

    def __call__(self, rewards: Sequence[float]) -> list[float]:
        values = torch.tensor(rewards, dtype=torch.float64)
        if not torch.isfinite(values).all():
            raise ValueError("rewards to normalise must be finite")
        if self.mode == "running":
            self._pool(values)
            values = (values - self.mean) / math.sqrt(self.variance + self.eps)
        elif self.mode == "batch":
            values = (values - values.mean()) / math.sqrt(values.var(unbiased=False).item() + self.eps)
        return values.clamp(-self.clip, self.clip).tolist()

    def _pool(self, values: torch.Tensor) -> None:
        n, mean, variance = len(values), values.mean().item(), values.var(unbiased=False).item()
        total = self.count + n
        delta = mean - self.mean
        self.variance = (self.count * self.variance + n * variance + delta**2 * self.count * n / total) / total
        self.mean += delta * n / total
        self.count = total


def ppo_learning_rate(parameters: int, lora: bool) -> float:
    """1e-5 for full fine-tuning of a hub model (70M parameters and up), 1e-4 under LoRA; 5e-5 and 5e-4 for a
    smaller model (the embedded tiny one, which starts far from converged)."""
    rate = 1e-5 if parameters >= 50_000_000 else 5e-5
    return 10 * rate if lora else rate


def load_policy(path: str, lora_rank: int) -> Policy:
    """The SFT model in float32 (AdamW steps vanish in bf16 weights) on CUDA when available, LoRA-wrapped when asked."""
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).to("cuda" if on_cuda() else "cpu")
    if lora_rank:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(
            model, LoraConfig(r=lora_rank, lora_alpha=2 * lora_rank, target_modules="all-linear", task_type="CAUSAL_LM")
        )
    return Policy(model, AutoTokenizer.from_pretrained(path))


def sample_episodes(policy: Policy, prompts: Sequence[str], sampling: Sampling) -> list[Trajectory]:
    """One completion per prompt as a one-turn `Trajectory` (reward still 0): prompt tokens, then the sampled
    tokens with their log-probs. A prompt too long for the context keeps its last tokens; an empty one is eos."""
    room = (policy.context_length or 2048) - sampling.max_new_tokens
    contexts = [policy.encode(prompt)[-room:] or [policy.eos_id] for prompt in prompts]
    episodes = []
    for index, (prompt, context, generation) in enumerate(zip(prompts, contexts, policy.generate(contexts, sampling))):
        completion = policy.tokenizer.decode(
            [t for t in generation.token_ids if t != policy.eos_id], skip_special_tokens=True
        )
        n, m = len(context), len(generation.token_ids)
        turn = TurnRecord(
            start=n, end=n + m, action=completion, kind="text", event=generation.stop, reward=0.0, reply=""
        )
        episodes.append(
            Trajectory(
                task="corpus",
                seed=index,
                instance={},
                prompt=prompt,
                token_ids=context + generation.token_ids,
                loss_mask=[0] * n + [1] * m,
                logprobs=[math.nan] * n + generation.logprobs,
                turns=[turn],
                terminated=True,
            )
        )
    return episodes


def with_rewards(episodes: Sequence[Trajectory], raw: Sequence[float], normalised: Sequence[float]) -> list[Trajectory]:
    """The episodes with their terminal reward: ``normalised`` trains, ``raw`` (the reward model's score) is kept as ``score``."""
    return [
        replace(episode, turns=[replace(episode.turns[0], reward=reward)], score=score)
        for episode, score, reward in zip(episodes, raw, normalised, strict=True)
    ]


def prompt_stream(prompts: Sequence[str], per_update: int, seed: int):
    """Batches of ``per_update`` prompts, passing over all prompts in a new seeded order each epoch."""
    rng, queue = random.Random(seed), []
    while True:
        while len(queue) < per_update:
            order = list(prompts)
            rng.shuffle(order)
            queue += order
        yield queue[:per_update]
        queue = queue[per_update:]


def train_ppo(job: PPOJob, settings: PpoSettings = PpoSettings()) -> dict:
    """Run PPO from ``job.policy`` against ``job.reward_model`` on ``job.prompts``; save the policy to ``job.out_dir / "model"``.

    Completions whose reward is NaN or Inf are left out of their update (and counted); an update with none
    left raises `ValueError`. Repeated non-finite updates stop training with `TrainingDiverged`.
    """
    if not job.prompts:
        raise ValueError("PPO needs at least one train prompt")
    set_seed(job.seed)
    policy = load_policy(str(job.policy), settings.lora_rank)
    model = policy.model
    reference = None if settings.lora_rank else copy.deepcopy(model).requires_grad_(False)
    value_head = shared_value_head(model)
    parameters = sum(p.numel() for p in (model.get_base_model() if settings.lora_rank else model).parameters())
    learning_rate = settings.learning_rate or ppo_learning_rate(parameters, bool(settings.lora_rank))
    optimizer = make_optimizer(model, value_head, lr=learning_rate, value_lr=settings.value_learning_rate)
    guard = NonFiniteGuard(optimizer, settings.max_failures)
    kl = KLController(settings.kl_coef, settings.kl_target)
    normalizer = RewardNormalizer(settings.reward_normalization, settings.reward_clip)
    scorer = RewardScorer(job.reward_model)
    generator = torch.Generator().manual_seed(job.seed)
    log = RunDir(job.out_dir)
    batches = prompt_stream(job.prompts, settings.prompts_per_update, job.seed)
    history = []
    try:
        for iteration in (progress := tqdm(range(settings.iterations), desc="PPO", unit="update")):
            start = time.perf_counter()
            sampling = Sampling(max_new_tokens=settings.max_new_tokens, seed=job.seed * 1_000_003 + iteration)
            episodes = sample_episodes(policy, next(batches), sampling)
            scores = scorer.score([e.prompt for e in episodes], [e.turns[0].action for e in episodes])
            finite = [i for i, score in enumerate(scores) if math.isfinite(score)]
            if not finite:
                raise ValueError(
                    f"the reward model {job.reward_model} scored every completion of update {iteration} as NaN or Inf"
                )
            raw = [scores[i] for i in finite]
            rewards = normalizer(raw)
            episodes = with_rewards([episodes[i] for i in finite], raw, rewards)
            stats = ppo_update(
                model,
                value_head,
                optimizer,
                collate(episodes, policy.pad_id),
                settings.update,
                guard,
                kl=kl,
                reference=reference,
                generator=generator,
            )
            record = {
                **{f"reward_raw_{name}": value for name, value in mean_std(raw).items()},
                **{f"reward_{name}": value for name, value in mean_std(rewards).items()},
                "nonfinite_rewards": len(scores) - len(finite),
                "completion_tokens": fmean(e.turns[0].end - e.turns[0].start for e in episodes),
                **stats,
                "seconds": round(time.perf_counter() - start, 2),
            }
            log.log(iteration, record)
            history.append(record)
            progress.set_postfix(reward=f"{record['reward_raw_mean']:.3f}", kl=f"{stats.get('kl', 0.0):.2f}")
    except TrainingDiverged as err:
        log.log(len(history), {"stopped": str(err)})
        raise
    finally:
        log.plot(PLOTTED)
        log.close()
    (model.merge_and_unload() if settings.lora_rank else model).save_pretrained(job.out_dir / "model")
    policy.tokenizer.save_pretrained(job.out_dir / "model")
    return {
        "iterations": len(history),
        "episodes": settings.prompts_per_update * len(history),
        "learning_rate": learning_rate,
        "reward_raw_first": history[0]["reward_raw_mean"],
        "reward_raw_last": history[-1]["reward_raw_mean"],
        "kl_last": history[-1].get("kl"),
        "skipped_updates": guard.total_failures,
        "nonfinite_rewards": sum(r["nonfinite_rewards"] for r in history),
        "metrics": str(job.out_dir / "metrics.jsonl"),
    }


def corpus_ppo(settings: PpoSettings = PpoSettings()) -> PPOHook:
    """The pipeline's PPO hook (`agentic.training.corpus.pipeline.PPOHook`) with these settings."""

    def hook(job: PPOJob) -> dict:
        return train_ppo(job, settings)

    return hook
