"""SFT throughput: TRL's `SFTTrainer` (the path `agentic.training.sft` takes) against a bare PyTorch loop; and the
plain trainer against itself with a change to its options (`bench_sft_change`): micro-batches of similar lengths,
or each batch's shared prefix run once.

Both sides start from the same weights (loaded afresh from ``model_dir``), read the same batches
(the trainer's own dataloader over the demonstration dataset, in order, so the labels are -100
off the agent tokens on both sides) and take the same number of AdamW steps with the same
constant learning rate and gradient clipping, in the same process, one after the other. Throughput
counts non-padding tokens. The bare loop has no scheduler, logging, metrics or callbacks: the
difference is what the trainer's machinery costs.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from dataclasses import replace
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed

from agentic.rollout import oracle_trajectories
from agentic.training.demos import demonstrations
from agentic.training.sft import demo_dataset, sft_trainer
from agentic.training.sft_config import DEMO_SEED_START, SFTOptions


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_sft(
    model_dir: str,
    task: str = "Arithmetic",
    *,
    steps: int = 30,
    batch_size: int = 16,
    learning_rate: float = 1e-3,
    seed: int = 0,
) -> dict[str, Any]:
    """Training tokens/s of `SFTTrainer` and of a bare loop on the same model, batches and steps, and their ratio."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    demos = oracle_trajectories(task, range(DEMO_SEED_START, DEMO_SEED_START + steps * batch_size), tokenizer)
    with tempfile.TemporaryDirectory() as scratch:
        options = _bench_options(model_dir, task, scratch, steps, batch_size, learning_rate, seed)
        trainer = _fresh_trainer(options, tokenizer, demos, train_sampling_strategy="sequential")
        device = trainer.args.device
        trl = _measured(*_trainer_run(trainer))

        set_seed(seed)
        bare_model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).to(device).train()
        bare = _measured(*_bare_loop(bare_model, trainer, steps, learning_rate))
    return {
        "task": task,
        "model": str(model_dir),
        "device": str(device),
        "steps": steps,
        "batch_size": batch_size,
        "tokens": trl["tokens"],
        "trl": trl,
        "bare": bare,
        "overhead": trl["seconds"] / bare["seconds"],
    }


def bench_sft_change(
    model_dir: str,
    task: str = "Arithmetic",
    *,
    change: dict[str, Any],
    steps: int = 30,
    batch_size: int = 32,
    sloppy_demos: float = 0.5,
    learning_rate: float = 1e-3,
    seed: int = 0,
) -> dict[str, Any]:
    """Training tokens/s of `SFTTrainer` over one epoch of ``steps * batch_size`` demonstrations (``sloppy_demos`` of
    them giving up at once, as in the demo): plain (one padded batch per step, every row run whole) against the same
    with ``change`` to its `SFTOptions` (``micro_batches=4``: micro-batches of similar lengths; ``share_prefix=True``:
    the batch's shared prefix run once), from the same weights; the ratio of the times and each side's mean loss (equal
    where the change keeps each step the same). Both sides train on every demonstration once: the same tokens."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    seeds = range(DEMO_SEED_START, DEMO_SEED_START + steps * batch_size)
    demos = demonstrations(task, seeds, tokenizer, sloppy_rate=sloppy_demos, seed=seed)
    sides = {}
    for side, changes in (("plain", {}), ("changed", change)):
        with tempfile.TemporaryDirectory() as scratch:
            options = _bench_options(model_dir, task, scratch, steps, batch_size, learning_rate, seed)
            trainer = _fresh_trainer(replace(options, **changes), tokenizer, demos)
            sides[side] = _measured(*_trainer_run(trainer))
    return {
        "task": task,
        "model": str(model_dir),
        "steps": steps,
        "batch_size": batch_size,
        "change": change,
        "sloppy_demos": sloppy_demos,
        **sides,
        "speedup": sides["plain"]["seconds"] / sides["changed"]["seconds"],
    }


def _bench_options(
    model_dir: str, task: str, out_dir: str, steps: int, batch_size: int, learning_rate: float, seed: int
) -> SFTOptions:
    """``steps`` steps of ``batch_size`` at a constant ``learning_rate`` (no warm-up), logging once, no progress bar;
    every row run whole (the trainer as TRL has it, which the bare loop matches)."""
    return SFTOptions(
        model=model_dir,
        task=task,
        out_dir=out_dir,
        max_steps=steps,
        batch_size=batch_size,
        learning_rate=learning_rate,
        warmup_ratio=0.0,
        seed=seed,
        log_every=steps,
        progress=False,
        share_prefix=False,
    )


def _fresh_trainer(options: SFTOptions, tokenizer: Any, demos: list[Any], **config: Any) -> Any:
    """`sft_trainer` on ``demos`` for a fresh copy of ``options.model``'s weights, at a constant learning rate."""
    set_seed(options.seed)
    model = AutoModelForCausalLM.from_pretrained(options.model, dtype=torch.float32)
    return sft_trainer(model, tokenizer, demo_dataset(demos), options, lr_scheduler_type="constant", **config)


def _measured(seconds: float, loss: float, tokens: int) -> dict[str, float]:
    return {"seconds": seconds, "tokens_per_s": tokens / seconds, "mean_loss": loss, "tokens": tokens}


def _trainer_run(trainer: Any) -> tuple[float, float, int]:
    """(seconds, mean loss, non-padding tokens) of the trainer's whole run."""
    _synchronize(trainer.args.device)
    start = time.perf_counter()
    loss = trainer.train().training_loss
    _synchronize(trainer.args.device)
    return time.perf_counter() - start, loss, trainer.state.num_input_tokens_seen


def _bare_loop(model: Any, trainer: Any, steps: int, learning_rate: float) -> tuple[float, float, int]:
    """(seconds, mean loss, non-padding tokens) of ``steps`` plain AdamW steps over the trainer's own batches, with its
    gradient clipping and precision."""
    batches, max_grad_norm, bf16 = trainer.get_train_dataloader(), trainer.args.max_grad_norm, trainer.args.bf16
    device = next(model.parameters()).device
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.0)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    losses, tokens = [], 0
    _synchronize(device)
    start = time.perf_counter()
    for _, batch in zip(range(steps), batches):
        batch = {k: v.to(device) for k, v in batch.items() if k in ("input_ids", "attention_mask", "labels")}
        with autocast:
            loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        tokens += int(batch["attention_mask"].sum())
    _synchronize(device)
    return time.perf_counter() - start, sum(losses) / len(losses), tokens
