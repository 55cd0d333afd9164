"""The single-turn corpus pipeline of the SLM-RL-Agents paper: prepare -> LoRA SFT -> reward model -> PPO -> evaluation.

Each stage is a function of a run directory (see `training.corpus.rundir`), so it can be rerun
alone; `run_pipeline` chains them. PPO is the shared core (`corpus_ppo`), plugged in through `PPOHook`.
"""

from training.corpus.base import TINY, TinySettings, build_tiny_base
from training.corpus.evaluate import EvalSettings, evaluate, write_results_table
from training.corpus.pipeline import PPOHook, PPOJob, run_pipeline, run_ppo
from training.corpus.ppo import PpoSettings, RewardNormalizer, corpus_ppo, train_ppo
from training.corpus.prepare import PrepareSettings, prepare
from training.corpus.reward import RewardScorer, RewardSettings, reward_stage
from training.corpus.sft import SftSettings, lora_rank, train_sft
from training.corpus.specs import CORPORA, load_examples

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
