"""The single-turn corpus pipeline of the SLM-RL-Agents paper: prepare -> LoRA SFT -> reward model -> PPO -> evaluation.

Each stage is a function of a run directory (see `agentic.training.corpus.rundir`), so it can be rerun
alone; `run_pipeline` chains them. PPO is the shared core (`corpus_ppo`), plugged in through `PPOHook`.
"""

from agentic.training.corpus.base import TINY, TinySettings, build_tiny_base
from agentic.training.corpus.evaluate import EvalSettings, evaluate, write_results_table
from agentic.training.corpus.pipeline import PPOHook, PPOJob, run_pipeline, run_ppo
from agentic.training.corpus.ppo import PpoSettings, RewardNormalizer, corpus_ppo, train_ppo
from agentic.training.corpus.prepare import PrepareSettings, prepare
from agentic.training.corpus.reward import RewardScorer, RewardSettings, reward_stage
from agentic.training.corpus.sft import SftSettings, lora_rank, train_sft
from agentic.training.corpus.specs import CORPORA, load_examples

__all__ = [
    "CORPORA",
    "TINY",
    "EvalSettings",
    "PPOHook",
    "PPOJob",
    "PpoSettings",
    "PrepareSettings",
    "RewardNormalizer",
    "RewardScorer",
    "RewardSettings",
    "SftSettings",
    "TinySettings",
    "build_tiny_base",
    "corpus_ppo",
    "evaluate",
    "load_examples",
    "lora_rank",
    "prepare",
    "reward_stage",
    "run_pipeline",
    "run_ppo",
    "train_ppo",
    "train_sft",
    "write_results_table",
]
