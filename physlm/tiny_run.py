"""A seconds-long run through the run cache: `physlm train tiny --scale smoke`.

It checks a setup before a chapter's long runs, e.g. that `accelerate launch -m physlm train
tiny --scale smoke` starts every process, trains and fills the cache. Its rows carry a loss on
a random number of positions, so the processes of a launch hold different numbers of loss
tokens, the case where a per-process mean would give another update than one process does.
A masked-LM twin (an encoder on the same rows) takes the trainer's other path, whose masks are
drawn for the whole batch before the batch is split between processes.
"""

from __future__ import annotations

import torch

from physlm.model import ModelConfig
from physlm.runs import Run, get_or_train
from physlm.train import OBJECTIVES, TrainConfig

CHAPTER = "tiny"
SCALES = ("smoke",)


class CountingRows:
    """Rows count up mod `vocab_size` from a random start; row r's loss covers its first L_r
    targets, L_r uniform in [1, seq_len]. A pure function of (seed, step), as a source must be."""

    def __init__(self, vocab_size: int = 16, batch_size: int = 8, seq_len: int = 16, seed: int = 0):
        if batch_size < 1 or seq_len < 1:
            raise ValueError(
                f"batch_size and seq_len must be >= 1, got {batch_size} and {seq_len}"
            )
        self.vocab_size, self.batch_size, self.seq_len, self.seed = (
            vocab_size,
            batch_size,
            seq_len,
            seed,
        )

    kind = "counting-rows"

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        start = torch.randint(0, self.vocab_size, (self.batch_size, 1), generator=g)
        seq = (start + torch.arange(self.seq_len + 1)) % self.vocab_size
        return {"x": seq[:, :-1], "y": seq[:, 1:], "mask": self.loss_mask(g)}

    def loss_mask(self, g: torch.Generator) -> torch.Tensor:
        """Row r's loss covers its first L_r targets (drawn after the starts, from `g`)."""
        lengths = torch.randint(1, self.seq_len + 1, (self.batch_size, 1), generator=g)
        return torch.arange(self.seq_len) < lengths

    def spec(self) -> dict:
        return {
            "kind": self.kind,
            "vocab_size": self.vocab_size,
            "batch_size": self.batch_size,
            "seq_len": self.seq_len,
            "seed": self.seed,
        }


def setting(
    seed: int = 0, objective: str = "next_token"
) -> tuple[ModelConfig, TrainConfig, CountingRows]:
    """The run's model, schedule and data: big enough to learn, small enough for seconds.

    `objective="masked"` is its encoder twin on the same rows: bidirectional attention, masked
    tokens drawn per step (one id past the data's vocabulary is [MASK]), the trainer's other path.
    It trains 40 steps: with about ten loss tokens a step, float-order differences between one
    and several processes grow chaotically later on (2e-4 in the loss by step 240).
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    masked = objective == "masked"
    data = CountingRows(seed=seed)
    model = ModelConfig(
        vocab_size=data.vocab_size + masked,  # the encoder's extra id is [MASK]
        n_layer=2,
        n_head=2,
        n_embd=32,
        block_size=16,
        causal=not masked,
    )
    train = TrainConfig(
        steps=40 if masked else 240,
        lr=3e-3,
        warmup_steps=10,
        log_every=10,
        checkpoint_every=30,
        seed=seed,
        objective=objective,
    )
    return model, train, data


def tiny_run(seed: int = 0, progress: bool = False, objective: str = "next_token") -> Run:
    model_cfg, train_cfg, data = setting(seed, objective)
    return get_or_train(model_cfg, train_cfg, data, progress=progress)


def train_all(scale: str, seed: int = 0, workers: int | None = None) -> int:
    """Train the run and its masked-LM twin (the `physlm train` entry point); `workers` does
    not apply."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES} for the tiny run, got {scale!r}")
    for objective in OBJECTIVES:
        tiny_run(seed, objective=objective)
    return len(OBJECTIVES)
