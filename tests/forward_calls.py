"""Watching what a model is called on, from the outside: the shapes of the inputs it is given."""

import torch


def input_shapes(model: torch.nn.Module) -> list[torch.Size]:
    """The shape of ``input_ids`` in every call of ``model`` from now on, in call order."""
    shapes: list[torch.Size] = []
    model.register_forward_pre_hook(lambda _, args, kwargs: shapes.append(kwargs["input_ids"].shape), with_kwargs=True)
    return shapes
