"""Bridges to other training and evaluation frameworks: `agentic.integrations.trl` (TRL's GRPOTrainer) and
`agentic.integrations.verifiers` (verifiers tasksets as tasks).

Each bridge is imported on its own, never from `agentic/__init__.py`, so ``import agentic`` does not pay for them.
"""
