"""Turn-level PPO and GRPO for multi-turn agents: the training loop, readable top to bottom (after CleanRL's ``ppo.py``).

`run_rl` sets up (processes, run directory, models, the algorithm of the options: `PPO` for `PPOOptions`, `GRPO` for
`GRPOOptions`), restores the newest checkpoint when resuming, then runs one flat loop. Each update ``i``:

1. rollout: each process samples its share of the update's task instances (`RLOptions.process_seeds`) with
   `agentic.rollout.rollout`, recording the sampling log-probs; the sampling seed is derived from
   (seed, i, process), so the batch is a function of the update number. With ``constrained`` each action is
   drawn from the grammar of the valid actions (`agentic.constraint`) and the batch replays each position's mask
   once (`collate`), so that the loss's log-probs (the ratio), the reference's (the KL) and the entropy are the
   masked, renormalised distribution's, the one sampled from;
2. rewards: the environment's reward of each turn; episodes with a non-finite reward are left out; each episode's
   last reward is normalised and clipped when ``reward_normalization`` / ``reward_clip`` ask for it;
3. advantages: PPO's critic, KL-penalised rewards and GAE over turns, or GRPO's group-normalised returns;
4. loss: ``epochs`` passes over shuffled minibatches (order derived from (seed, i, process)) of the algorithm's
   loss, gradient clipping, an optimizer step; a non-finite loss or gradient rolls the update back
   (`NonFiniteGuard`); then the KL coefficient adapts, in this one place, to the KL of every process's batch;
5. log: episode metrics gathered from every process, the update's diagnostics averaged over processes,
   timings, to metrics.jsonl and TensorBoard; the first ``samples_per_update`` transcripts of the main
   process to ``samples/update-N.jsonl`` (render them with ``agentic show``);
6. evaluate: every ``eval_every`` updates, before the first and after the last, a greedy evaluation on the fixed
   held-out seeds (tool-call accuracy at the oracle's decision points, episode success), ``eval/update-N.json``;
7. checkpoint: every ``checkpoint_every`` updates and at the end (`agentic.training.rl_checkpoint`);
8. stop: after repeated non-finite updates, when a callback asks (`agentic.training.callbacks`: each sees every
   update's metrics and every evaluation), or when ``max_seconds`` have passed.

Objects for names, as TRL's trainers take them: ``run_rl(options, task, model=, tokenizer=, callbacks=)``. ``task`` is
any object satisfying the `Task` contract (registered or not) and replaces ``options.task``; ``model`` a
`PreTrainedModel` or PEFT model, with its ``tokenizer``, replaces ``options.model``. A model object is trained in
place: its own weights (full fine-tuning, against a frozen copy), fresh adapters injected into it (``lora_rank``), or,
for a PEFT model, its adapters (against its base with adapters disabled; ``lora_rank`` must then be 0); the final
policy is saved to ``result.model_dir`` as for a name. config.json records the object's ``name_or_path`` and the
task's name in ``model`` / ``task``, and their classes in ``model_object`` / ``task_object``
(`agentic.training.objects`); resuming such a run needs the same objects again, and is refused without them.

At the end: the final policy in ``out_dir/model`` (a full model, or with LoRA an adapter over the
starting model; `Policy.from_pretrained` and ``agentic eval`` load either), PNG plots, report.json / report.md.

Devices: `accelerate` places everything (CUDA with bf16 autocast over float32 weights where available,
CPU float32 otherwise). Under ``accelerate launch --num_processes N -m agentic.cli ppo ...`` on GPUs, or
``torchrun --standalone --nproc_per_node N -m agentic.cli ppo ...`` on CPUs (gloo), every process
rolls out 1/N of each update's instances and DDP averages the gradients, so an update sees the same
instances as a single-process run; advantages are whitened (PPO) per process, and GRPO groups never
straddle processes. The adaptive KL coefficient moves on the KL averaged over processes.

Resume: ``resume=True`` continues ``out_dir`` from its newest checkpoint (weights, critic, optimizer,
KL coefficient, guard and reward statistics, update counter, RNG states, metrics so far); an ``out_dir`` that
already holds a run is refused without it, so nothing is overwritten by accident. The next batch and minibatch
order follow from the update number, so the resumed run repeats no update and continues exactly.
TensorBoard keeps the events logged after the checkpoint by the interrupted run; metrics.jsonl does not.

Failure: after ``max_failures`` consecutive non-finite updates, or when every update of the run was rolled back,
the run saves a checkpoint of the last good state, writes its report and raises `TrainingDiverged` with the reason.
"""

from __future__ import annotations

import copy
import math
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from statistics import fmean
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from peft import PeftModel, get_peft_model
from torch import Tensor

from agentic.constraint import tools_left_out
from agentic.encoding import episode_mode
from agentic.mixture import TaskMixture, component_tasks, given_by_name, played_task
from agentic.policy import Policy
from agentic.rollout import rollout
from agentic.sampling import Sampling
from agentic.task import INVALID_EVENTS, Task
from agentic.training.action_length import default_action_limit
from agentic.training.callbacks import Callback
from agentic.training.grpo import GRPO
from agentic.training.objects import check_model_object, check_objects_given, model_name, object_config
from agentic.training.options import external_trackers, lora_config
from agentic.training.ppo import PPO, NonFiniteGuard, RewardNormalizer, TurnBatch, collate
from agentic.training.rl_checkpoint import (
    CheckpointError,
    load_trainer_state,
    load_weights,
    non_finite,
    restore_rng_states,
)
from agentic.training.rl_config import GRPOOptions, PPOOptions, RLOptions
from agentic.training.rl_run import RLResult, RLRunDir
from agentic.trajectory import Trajectory

ALGORITHMS = {PPOOptions: PPO, GRPOOptions: GRPO}  # the algorithm each options class trains with


def run_rl(
    options: RLOptions,
    task: Task | TaskMixture | Sequence[str | Task] | None = None,
    *,
    model: Any = None,
    tokenizer: Any = None,
    callbacks: Sequence[Callback] = (),
) -> RLResult:
    """Train with the algorithm of ``options``; the module docstring says what each update does, and takes objects."""
    # setup: processes, the run directory, the models, the algorithm and what adapts during training
    started = time.perf_counter()
    options, task, objects = resolve_inputs(options, task, model, tokenizer)
    accelerator = make_accelerator(options)
    run = RLRunDir(options, accelerator, task, objects, callbacks)
    checkpoint = run.checkpoint_to_resume()
    set_seed(options.seed)
    model, tokenizer, reference = build_policy(options, run.path, accelerator, model, tokenizer)
    action_limit = resolve_action_limit(options, task, tokenizer)
    algorithm = ALGORITHMS[type(options)](options, model, reference, accelerator.prepare_model)
    learning_rate = options.learning_rate or default_learning_rate(model)
    state = TrainingState(model, algorithm, algorithm.optimizer(model, learning_rate), options)

    # restore: everything the newest checkpoint holds, in one step
    start = state.restore(checkpoint) if checkpoint else 0
    run.begin(start, checkpoint, learning_rate, episode_mode(tokenizer), action_limit)  # `Policy` below plays in mode
    trained = accelerator.prepare_model(model).eval()  # what the loss trains (DDP-wrapped under several processes)
    policy = sampling_policy(Policy(accelerator.unwrap_model(trained), tokenizer), task)  # what samples
    stop_reason = run.evaluate_start(policy, started) if checkpoint is None else ""

    done = start
    for iteration in range(start, options.iterations if not stop_reason else start):  # update `iteration` (0-based)
        tick = time.perf_counter()
        trajectories = sample(policy, task, options, iteration, accelerator, action_limit)  # 1. rollout: this share
        rollout_seconds = time.perf_counter() - tick
        # 2. rewards: the environment's; non-finite ones left out, the last normalised and clipped as asked
        eos_ids = policy.stop_rule.stop_ids if task.free_text else None  # free text: a response ends at eos
        trajectories, reward_stats = state.rewards(trajectories, accelerator, eos_ids)
        batch = collate(trajectories, policy.pad_id, tokenizer, options.temperature).to(accelerator.device)
        with accelerator.autocast():
            targets = algorithm.advantages(trained, batch)  # 3. advantages
            # 4. loss: epochs of shuffled minibatches; a non-finite loss or gradient rolls the update back
            order_seed = derived_seed(options.seed, iteration, accelerator.process_index, 1)
            stats = optimize(trained, state, batch, targets, order_seed)
        stats = mean_over_processes(targets.stats | stats, accelerator)
        episodes = episode_stats(trajectories, accelerator)
        if not stats["skipped"] and "kl" in stats:  # the adaptive KL coefficient moves on every process's KL
            algorithm.kl.update(stats["kl"], episodes["episodes"])
        done = iteration + 1
        metrics = stats | episodes | reward_stats | update_timings(tick, rollout_seconds, started, episodes["episodes"])
        run.log_update(done, metrics, trajectories)  # 5. log
        evaluation = run.evaluate(policy, done) if run.evaluation_due(done) else None  # 6. evaluate
        if run.checkpoint_due(done):  # 7. checkpoint
            run.save(done, state, tokenizer)
        # 8. stop: the guard, a callback (`agentic.training.callbacks`), or the time limit
        stop_reason = state.guard.stop_reason or run.stop_reason(started, done, metrics, evaluation)
        if stop_reason:
            break

    failure = state.guard.stop_reason or state.every_update_rolled_back(done)
    return run.finish(done, policy, state, failure, stop_reason or "completed", started)


def resolve_inputs(
    options: RLOptions, task: Task | TaskMixture | Sequence[str | Task] | None, model: Any, tokenizer: Any
) -> tuple[RLOptions, Task | TaskMixture, dict[str, str]]:
    """``options`` naming the objects given in place of names (``model``: the object's ``name_or_path``; ``task``:
    its name, a mixture's names comma-separated), the task to train on (several: a `TaskMixture`, from ``task`` or
    ``options.task``'s comma-separated specs), and what config.json records of the objects
    (`agentic.training.objects.object_config`). Refuses a run without a model, the resume of a run without the objects
    it started from, or a run whose ``max_new_tokens`` the constraint cannot fit."""
    if options.resume:  # before the task is made: a resumed run may name an unregistered task
        check_objects_given(options.out_dir, object_config(model, None if given_by_name(task) else task))
    if model is not None:
        check_model_object(model, tokenizer, options.lora_rank)
        options = replace(options, model=model_name(model))
    elif not options.model and not options.resume:  # resuming: the saved run says what is missing
        raise ValueError("model must be given: a model directory or hub id, or a model object (run_rl(model=...))")
    played = played_task(options.task if task is None else task)
    if task is not None:
        options = replace(options, task=played.name)
    if options.max_new_tokens:
        check_constraint_fits(options, played, options.max_new_tokens)
    return options, played, object_config(model, None if given_by_name(task) else played)


def resolve_action_limit(options: RLOptions, task: Task | TaskMixture, tokenizer: Any) -> int:
    """The longest action sampled: ``options.max_new_tokens`` (checked against the constraint before any work), or
    where 0 the task's longest oracle action plus a quarter, at least 64 tokens, and under the constraint at least
    what its grammar needs to admit the oracle's actions (`default_action_limit`)."""
    if options.max_new_tokens:
        return options.max_new_tokens
    tasks = [each for _, each in component_tasks(task)]  # every task of a mixture
    limit = default_action_limit(tasks, tokenizer, constrained=options.constrained)
    check_constraint_fits(options, task, limit)
    return limit


def check_constraint_fits(options: RLOptions, task: Task | TaskMixture, action_limit: int) -> None:
    """Refuse a constrained run whose actions (at most ``action_limit`` tokens) are too short to call one of the task's
    tools (its grammar would leave the tool out, and the policy could never learn to call it); each task of a
    mixture."""
    for _, each in component_tasks(task) if options.constrained else []:
        limit = min(action_limit, each.budget.max_action_tokens)
        left_out = tools_left_out(each.tools, limit)
        if left_out:
            raise ValueError(
                f"under the constraint an action of {limit} tokens cannot hold a call to {', '.join(left_out)} "
                "(its tags and shortest arguments): raise max_new_tokens"
            )


def make_accelerator(options: RLOptions) -> Accelerator:
    """CUDA with bf16 autocast where available, else the CPU (which lets several processes use gloo), with the
    trackers ``report_to`` names; refuses an update that the processes cannot share evenly."""
    accelerator = Accelerator(
        cpu=not torch.cuda.is_available(),
        mixed_precision="bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no",
        log_with=external_trackers(options.report_to) or None,  # TensorBoard: the run directory writes it
    )
    if options.instances_per_update % accelerator.num_processes:
        raise ValueError(
            f"{options.instances_name} ({options.instances_per_update}) must be a multiple of the number of "
            f"processes ({accelerator.num_processes})"
        )
    return accelerator


def derived_seed(*parts: int) -> int:
    """A seed mixed from ``parts`` by numpy's `SeedSequence`: an independent stream per (seed, update, process, use)."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


def load_start_model(name_or_path: str) -> tuple[Any, Any]:
    """The starting policy in float32 on the CPU, and its tokenizer; a PEFT adapter is merged into its base."""
    policy = Policy.from_pretrained(name_or_path, device="cpu")
    model = policy.model.merge_and_unload() if isinstance(policy.model, PeftModel) else policy.model
    return model, policy.tokenizer


def build_policy(
    options: RLOptions, run_path: Path, accelerator: Accelerator, model: Any = None, tokenizer: Any = None
) -> tuple[Any, Any, Any]:
    """``(model to train, tokenizer, frozen reference or None)`` from the starting model: ``model`` (an object, with
    its ``tokenizer``) or the one ``options.model`` names.

    Full fine-tuning: the reference is a frozen copy of the starting model. LoRA: fresh adapters on the
    starting model, which is then the reference (adapters disabled); adapters are saved pointing at it,
    so a starting model that is itself an adapter is merged and written once to ``out_dir/base-model``. A PEFT model
    object keeps its adapters, which are trained.
    """
    start, tokenizer = (model, tokenizer) if model is not None else load_start_model(options.model)
    bad = non_finite(start.named_parameters())
    if bad:
        raise ValueError(f"model {options.model} has weights that are not finite (NaN or Inf in {bad})")
    if isinstance(start, PeftModel):
        return start, tokenizer, None
    if not options.lora_rank:
        return start, tokenizer, copy.deepcopy(start).requires_grad_(False).eval().to(accelerator.device)
    base = Path(options.model)
    if (base / "adapter_config.json").is_file():
        base = run_path / "base-model"
        if accelerator.is_main_process and not (base / "config.json").is_file():
            start.save_pretrained(base)
            tokenizer.save_pretrained(base)
    model = get_peft_model(start, lora_config(options.lora_rank, options.lora_alpha, options.lora_target_modules))
    model.peft_config["default"].base_model_name_or_path = str(base.resolve()) if base.is_dir() else options.model
    return model, tokenizer, None


def default_learning_rate(model: Any) -> float:
    """The learning rate ``learning_rate`` 0 stands for: 1e-5 for full fine-tuning of a model of 50M parameters or
    more, 5e-5 for a smaller one (such as the embedded tiny model, far from converged); ten times that under LoRA."""
    lora = isinstance(model, PeftModel)
    parameters = sum(p.numel() for p in (model.get_base_model() if lora else model).parameters())
    rate = 1e-5 if parameters >= 50_000_000 else 5e-5
    return 10 * rate if lora else rate


def sampling_policy(policy: Policy, task: Task | TaskMixture) -> Policy:
    """``policy`` as the task's episodes need it: for a free-text task (`Task.free_text`) no token ends an action,
    so sampling stops at eos or the length limit only."""
    if task.free_text:
        policy.stop_rule.may_end = [False] * len(policy.stop_rule.may_end)
    return policy


class TrainingState:
    """What changes during training besides the weights' values, and goes into a checkpoint: the optimizer, the
    algorithm's own state (critic, KL coefficient), the NaN guard's counters and the reward statistics."""

    def __init__(self, model: Any, algorithm: PPO | GRPO, optimizer: torch.optim.Optimizer, options: RLOptions):
        self.model, self.algorithm, self.optimizer, self.options = model, algorithm, optimizer, options
        self.guard = NonFiniteGuard(optimizer, options.max_failures)
        self.normalizer = RewardNormalizer(options.reward_normalization, options.reward_clip)

    def state_dict(self) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer.state_dict(),
            "algorithm": self.algorithm.state_dict(),
            "guard": self.guard.state_dict(),
            "rewards": self.normalizer.state_dict(),
        }

    def restore(self, checkpoint: Path) -> int:
        """Load ``checkpoint``'s weights, training state and RNG states; returns the update to continue after."""
        state = load_trainer_state(checkpoint)
        load_weights(self.model, checkpoint)
        try:
            self.algorithm.load_state_dict(state["algorithm"])
        except ValueError as error:
            raise CheckpointError(
                f"checkpoint {checkpoint} is corrupt (delete it to resume from an earlier one): {error}"
            ) from None
        self.optimizer.load_state_dict(state["optimizer"])
        self.guard.load_state_dict(state["guard"])
        self.normalizer.load_state_dict(state["rewards"])
        restore_rng_states(state["rng"])
        return state["iteration"]

    def rewards(
        self, trajectories: list[Trajectory], accelerator: Accelerator, eos_ids: set[int] | None = None
    ) -> tuple[list[Trajectory], dict[str, float]]:
        """The episodes whose rewards are all finite, each one's last reward normalised and clipped by the options;
        with ``eos_ids`` (a free-text task's end tokens), then less ``missing_eos_penalty`` for a response that ends
        otherwise (`penalize_missing_eos`), the share of those logged as ``missing_eos``."""
        kept = [t for t in trajectories if all(math.isfinite(r) for r in t.rewards)]
        dropped = len(trajectories) - len(kept)
        if accelerator.num_processes > 1:  # every process must keep the same number of episodes, or DDP would hang
            dropped = int(accelerator.reduce(torch.tensor(dropped, device=accelerator.device), "sum"))
            if dropped:
                raise ValueError(f"{dropped} episodes have a non-finite reward: several processes need finite rewards")
        if not kept:
            raise ValueError("every episode of the update has a non-finite reward: check the task's scores")
        if self.normalizer.changes_rewards:
            scored = [t for t in kept if t.turns]
            normalised = iter(self.normalizer([t.rewards[-1] for t in scored]))
            kept = [with_last_reward(t, next(normalised)) if t.turns else t for t in kept]
        if eos_ids is None:
            return kept, {"nonfinite_rewards": dropped}
        kept, missing = penalize_missing_eos(kept, eos_ids, self.options)
        return kept, {"nonfinite_rewards": dropped} | mean_over_processes({"missing_eos": missing}, accelerator)

    def every_update_rolled_back(self, iteration: int) -> str:
        """Why the run failed when no update of it went through ("" when one did)."""
        if not iteration or self.guard.total_failures < iteration:
            return ""
        return (
            f"every update ({iteration}) was rolled back as non-finite (last: {self.guard.last_reason}); "
            "the model is the starting one. Lower the learning rate, or check the options and rewards for NaN/Inf."
        )


def with_last_reward(trajectory: Trajectory, reward: float) -> Trajectory:
    """``trajectory`` with its last turn's reward replaced."""
    return replace(trajectory, turns=[*trajectory.turns[:-1], replace(trajectory.turns[-1], reward=reward)])


def ends_without_eos(trajectory: Trajectory, stop_ids: set[int]) -> bool:
    """Whether the episode's last response stopped on something other than an end-of-sequence (or end-of-turn)
    token: the length limit, or a full context."""
    last = trajectory.turns[-1]
    return last.end == last.start or trajectory.token_ids[last.end - 1] not in stop_ids


def penalize_missing_eos(
    trajectories: list[Trajectory], stop_ids: set[int], options: RLOptions
) -> tuple[list[Trajectory], float]:
    """The episodes with ``missing_eos_penalty`` taken off the last reward of each whose response ends without
    eos (as TRL's ``missing_eos_penalty``), and the share of such episodes."""
    missing = [bool(t.turns) and ends_without_eos(t, stop_ids) for t in trajectories]
    if options.missing_eos_penalty:
        penalty = options.missing_eos_penalty
        trajectories = [
            with_last_reward(t, t.turns[-1].reward - penalty) if m else t for t, m in zip(trajectories, missing)
        ]
    return trajectories, sum(missing) / max(len(missing), 1)


def sample(
    policy: Policy,
    task: Task | TaskMixture,
    options: RLOptions,
    iteration: int,
    accelerator: Accelerator,
    action_limit: int,
) -> list[Trajectory]:
    """This process's episodes of update ``iteration`` (0-based), sampled with a seed of (seed, update, process),
    their actions at most ``action_limit`` tokens."""
    seeds = options.process_seeds(iteration, accelerator.process_index, accelerator.num_processes)
    seed = derived_seed(options.seed, iteration, accelerator.process_index)
    sampling = Sampling(
        temperature=options.temperature,
        max_new_tokens=action_limit,
        seed=seed,
        constrained=options.constrained,
    )
    with accelerator.autocast():
        return rollout(policy, task, seeds, sampling)


def optimize(policy: Any, state: TrainingState, batch: TurnBatch, targets: Any, seed: int) -> dict[str, float]:
    """``epochs`` passes over the batch in minibatches shuffled with ``seed``: the algorithm's loss, backward (micro-batch
    by micro-batch, `accumulate_gradients`), gradient clipping, an optimizer step. A non-finite loss or gradient norm
    rolls the whole update back (`NonFiniteGuard`) and ends it: ``{"skipped": 1.0}``. Otherwise each diagnostic
    averaged over the minibatch steps, ``skipped`` 0."""
    options, optimizer, guard = state.options, state.optimizer, state.guard
    parameters = [p for group in optimizer.param_groups for p in group["params"]]
    generator = torch.Generator().manual_seed(seed)
    guard.snapshot()
    history: dict[str, list[float]] = defaultdict(list)
    for _ in range(options.epochs):
        for rows in torch.randperm(len(batch), generator=generator).split(options.minibatch_size):
            optimizer.zero_grad(set_to_none=True)
            loss, stats = accumulate_gradients(state, policy, batch.rows(rows), targets.rows(rows))
            grad_norm = torch.nn.utils.clip_grad_norm_(parameters, options.max_grad_norm)
            if not (torch.isfinite(loss) and torch.isfinite(grad_norm)):
                guard.rollback(f"loss {loss.item()}, gradient norm {grad_norm.item()}")
                return {"skipped": 1.0}
            optimizer.step()
            for name, value in (stats | {"loss": loss.item(), "grad_norm": grad_norm.item()}).items():
                history[name].append(value)
    guard.passed()
    return {name: fmean(values) for name, values in history.items()} | {"skipped": 0.0}


def accumulate_gradients(
    state: TrainingState, policy: Any, minibatch: TurnBatch, targets: Any
) -> tuple[Tensor, dict[str, float]]:
    """The minibatch's loss and diagnostics, its gradient accumulated by backward passes over micro-batches of
    ``micro_batch_size`` episodes: each micro-batch's loss is taken over the minibatch's counts (`LossCounts`), so the
    losses, diagnostics and gradients sum to those of one pass over the whole minibatch. The micro-batches are cut
    from the minibatch in order of length (`TurnBatch.chunks`), each to its longest episode (`TurnBatch.longest`):
    padding would cost forward and backward time, not loss."""
    counts, loss, stats = minibatch.loss_counts(), torch.zeros(()), defaultdict(float)
    for rows in minibatch.chunks(state.options.forward_batch_size):
        n_tokens = minibatch.longest(rows)
        part, part_stats = state.algorithm.loss(
            policy, minibatch.rows(rows, n_tokens), targets.rows(rows, n_tokens), counts
        )
        part.backward()
        loss = loss + part.detach().cpu()
        for name, value in part_stats.items():
            stats[name] += value
    return loss, dict(stats)


def episode_stats(trajectories: list[Trajectory], accelerator: Accelerator) -> dict[str, float]:
    """Rollout metrics over every process's episodes: reward, score, success, turns, invalid-action rate, tokens."""
    rows = torch.tensor(
        [
            [
                sum(t.rewards),
                t.score,
                t.success,
                len(t.turns),
                sum(turn.event in INVALID_EVENTS for turn in t.turns),
                sum(t.loss_mask),
                len(t.token_ids),
                t.truncated,
            ]
            for t in trajectories
        ],
        dtype=torch.float64,
        device=accelerator.device,
    )
    returns, scores, success, turns, invalid, agent_tokens, tokens, truncated = accelerator.gather(rows).T.tolist()
    n = len(returns)
    return {
        "episodes": n,
        "reward": sum(returns) / n,
        "score": sum(scores) / n,
        "success": sum(success) / n,
        "mean_turns": sum(turns) / n,
        "invalid_action_rate": sum(invalid) / max(sum(turns), 1),
        "truncated": sum(truncated) / n,
        "agent_tokens": sum(agent_tokens),
        "tokens": sum(tokens),
    }


def mean_over_processes(stats: dict[str, float], accelerator: Accelerator) -> dict[str, float]:
    if accelerator.num_processes == 1:
        return stats
    names = sorted(stats)
    values = accelerator.reduce(
        torch.tensor([stats[n] for n in names], dtype=torch.float64, device=accelerator.device), "mean"
    )
    return dict(zip(names, values.tolist()))


def update_timings(tick: float, rollout_seconds: float, started: float, episodes: int) -> dict[str, float]:
    seconds = time.perf_counter() - tick
    return {
        "rollout_seconds": rollout_seconds,
        "update_seconds": seconds - rollout_seconds,
        "seconds": seconds,
        "episodes_per_second": episodes / rollout_seconds,
        "elapsed_seconds": time.perf_counter() - started,
    }
