"""The single-turn corpus pipeline of the SLM-RL-Agents paper: prepare -> LoRA SFT -> reward model -> PPO -> evaluation.

Each stage is a function of a run directory, so it can be rerun alone; `agentic.training.corpus.pipeline.run_pipeline`
chains them. PPO is the agentic training loop on one-turn episodes of a reward-model task
(`agentic.training.corpus.ppo`). The stages' options (`agentic.training.corpus.options`) import nothing heavy;
import the stages from their modules.
"""
