"""Run a small cached training in its own process, so a test can SIGKILL it halfway.

argv: the run root, then optionally "masked" for an encoder trained with the masked-LM loss."""

import json
import sys

import torch
from toydata import CountingData

from physlm.model import ModelConfig
from physlm.runs import get_or_train
from physlm.train import TrainConfig

MODEL = ModelConfig(vocab_size=16, n_layer=2, n_head=2, n_embd=64, block_size=32)
TRAIN = TrainConfig(steps=200, lr=3e-3, warmup_steps=10, log_every=20, checkpoint_every=20)
ENCODER = MODEL.with_(vocab_size=17, causal=False)  # one id more: [MASK]
MASKED = TrainConfig(**{**TRAIN.to_dict(), "objective": "masked"})

if __name__ == "__main__":
    torch.set_num_threads(1)
    encoder = sys.argv[2:] == ["masked"]
    run = get_or_train(
        ENCODER if encoder else MODEL,
        MASKED if encoder else TRAIN,
        CountingData(batch_size=16, seq_len=24), root=sys.argv[1], progress=False
    )
    print(json.dumps({"cached": run.cached, "losses": [m["loss"] for m in run.metrics]}))
