"""Training: agentic SFT warm-up, turn-level PPO, GRPO, the single-turn corpus pipeline and the tiny default model."""
