"""Shared check: a model's output at a position depends on no later token."""

import torch


def assert_shape_and_causality(model, vocab_size: int = 30) -> None:
    """Change the tokens from position 7 on: outputs before 7 must stay, later ones must move."""
    x = torch.randint(0, vocab_size, (2, 12))
    y = model(x)
    assert y.shape == (2, 12, vocab_size)
    x2 = x.clone()
    x2[:, 7:] = (x2[:, 7:] + 1) % vocab_size
    y2 = model(x2)
    assert torch.allclose(y[:, :7], y2[:, :7], atol=1e-5)
    assert not torch.allclose(y[:, 7:], y2[:, 7:], atol=1e-5)
