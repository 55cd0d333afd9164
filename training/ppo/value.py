"""The critic: a scalar value per position, read by a Linear layer from a transformer's last hidden state.

Two placements, chosen by ``trunk``:

- shared (``trunk=None``): the head reads the policy's own last hidden state from the policy's
  forward pass; the value loss trains the head and, through it, the policy's trunk;
- separate (`separate_critic`): the head sits on its own copy of a transformer, so value learning
  never moves the policy's weights, at the cost of a second forward pass;
- from a reward model (`reward_model_critic`): separate, its trunk and head both the reward model's (a one-label
  sequence classifier over the policy's vocabulary), so the first values are the reward model's own judgements, as
  the PPO RLHF recipes start their value model.

The head is an ordinary trainable Linear on a hidden state that differs from context to context,
initialised small so that early values are near 0 and early advantages near the rewards; give it
its own learning rate (`agentic.training.ppo.update.make_optimizer`).
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn
from transformers import AutoModelForSequenceClassification, PreTrainedModel


class ValueHead(nn.Module):
    def __init__(self, hidden_size: int, trunk: nn.Module | None = None, init_std: float = 0.01):
        super().__init__()
        self.trunk = trunk
        self.score = nn.Linear(hidden_size, 1)
        nn.init.normal_(self.score.weight, std=init_std)
        nn.init.zeros_(self.score.bias)

    @property
    def shared(self) -> bool:
        """Whether the head reads the policy's hidden states (no trunk of its own)."""
        return self.trunk is None

    def forward(self, input_ids: Tensor, attention_mask: Tensor, policy_hidden: Tensor | None = None) -> Tensor:
        """``[B, T]`` values, from ``policy_hidden`` (the policy's last hidden state) when shared, else from the own trunk."""
        if self.trunk is None:
            if policy_hidden is None:
                raise ValueError("a shared value head reads the policy's last hidden state: pass policy_hidden")
            hidden = policy_hidden
        else:
            hidden = self.trunk(
                input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True
            ).hidden_states[-1]
        return self.score(hidden.to(self.score.weight.dtype)).squeeze(-1)


def shared_value_head(policy: PreTrainedModel, init_std: float = 0.01) -> ValueHead:
    """A head on the policy's own trunk, on the policy's device."""
    return ValueHead(policy.config.hidden_size, init_std=init_std).to(policy.device)


def separate_critic(model: PreTrainedModel, init_std: float = 0.01) -> ValueHead:
    """A critic with its own trunk, a copy of ``model``'s transformer body (for a causal LM, without its LM head),
    and a fresh head. Pass the policy it will judge (e.g. the SFT model): the copy starts knowing its contexts.
    The copy trains what ``model`` trains: a PEFT model's adapters only; pass a plain model for a fully trainable critic."""
    trunk = copy.deepcopy(model.base_model)
    return ValueHead(model.config.hidden_size, trunk=trunk, init_std=init_std).to(model.device)


def reward_model_critic(name_or_path: str, policy: PreTrainedModel) -> ValueHead:
    """A critic whose trunk and head start as the reward model ``name_or_path`` (one label, the policy's vocabulary:
    it reads the policy's token ids). Its trunk and head train fully, at the value learning rate."""
    model = AutoModelForSequenceClassification.from_pretrained(name_or_path, dtype=torch.float32)
    head = getattr(model, "score", None)  # the one-label head of transformers' sequence classifiers (as TRL reads it)
    if model.config.num_labels != 1 or not isinstance(head, nn.Linear):
        raise ValueError(f"{name_or_path} is not a reward model (a sequence classifier with one label)")
    vocabulary, own = policy.get_input_embeddings().weight.shape[0], model.get_input_embeddings().weight.shape[0]
    if vocabulary != own:
        raise ValueError(
            f"reward model {name_or_path} has a vocabulary of {own} tokens and the policy {vocabulary}: a critic "
            "from it must read the policy's tokens (train the reward model from the policy, or use another critic)"
        )
    critic = ValueHead(model.config.hidden_size, trunk=model.base_model)
    with torch.no_grad():
        critic.score.weight.copy_(head.weight)
        critic.score.bias.copy_(head.bias if head.bias is not None else torch.zeros(1))
    return critic.to(policy.device)
