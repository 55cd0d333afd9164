"""Stage 5: every model of a run on the held-out eval prompts, and the results table across runs.

The stages found in the run are evaluated with the same prompts and the same decoding settings
(one seeded sampler per stage, `agentic.policy.Policy`, the sampler PPO rolls out with):
``base`` (the model SFT started from), ``sft`` and, when PPO ran, ``ppo``. Each later stage is
compared with the one before it by the paired win rate (``sft`` vs ``base``, ``ppo`` vs ``sft``).
Rewards come from the run's reward model. Writes ``RUN/eval/{generations.jsonl,results.json,results.md}``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

import agentic.training.corpus.metrics as metrics
from agentic.policy import Policy, Sampling
from agentic.training.corpus.ppo import RewardModelTask
from agentic.training.corpus.reward import RewardScorer, reward_model_of
from agentic.training.corpus.rundir import CorpusRun, read_jsonl, timed, write_jsonl
from agentic.training.rl import sampling_policy


@dataclass(frozen=True)
class EvalSettings:
    max_new_tokens: int = 48
    temperature: float = 0.7
    top_p: float = 0.9
    batch_size: int = 16
    seed: int = 0


def _fit(prompt_ids: list[int], keep: int) -> list[int]:
    """The last ``keep`` prompt tokens: a prompt too long for the context loses its start."""
    return prompt_ids[-keep:] if keep > 0 else []


def generate(policy: Policy, prompts: Sequence[str], settings: EvalSettings) -> list[str]:
    """One sampled completion per prompt, stopped at eos or ``max_new_tokens`` (as PPO samples them: free text, see
    `RewardModelTask`), decoded without special tokens."""
    policy = sampling_policy(policy, RewardModelTask)
    room = (policy.context_length or 2048) - settings.max_new_tokens
    completions: list[str] = []
    for start in range(0, len(prompts), settings.batch_size):
        batch = [_fit(policy.encode(p), room) for p in prompts[start : start + settings.batch_size]]
        sampling = Sampling(settings.temperature, settings.top_p, settings.max_new_tokens, seed=settings.seed + start)
        for generation in policy.generate(batch, sampling):
            ids = [t for t in generation.token_ids if t != policy.eos_id]
            completions.append(policy.tokenizer.decode(ids, skip_special_tokens=True))
    return completions


@torch.inference_mode()
def reference_logprobs(
    policy: Policy, prompts: Sequence[str], references: Sequence[str], batch_size: int = 16
) -> list[list[float]]:
    """log p(token | prompt, earlier reference tokens) for every token of each reference (prompt and reference encoded apart)."""
    context = policy.context_length or 2048
    out: list[list[float]] = []
    for start in range(0, len(prompts), batch_size):
        rows = []
        for prompt, reference in zip(
            prompts[start : start + batch_size], references[start : start + batch_size], strict=True
        ):
            target = policy.encode(reference)[: context - 1]
            rows.append((_fit(policy.encode(prompt), context - len(target)) or [policy.eos_id], target))
        width = max(len(p) + len(t) for p, t in rows)
        ids = torch.full((len(rows), width), policy.pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, (p, t) in enumerate(rows):
            ids[i, : len(p) + len(t)] = torch.tensor(p + t)
            mask[i, : len(p) + len(t)] = 1
        logits = policy.model(input_ids=ids.to(policy.device), attention_mask=mask.to(policy.device)).logits.float()
        logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(2, ids[:, 1:, None].to(policy.device)).squeeze(2).cpu()
        out.extend(logp[i, len(p) - 1 : len(p) + len(t) - 1].tolist() for i, (p, t) in enumerate(rows))
    return out


def stage_models(run_dir: str | Path) -> dict[str, str]:
    """The models a run has, by stage, in pipeline order."""
    run = CorpusRun(run_dir)
    found = {"base": run.read("sft", "config")["base_model"], "sft": str(run.model("sft"))}
    if (run.model("ppo") / "config.json").is_file() or (run.model("ppo") / "adapter_config.json").is_file():
        found["ppo"] = str(run.model("ppo"))
    return found


def evaluate(run_dir: str | Path, settings: EvalSettings = EvalSettings()) -> dict:
    """Generate, score and measure every stage of the run on ``RUN/prepare/eval.jsonl``; write the reports."""
    run = CorpusRun(run_dir)
    examples = read_jsonl(run.examples("eval"))
    prompts, references = [row["prompt"] for row in examples], [row["reference"] for row in examples]
    targets = [reference.strip() for reference in references]
    reward_model = reward_model_of(run_dir)
    scorer = RewardScorer(reward_model, batch_size=settings.batch_size)
    results: dict = {
        "run": run.read("prepare", "config") | {"model": run.read("sft", "config")["model"]},
        "reward_model": reward_model,
    }
    generations, rewards, stages = [], {}, {}
    with timed(results):
        for stage, model in stage_models(run_dir).items():
            policy = Policy.from_pretrained(model)
            completions = generate(policy, prompts, settings)
            rewards[stage] = scorer.score(prompts, completions)
            texts = [c.strip() for c in completions]
            stages[stage] = {
                "checkpoint": model,
                "perplexity": metrics.perplexity(reference_logprobs(policy, prompts, references, settings.batch_size)),
                "reward": metrics.mean_std(rewards[stage]),
                **metrics.rouge(texts, targets),
                "bleu": metrics.bleu(texts, targets),
                "distinct_1": metrics.distinct_n(texts, 1),
                "distinct_2": metrics.distinct_n(texts, 2),
            }
            generations += [
                {"stage": stage, "prompt": p, "reference": r, "completion": c, "reward": w}
                for p, r, c, w in zip(prompts, references, completions, rewards[stage])
            ]
        names = list(stages)
        for earlier, later in zip(names, names[1:]):
            stages[later]["win_rate"] = metrics.paired_win_rate(rewards[later], rewards[earlier]) | {"against": earlier}
        results["stages"] = stages
        results["ppo"] = "ran" if "ppo" in stages else "not run: SFT is the final policy"
    write_jsonl(generations, run.stage("eval") / "generations.jsonl")
    run.write("eval", "config", asdict(settings))
    run.write("eval", "results", results)
    (run.stage("eval") / "results.md").write_text(markdown_table(table_rows([results])))
    return results


def table_rows(results: Sequence[dict]) -> list[dict]:
    """One row per run x stage: the paper's Table II layout (model, corpus, stage, then the metrics)."""
    rows = []
    for result in results:
        corpus = result["run"]["corpus"] + (" (stand-in)" if result["run"].get("standin") else "")
        for stage, m in result["stages"].items():
            rows.append({"model": result["run"]["model"], "corpus": corpus, "stage": stage} | m)
    return rows


def _cell(row: dict, column: str) -> str:
    value = row.get(column)
    if column == "reward":
        return f"{value['mean']:.3f} ± {value['std']:.3f}"
    if column == "win_rate":
        return f"{value['value']:.2f} [{value['low']:.2f}, {value['high']:.2f}] vs {value['against']}" if value else "—"
    if isinstance(value, float):
        return f"{value:.2f}" if column in ("perplexity", "bleu") else f"{value:.3f}"
    return str(value)


COLUMNS = {
    "model": "model",
    "corpus": "corpus",
    "stage": "stage",
    "perplexity": "PPL ↓",
    "reward": "reward (mean ± std)",
    "win_rate": "paired win rate [95%]",
    "rouge1": "ROUGE-1",
    "rouge2": "ROUGE-2",
    "rougeL": "ROUGE-L",
    "bleu": "BLEU",
    "distinct_1": "Distinct-1",
    "distinct_2": "Distinct-2",
}


def markdown_table(rows: Sequence[dict]) -> str:
    lines = ["| " + " | ".join(COLUMNS.values()) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cell(row, column) for column in COLUMNS) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_results_table(root: str | Path) -> list[dict]:
    """Collect every ``*/eval/results.json`` under ``root`` into ``root/results.json`` and ``root/results.md``."""
    root = Path(root)
    results = [json.loads(path.read_text()) for path in sorted(root.rglob("eval/results.json"))]
    rows = table_rows(results)
    (root / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    (root / "results.md").write_text(markdown_table(rows))
    return rows
