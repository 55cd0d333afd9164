"""`Policy`: any transformers causal LM as an agent, sampling batches of actions with their log-probs.

A policy loads the model and its tokenizer and opens decoding batches (`agentic.decoding`) over
them: the rollout engine keeps one batch of episodes across turns; `Policy.generate` samples one
action per context in a single batch. How tokens are drawn is `agentic.sampling`; when an action
is over, `agentic.stopping`; how episodes become tokens (raw text or the chat template),
`agentic.encoding`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from agentic.constraint import GrammarFor
from agentic.decoding import DecodingBatch, Generation, decoding_batch
from agentic.encoding import encode, episode_encoding
from agentic.kv_cache import use_cpu_attention
from agentic.sampling import Sampling
from agentic.stopping import StopRule


class Policy:
    """A causal LM and its tokenizer on one device (CUDA with bf16 when available, else CPU float32).

    On CPU the model attends with `agentic.kv_cache.cpu_attention` in inference (same results as SDPA, faster).
    ``mode`` is how its episodes are encoded (`agentic.encoding.episode_mode`): ``auto`` (chat when the
    tokenizer has a chat template), ``chat`` or ``raw``; ``policy.mode`` is the one chosen.
    """

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, mode: str = "auto"):
        self.model = model.eval()
        use_cpu_attention(model)
        self.tokenizer = tokenizer
        self.encoding = episode_encoding(tokenizer, mode)
        self.mode = self.encoding.mode
        self.device = next(model.parameters()).device
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.eos_id = tokenizer.eos_token_id
        self.stop_rule = StopRule(
            tokenizer, model.get_output_embeddings().weight.shape[0], end_of_turn_id=self.encoding.end_of_turn_id
        )

    @classmethod
    def from_pretrained(
        cls, name_or_path: str | Path, device: str | torch.device | None = None, mode: str = "auto"
    ) -> Policy:
        """A hub id, a local directory or a known model's name (`agentic.models.resolve_model`); a directory with
        ``adapter_config.json`` is a PEFT adapter over its base model."""
        from agentic.models import resolve_model

        name_or_path = resolve_model(name_or_path)
        device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        path = Path(name_or_path)
        if (path / "adapter_config.json").is_file():
            from peft import PeftModel

            from agentic.adapters import adapter_base

            base = adapter_base(path)  # also where the run directory was moved (`agentic.adapters`)
            model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base, dtype=dtype), path)
            has_tokenizer = (path / "tokenizer_config.json").is_file()
            tokenizer = AutoTokenizer.from_pretrained(path if has_tokenizer else base)
        else:
            model = AutoModelForCausalLM.from_pretrained(name_or_path, dtype=dtype)
            tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        return cls(model.to(device), tokenizer, mode)

    @property
    def context_length(self) -> int | None:
        """The longest sequence the model was built for, when its config says."""
        return getattr(self.model.config, "max_position_embeddings", None)

    def encode(self, text: str) -> list[int]:
        return encode(self.tokenizer, text)

    def decode(self, token_ids: Sequence[int]) -> str:
        return self.stop_rule.decode(token_ids)

    def count_tokens(self, text: str) -> int:
        """The environment's per-turn token budget, measured with this policy's tokenizer."""
        return len(self.encode(text))

    def decoding_batch(self, contexts: Sequence[Sequence[int]], sampling: Sampling = Sampling()) -> DecodingBatch:
        """A batch of these contexts to decode together, turn after turn, with one KV cache (`agentic.decoding`)."""
        return decoding_batch(self.model, contexts, sampling, pad_id=self.pad_id, stop_rule=self.stop_rule)

    def generate(
        self, contexts: Sequence[Sequence[int]], sampling: Sampling = Sampling(), grammar: GrammarFor | None = None
    ) -> list[Generation]:
        """One action for each context, sampled in one batch; under constrained sampling ``grammar(row, limit)``
        gives each row's action grammar (`agentic.constraint`)."""
        generations = self.decoding_batch(contexts, sampling).generate(grammar=grammar)
        return [generations[row] for row in range(len(contexts))]
