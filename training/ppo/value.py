"""The critic: a scalar value per position, read by a Linear layer from a transformer's last hidden state.

Two placements, chosen by ``trunk``:

- shared (``trunk=None``): the head reads the policy's own last hidden state from the policy's
  forward pass; the value loss trains the head and, through it, the policy's trunk;
- separate (`separate_critic`): the head sits on its own copy of a transformer, so value learning
  never moves the policy's weights, at the cost of a second forward pass.

The head is an ordinary trainable Linear on a hidden state that differs from context to context,
initialised small so that early values are near 0 and early advantages near the rewards; give it
its own learning rate (`agentic.training.ppo.update.make_optimizer`).
"""

from __future__ import annotations

import copy

from torch import Tensor, nn
from transformers import PreTrainedModel


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
