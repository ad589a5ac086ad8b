"""A tiny learnable data source for trainer tests: counting sequences mod V from a seeded start."""

import torch

from physlm.tiny_run import CountingRows


class CountingData(CountingRows):
    """`CountingRows` with the loss on every target but the first (one count for every row)."""

    kind = "counting"

    def __init__(self, vocab_size: int = 16, batch_size: int = 8, seq_len: int = 12, seed: int = 0):
        super().__init__(vocab_size, batch_size, seq_len, seed)

    def loss_mask(self, g: torch.Generator) -> torch.Tensor:
        mask = torch.ones(self.batch_size, self.seq_len, dtype=torch.bool)
        mask[:, 0] = False
        return mask
