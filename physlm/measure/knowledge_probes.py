"""P-probing and Q-probing inputs for bioS people, and a probe that can name unseen values.

Part 3.1 (Allen-Zhu & Li, arXiv 2309.14316, Sec. 5) asks *where* a pretrained model stores a
person's attributes:

- P-probing (Result 4, Fig. 5) feeds a whole biography to the frozen model and reads the last
  layer at six special positions, the token just before the first occurrence of each attribute
  (`p_probe_inputs`). If an attribute is readable already at the first position, right after
  the name, the model stored it with the name.
- Q-probing (Result 5, Fig. 7) feeds the name alone (`q_probe_inputs`: ``<eos> first middle
  last``) and reads the state at the name's last token.

Targets follow the paper's first-token tasks (`first_token_labels`): the birth month for the
birth date, and the first token of the value for the other five attributes.

The paper's probe head is a free linear map to one logit per class, trained on 100K people,
so every class is seen hundreds of times. A small edition probes a few hundred people, and then
most universities or companies occur once or never among the probe's training people: a free
head cannot name a class it was not shown. `fit_token_probe` therefore ties each class's head
vector to the frozen model's own embedding of that token, mapped by one trained d x d matrix:
still a linear classifier of the hidden state (logits = norm(h) W E_c^T), but one whose
classes are the model's token vectors, so it reads values it never saw during probe training.
As in the paper, an optional rank-r update of the token embedding is trained with it (P: r = 2,
Q: r = 16); r = 0 fits the head on cached states, which is what a small budget affords for the
36 P-probes of a model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from physlm.data.bios import ATTRIBUTES, BioSStream
from physlm.measure.probes import embedding_delta, hidden_states, train_test_split

# the span that opens each attribute's value in `BioSStream.render_person`
_VALUE_SPAN = {"birth_date": "birth_month"}


def _people(bios: BioSStream, people: Sequence[int] | np.ndarray) -> list[int]:
    out = [int(i) for i in np.asarray(people, dtype=np.int64).ravel()]
    n = bios.config.n_people
    if not out or any(not 0 <= i < n for i in out):
        raise ValueError(f"people must be a non-empty list of indices in [0, {n})")
    return out


def p_probe_inputs(
    bios: BioSStream, people: Sequence[int] | np.ndarray
) -> tuple[Tensor, Tensor, Tensor]:
    """Biographies as model inputs and the six special positions of each (P31 Sec. 5.1).

    Returns ``inputs`` [N, T] (``<eos> bio``, padded), ``before`` [N, 6]: for each attribute (in
    `ATTRIBUTES` order) the input index of the token just before its value, and ``order``
    [N, 6]: the attribute at the k-th special position in reading order. The state at
    ``before[i, a]`` is the one that predicts the value's first token.
    """
    rows, before, order = [], [], []
    for i in _people(bios, people):
        bio, spans = bios.render_person(i)
        # input index j + 1 holds bio token j, so the token before value start s sits at s
        starts = [spans[_VALUE_SPAN.get(a, a)][0] for a in ATTRIBUTES]
        rows.append([bios.vocab.eos_id, *bio])
        before.append(starts)
        order.append(list(np.argsort(starts, kind="stable")))
    width = max(map(len, rows))
    inputs = torch.full((len(rows), width), bios.vocab.pad_id, dtype=torch.long)
    for r, row in enumerate(rows):
        inputs[r, : len(row)] = torch.tensor(row)
    return inputs, torch.tensor(before), torch.tensor(np.asarray(order, dtype=np.int64))


def q_probe_inputs(bios: BioSStream, people: Sequence[int] | np.ndarray) -> tuple[Tensor, Tensor]:
    """Names alone, ``<eos> first middle last`` [N, 4], and the read position (the last name
    token) [N] (P31 Sec. 5.2 feeds ``[start] name [end]``; our tokens have no end marker)."""
    ids = _people(bios, people)
    w, p = bios.world, bios.people
    rows = [[bios.vocab.eos_id, w.first[p.first[i]], w.middle[p.middle[i]], w.last[p.last[i]]]
            for i in ids]
    inputs = torch.tensor(rows, dtype=torch.long)
    return inputs, torch.full((len(ids),), 3, dtype=torch.long)


def first_token_labels(
    bios: BioSStream, people: Sequence[int] | np.ndarray, attribute: str
) -> tuple[Tensor, Tensor]:
    """(labels [N], candidates [C]) for one attribute's first-token task (P31 Sec. 5).

    Candidates are the token ids that can open the attribute's value (the 12 month names for
    the birth date, whose first token is the month), sorted; a label indexes into them.
    """
    if attribute not in ATTRIBUTES:
        raise ValueError(f"attribute must be one of {ATTRIBUTES}, got {attribute!r}")
    w, p, ids = bios.world, bios.people, _people(bios, people)
    if attribute == "birth_date":
        cand, first = list(w.month), [w.month[p.month[i]] for i in ids]
    else:
        pool = {"birth_city": w.city, "work_city": w.city, "university": w.university,
                "major": w.major, "employer": w.employer}[attribute]
        cand = sorted({v[0] for v in pool})
        values = getattr(p, attribute)
        first = [pool[values[i]][0] for i in ids]
    index = {t: k for k, t in enumerate(cand)}
    return torch.tensor([index[t] for t in first]), torch.tensor(cand)


class TokenHead(nn.Module):
    """norm(h) W E_c^T: logits over candidate tokens, E_c the model's frozen embeddings."""

    def __init__(self, prototypes: Tensor, norm: str = "layer") -> None:
        super().__init__()
        d = prototypes.shape[1]
        self.register_buffer("prototypes", prototypes.detach().clone())
        self.norm = nn.LayerNorm(d) if norm == "layer" else nn.BatchNorm1d(d)
        self.map = nn.Parameter(torch.eye(d))
        self.scale = nn.Parameter(torch.tensor(math.log(10.0)))

    def forward(self, h: Tensor) -> Tensor:
        z = self.norm(h) @ self.map
        return self.scale.exp() * F.normalize(z, dim=-1) @ F.normalize(self.prototypes, dim=-1).T


@dataclass(frozen=True)
class TokenProbeResult:
    train_accuracy: float
    test_accuracy: float
    n_train: int
    n_test: int


def _last_state(model: nn.Module, inputs: Tensor, positions: Tensor) -> Tensor:
    """Output of the last block at one position per row (graph kept for training)."""
    caught: list[Tensor] = []
    handle = model.blocks[-1].register_forward_hook(lambda _m, _a, out: caught.append(out))
    try:
        model(inputs[:, : int(positions.max()) + 1])
    finally:
        handle.remove()
    h = caught[0]
    return h[torch.arange(h.shape[0]), positions]


def fit_token_probe(
    model: nn.Module,
    inputs: Tensor,
    positions: Tensor,
    labels: Tensor,
    candidates: Tensor,
    *,
    rank: int = 0,
    norm: str = "layer",
    steps: int = 300,
    batch_size: int = 50,
    lr: float = 1e-2,
    weight_decay: float = 0.3,
    test_fraction: float = 0.3,
    seed: int = 0,
    features: Tensor | None = None,
) -> TokenProbeResult:
    """Train a `TokenHead` (and a rank-`rank` embedding update) on a frozen model's last layer.

    `inputs` [N, T], `positions` [N] the read positions, `labels` [N] indices into
    `candidates` (token ids). People are split train/test (seeded); the test accuracy is on
    people the probe never saw. AdamW with linear decay to 0 as in P31 Sec. 5. With `rank=0`
    the states are computed once (or taken from `features` [N, d]); the model is not changed.
    """
    n = inputs.shape[0]
    if positions.shape != (n,) or labels.shape != (n,):
        raise ValueError(f"positions and labels must have shape [{n}]")
    if candidates.dim() != 1 or int(labels.min()) < 0 or int(labels.max()) >= len(candidates):
        raise ValueError("labels must index into candidates (a 1-d tensor of token ids)")
    if not isinstance(rank, int) or rank < 0:
        raise ValueError(f"rank must be an int >= 0, got {rank!r}")
    if norm not in ("layer", "batch"):
        raise ValueError(f"norm must be 'layer' or 'batch', got {norm!r}")
    if not isinstance(steps, int) or steps < 1 or not isinstance(batch_size, int) or batch_size < 2:
        raise ValueError(f"steps must be >= 1 and batch_size >= 2, got {steps}, {batch_size}")
    train_idx, test_idx = train_test_split(n, test_fraction, seed)
    gen = torch.Generator().manual_seed(seed)
    weights = model.wte.weight.detach()
    head = TokenHead(weights[candidates], norm)
    params: list[Tensor] = list(head.parameters())
    a = b = None
    if rank > 0:
        vocab, d = weights.shape
        a = (torch.randn(vocab, rank, generator=gen) / math.sqrt(rank)).requires_grad_()
        b = torch.zeros(rank, d, requires_grad=True)
        params += [a, b]
    elif features is None:
        h = hidden_states(model, inputs[:, : int(positions.max()) + 1], layers=[-1])
        features = next(iter(h.values()))[torch.arange(n), positions]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 - s / steps)
    was_training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in flags:
        p.requires_grad_(False)

    def states(idx: Tensor) -> Tensor:
        if a is None:
            return features[idx]
        with embedding_delta(model, a, b):
            return _last_state(model, inputs[idx], positions[idx])

    try:
        head.train()
        order = torch.empty(0, dtype=torch.long)
        for _ in range(steps):
            if len(order) < min(batch_size, len(train_idx)):
                order = train_idx[torch.randperm(len(train_idx), generator=gen)]
            batch, order = order[:batch_size], order[batch_size:]
            loss = F.cross_entropy(head(states(batch)), labels[batch])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        head.eval()
        with torch.no_grad():
            accs = [float((head(states(i)).argmax(-1) == labels[i]).float().mean())
                    for i in (train_idx, test_idx)]
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(was_training)
    return TokenProbeResult(accs[0], accs[1], len(train_idx), len(test_idx))
