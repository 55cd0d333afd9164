"""Stage 5: every model of a run on the held-out eval prompts, and the results table across runs.

The stages found in the run are evaluated with the same prompts and the same decoding settings
(one seeded sampler per stage, `agentic.policy.Policy`, the sampler PPO rolls out with):
``base`` (the model SFT started from), ``sft`` (unless SFT kept the model as it was) and, when PPO ran, ``ppo``.
Each later stage is compared with the one before it by the paired win rate (``sft`` vs ``base``, ``ppo`` vs its
starting model). Rewards come from the run's reward model. A prompt-only corpus (chat prompts) has no references:
perplexity, ROUGE and BLEU are then left out. Writes ``RUN/eval/{generations.jsonl,results.json,results.md}`` and,
when PPO ran, ``before_after.md``: the first ``table_prompts`` prompts' completions before PPO and after it, side by
side with their rewards.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

import agentic.training.corpus.metrics as metrics
from agentic.policy import Policy
from agentic.rollout import rollout
from agentic.run_dir import RunDir, read_jsonl, timed, write_jsonl
from agentic.sampling import Sampling
from agentic.training.corpus.options import CorpusEvalOptions
from agentic.training.corpus.ppo import RewardModelTask
from agentic.training.corpus.prepare import examples_file
from agentic.training.corpus.reward import RewardScorer, reward_model_of, reward_scorer
from agentic.training.rl import sampling_policy


def _fit(prompt_ids: list[int], keep: int) -> list[int]:
    """The last ``keep`` prompt tokens: a prompt too long for the context loses its start."""
    return prompt_ids[-keep:] if keep > 0 else []


def generate(
    policy: Policy, prompts: Sequence[str], scorer: RewardScorer, settings: CorpusEvalOptions
) -> tuple[list[str], list[float]]:
    """One sampled completion per prompt and its reward, as PPO samples and scores them: a one-turn free-text episode
    (`RewardModelTask`; a chat model's prompt is its template's user message), stopped at eos or ``max_new_tokens``.
    Completions are decoded without special tokens."""
    task = RewardModelTask(prompts, scorer, ordered=True)
    policy = sampling_policy(policy, task)
    completions, rewards = [], []
    for start in range(0, len(prompts), settings.batch_size):
        seeds = range(start, min(start + settings.batch_size, len(prompts)))
        sampling = Sampling(settings.temperature, settings.top_p, settings.max_new_tokens, seed=settings.seed + start)
        for episode in rollout(policy, task, seeds, sampling):
            ids = [t for turn in episode.turns for t in episode.token_ids[turn.start : turn.end]]
            completions.append(policy.tokenizer.decode(ids, skip_special_tokens=True))
            rewards.append(episode.score)
    return completions, rewards


@torch.inference_mode()
def continuation_logprobs(
    policy: Policy, prompts: Sequence[str], references: Sequence[str], batch_size: int = 16
) -> list[list[float]]:
    """log p(token | prompt, earlier reference tokens) for every token of each reference continuation (prompt and
    reference encoded apart): what perplexity is measured on."""
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
    """The models a run has, by stage, in pipeline order (PPO's with LoRA: an adapter over the SFT model); ``sft``
    only when SFT trained."""
    run = RunDir(run_dir)
    found = {"base": run.stage("sft").read_json("config.json")["base_model"]}
    if run.stage("sft").read_json("summary.json").get("trained", True):
        found["sft"] = str(run.stage("sft").model_dir)
    ppo = run.stage("ppo").model_dir
    if (ppo / "config.json").is_file() or (ppo / "adapter_config.json").is_file():
        found["ppo"] = str(ppo)
    return found


def evaluate_run(run_dir: str | Path, settings: CorpusEvalOptions) -> dict:
    """Generate, score and measure every stage of the run on ``RUN/prepare/eval.jsonl``; write the reports."""
    run = RunDir(run_dir)
    examples = read_jsonl(examples_file(run_dir, "eval"))
    prompts, references = [row["prompt"] for row in examples], [row["reference"] for row in examples]
    targets = [reference.strip() for reference in references]
    reward_model = reward_model_of(run_dir)
    scorer = reward_scorer(run_dir, batch_size=settings.batch_size)
    results: dict = {
        "run": run.stage("prepare").read_json("config.json")
        | {"model": run.stage("sft").read_json("config.json")["model"]},
        "reward_model": reward_model,
    }
    generations, rewards, stages = [], {}, {}
    with timed(results):
        for stage, model in stage_models(run_dir).items():
            policy = Policy.from_pretrained(model)
            completions, rewards[stage] = generate(policy, prompts, scorer, settings)
            texts = [c.strip() for c in completions]
            stages[stage] = {"checkpoint": model, "reward": metrics.mean_std(rewards[stage])}
            if all(targets):
                logprobs = continuation_logprobs(policy, prompts, references, settings.batch_size)
                stages[stage] |= {"perplexity": metrics.perplexity(logprobs), **metrics.rouge(texts, targets)}
                stages[stage]["bleu"] = metrics.bleu(texts, targets)
            stages[stage] |= {"distinct_1": metrics.distinct_n(texts, 1), "distinct_2": metrics.distinct_n(texts, 2)}
            generations += [
                {"stage": stage, "prompt": p, "reference": r, "completion": c, "reward": w}
                for p, r, c, w in zip(prompts, references, completions, rewards[stage])
            ]
        names = list(stages)
        for earlier, later in zip(names, names[1:]):
            stages[later]["win_rate"] = metrics.paired_win_rate(rewards[later], rewards[earlier]) | {"against": earlier}
        results["stages"] = stages
        results["ppo"] = "ran" if "ppo" in stages else "not run: SFT is the final policy"
    stage = run.stage("eval")
    write_jsonl(generations, stage.path / "generations.jsonl")
    if "ppo" in stages:
        table = before_after(generations, stages["ppo"]["win_rate"]["against"], settings.table_prompts)
        (stage.path / "before_after.md").write_text(table, encoding="utf-8")
    stage.write_config(settings)
    stage.write_json("results.json", results)
    (stage.path / "results.md").write_text(markdown_table(table_rows([results])), encoding="utf-8")
    return results


def table_rows(results: Sequence[dict]) -> list[dict]:
    """One row per run x stage: the paper's Table II layout (model, corpus, stage, then the metrics)."""
    rows = []
    for result in results:
        corpus = result["run"]["corpus"] + (" (stand-in)" if result["run"].get("standin") else "")
        for stage, m in result["stages"].items():
            rows.append({"model": result["run"]["model"], "corpus": corpus, "stage": stage} | m)
    return rows


def before_after(generations: Sequence[dict], before: str, count: int) -> str:
    """A Markdown table of the first ``count`` evaluation prompts: the ``before`` stage's completion and the PPO
    model's, side by side, each with its reward."""

    def cell(text: str) -> str:
        return " ".join(text.split()).replace("|", "\\|") or "∅"

    by_stage = {stage: [g for g in generations if g["stage"] == stage][:count] for stage in (before, "ppo")}
    lines = [
        f"| prompt | before PPO ({before}) | reward | after PPO | reward |",
        "|---|---|---|---|---|",
    ]
    for old, new in zip(by_stage[before], by_stage["ppo"], strict=True):
        lines.append(
            f"| {cell(old['prompt'])} | {cell(old['completion'])} | {old['reward']:.3f} "
            f"| {cell(new['completion'])} | {new['reward']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def _cell(row: dict, column: str) -> str:
    value = row.get(column)
    if value is None:
        return "—"
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
    results = [RunDir(path.parent).read_json(path.name) for path in sorted(root.rglob("eval/results.json"))]
    rows = table_rows(results)
    RunDir(root).write_json("results.json", rows)
    (root / "results.md").write_text(markdown_table(rows), encoding="utf-8")
    return rows
