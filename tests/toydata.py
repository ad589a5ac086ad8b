"""A tiny learnable data source for trainer tests: counting sequences mod V from a seeded start."""

import torch


class CountingData:
    """Row r of step s counts up from a start drawn from a generator seeded by (seed, s)."""

    def __init__(self, vocab_size: int = 16, batch_size: int = 8, seq_len: int = 12, seed: int = 0):
        self.vocab_size, self.batch_size, self.seq_len, self.seed = (
            vocab_size,
            batch_size,
            seq_len,
            seed,
        )

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        start = torch.randint(0, self.vocab_size, (self.batch_size, 1), generator=g)
        seq = (start + torch.arange(self.seq_len + 1)) % self.vocab_size
        mask = torch.ones(self.batch_size, self.seq_len, dtype=torch.bool)
        mask[:, 0] = False
        return {"x": seq[:, :-1], "y": seq[:, 1:], "mask": mask}

    def spec(self) -> dict:
        return {
            "kind": "counting",
            "vocab_size": self.vocab_size,
            "batch_size": self.batch_size,
            "seq_len": self.seq_len,
            "seed": self.seed,
        }
