"""Linear probes on a frozen `physlm.model.GPT`: what its hidden states store, linearly.

Two kinds of probe, as the papers use them:

- Plain linear probes on cached hidden states (`hidden_states`, `fit_linear_probe`,
  `fit_probes`). Part 1 (Allen-Zhu & Li, arXiv 2305.13673, Sec. 4) probes the last layer at every
  token for the NT ancestor of each level (and NT boundaries) and finds them linearly encoded.
  A probe here is multinomial logistic regression with an L2 penalty, fitted full-batch by
  L-BFGS from zero, so it is deterministic without a seed.
- P-probing and Q-probing (Part 3.1, arXiv 2309.14316, Sec. 5, Results 4-5): the model stays
  frozen, a rank-r update is added to its token embedding (P: r = 2, Q: r = 16), and a
  normalisation plus a linear head read the last layer at one position; only those train
  (`fit_embedding_lowrank_probe`). The small embedding update lets the probe re-weight which
  tokens matter without being able to store the answers itself.

Labels are class ids; a negative label means "no label here" (padding, a level a position does
not have) and is skipped everywhere. For per-token probes split *sequences*, not tokens, into
train and test (`train_test_split` on sequences, then `flatten_positions`), so that the tokens
of one sequence never sit on both sides.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import MappingProxyType

import torch
import torch.nn.functional as F
from torch import Tensor, nn

NORMS = ("layer", "batch", "none")

# Part 3.1 Sec. 5: P-probing trains a rank-2 embedding update, a LayerNorm and a linear head
# (batch 50); Q-probing a rank-16 update, a BatchNorm and a linear head (batch 200). Both use
# AdamW, lr 1e-3, weight decay 0.3, linear decay to 0. Use as `**P_PROBING`.
P_PROBING = MappingProxyType({"rank": 2, "norm": "layer", "batch_size": 50})
Q_PROBING = MappingProxyType({"rank": 16, "norm": "batch", "batch_size": 200})


# --------------------------------------------------------------------------- hidden states


def _layer_indices(n_layer: int, layers: Iterable[int] | None) -> list[int]:
    if layers is None:
        return list(range(n_layer))
    out = []
    for layer in layers:
        if not isinstance(layer, int) or not -n_layer <= layer < n_layer:
            raise ValueError(
                f"layers must hold ints in [-{n_layer}, {n_layer}) for a {n_layer}-layer model, "
                f"got {layer!r}"
            )
        out.append(layer % n_layer)
    if not out:
        raise ValueError("layers must not be empty (pass None for every layer)")
    return sorted(set(out))


def _check_idx(model: nn.Module, idx: Tensor, name: str = "idx") -> None:
    if not isinstance(idx, Tensor) or idx.dim() != 2 or idx.dtype not in (torch.long, torch.int):
        raise ValueError(f"{name} must be an integer tensor of shape [N, T]")
    if idx.numel() == 0:
        raise ValueError(f"{name} must not be empty")
    vocab = model.cfg.vocab_size
    if int(idx.min()) < 0 or int(idx.max()) >= vocab:
        raise ValueError(f"{name} must hold token ids in [0, {vocab})")


class _Stop(Exception):
    """Raised by a hook once every wanted state is caught, to skip the rest of the forward."""


@contextmanager
def _frozen_eval(model: nn.Module) -> Iterator[None]:
    """Eval mode and no parameter gradients for the duration; both restored afterwards."""
    was_training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(was_training)


def _run_to_layers(model: nn.Module, idx: Tensor, layers: list[int]) -> dict[int, Tensor]:
    """Residual stream after each block in `layers` (graph kept; the caller picks no_grad)."""
    caught: dict[int, Tensor] = {}
    last = max(layers)

    def make_hook(i: int):
        def hook(_module, _args, output):
            caught[i] = output
            if i == last:
                raise _Stop

        return hook

    handles = [model.blocks[i].register_forward_hook(make_hook(i)) for i in layers]
    try:
        model(idx)
    except _Stop:
        pass
    finally:
        for h in handles:
            h.remove()
    return caught


def hidden_states(
    model: nn.Module, idx: Tensor, layers: Iterable[int] | None = None
) -> dict[int, Tensor]:
    """{block index: residual stream after that block, [N, T, d]} for token ids `idx` [N, T].

    Read by forward hooks on `model.blocks[i]`; the model is not changed. Negative layer indices
    count from the end; keys are always 0-based. Runs without gradients in eval mode and restores
    the model's mode. The forward stops after the last requested block.
    """
    _check_idx(model, idx)
    wanted = _layer_indices(len(model.blocks), layers)
    with _frozen_eval(model), torch.no_grad():
        states = _run_to_layers(model, idx, wanted)
    return {i: states[i].detach() for i in wanted}


def flatten_positions(
    features: Tensor, labels: Tensor, mask: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Per-token features [N, T, d] and labels [N, T] or [N, T, K] -> rows [M, d], [M] or [M, K].

    Keeps the tokens where `mask` [N, T] is true (all if None): the shape a per-position probe
    such as Part 1's NT-ancestor probe (one label column per level) is fitted on.
    """
    if features.dim() != 3:
        raise ValueError(f"features must have shape [N, T, d], got {tuple(features.shape)}")
    if labels.dim() not in (2, 3) or labels.shape[:2] != features.shape[:2]:
        raise ValueError(
            f"labels must have shape [N, T] or [N, T, K] matching features' [N, T] = "
            f"{tuple(features.shape[:2])}, got {tuple(labels.shape)}"
        )
    if mask is None:
        mask = torch.ones(features.shape[:2], dtype=torch.bool, device=features.device)
    if mask.shape != features.shape[:2] or mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool tensor of shape {tuple(features.shape[:2])}")
    return features[mask], labels[mask]


def train_test_split(n: int, test_fraction: float = 0.2, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Seeded disjoint (train, test) index tensors over range(n); both non-empty."""
    if not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an int >= 2 (one item per side at least), got {n!r}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    n_test = min(max(1, round(n * test_fraction)), n - 1)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[n_test:].sort().values, perm[:n_test].sort().values


# --------------------------------------------------------------------------- linear probes


def _check_labels(labels: Tensor, n: int, name: str = "labels") -> None:
    if (
        not isinstance(labels, Tensor)
        or labels.dtype.is_floating_point
        or labels.dtype == torch.bool
    ):
        raise ValueError(f"{name} must be an integer tensor of class ids")
    if labels.shape[0] != n:
        raise ValueError(f"{name} must have {n} rows (one per feature row), got {labels.shape[0]}")


@dataclass(frozen=True)
class Probe:
    """A fitted multinomial logistic regression on standardised features."""

    weight: Tensor  # [C, d]
    bias: Tensor  # [C]
    mean: Tensor  # [d], training-feature mean
    scale: Tensor  # [d], training-feature std (1 where constant)

    @property
    def num_classes(self) -> int:
        return self.weight.shape[0]

    def logits(self, features: Tensor) -> Tensor:
        if features.dim() != 2 or features.shape[1] != self.weight.shape[1]:
            raise ValueError(
                f"features must have shape [N, {self.weight.shape[1]}], got {tuple(features.shape)}"
            )
        x = (features.detach().float().to(self.mean.device) - self.mean) / self.scale
        return x @ self.weight.T + self.bias

    def predict(self, features: Tensor) -> Tensor:
        return self.logits(features).argmax(dim=-1)

    def accuracy(self, features: Tensor, labels: Tensor) -> float:
        """Fraction of rows with label >= 0 that are predicted right."""
        _check_labels(labels, features.shape[0])
        keep = labels >= 0
        if not bool(keep.any()):
            raise ValueError("labels has no entry >= 0 to score")
        pred = self.predict(features[keep])
        return float((pred == labels[keep].to(pred.device)).float().mean())


def fit_linear_probe(
    features: Tensor,
    labels: Tensor,
    num_classes: int | None = None,
    l2: float = 1e-3,
    max_iter: int = 200,
    standardize: bool = True,
) -> Probe:
    """Multinomial logistic regression, loss mean CE + l2 * |W|^2, full-batch L-BFGS from zero.

    `features` [N, d], `labels` [N] class ids (negative ones are skipped). Features are
    standardised with the training mean/std first (if `standardize`), which keeps L-BFGS well
    conditioned and makes `l2` mean the same thing for every layer.
    """
    if not isinstance(features, Tensor) or features.dim() != 2 or features.shape[0] == 0:
        raise ValueError("features must be a non-empty tensor of shape [N, d]")
    _check_labels(labels, features.shape[0])
    if labels.dim() != 1:
        raise ValueError(
            f"labels must have shape [N], got {tuple(labels.shape)}; "
            "use fit_probes for several label columns"
        )
    if l2 < 0 or not math.isfinite(l2):
        raise ValueError(f"l2 must be a finite number >= 0, got {l2!r}")
    if not isinstance(max_iter, int) or max_iter <= 0:
        raise ValueError(f"max_iter must be a positive int, got {max_iter!r}")
    keep = labels >= 0
    x, y = features[keep].detach().float().cpu(), labels[keep].long().cpu()
    if x.shape[0] == 0:
        raise ValueError("labels has no entry >= 0 to fit")
    seen = int(y.max()) + 1
    if num_classes is None:
        num_classes = max(seen, 2)
    if not isinstance(num_classes, int) or num_classes < 2 or seen > num_classes:
        raise ValueError(
            f"num_classes must be an int >= 2 and above every label (max label {seen - 1}), "
            f"got {num_classes!r}"
        )
    d = x.shape[1]
    if standardize:
        mean, scale = x.mean(dim=0), x.std(dim=0, correction=0)
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    else:
        mean, scale = torch.zeros(d), torch.ones(d)
    z = (x - mean) / scale
    w = torch.zeros(num_classes, d, requires_grad=True)
    b = torch.zeros(num_classes, requires_grad=True)
    opt = torch.optim.LBFGS(
        [w, b],
        lr=1.0,
        max_iter=max_iter,
        history_size=20,
        line_search_fn="strong_wolfe",
        tolerance_grad=1e-6,
        tolerance_change=1e-10,
    )

    def closure() -> Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(z @ w.T + b, y) + l2 * w.square().sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return Probe(w.detach(), b.detach(), mean, scale)


def fit_probes(features: Tensor, labels: Tensor, **kwargs) -> list[Probe]:
    """One `fit_linear_probe` per label column of `labels` [N, K] (e.g. one per CFG level)."""
    _check_labels(labels, features.shape[0])
    if labels.dim() != 2:
        raise ValueError(f"labels must have shape [N, K], got {tuple(labels.shape)}")
    return [fit_linear_probe(features, labels[:, k], **kwargs) for k in range(labels.shape[1])]


def probe_accuracies(probes: Sequence[Probe], features: Tensor, labels: Tensor) -> list[float]:
    """Accuracy of probe k on label column k of `labels` [N, K]."""
    _check_labels(labels, features.shape[0])
    if labels.dim() != 2 or labels.shape[1] != len(probes):
        raise ValueError(f"labels must have shape [N, {len(probes)}] (one column per probe)")
    return [p.accuracy(features, labels[:, k]) for k, p in enumerate(probes)]


# --------------------------------------------------------------- P-probing and Q-probing


@contextmanager
def embedding_delta(model: nn.Module, a: Tensor, b: Tensor) -> Iterator[None]:
    """Add (a @ b)[idx] to the output of `model.wte` while inside; the model itself is untouched."""

    def hook(_module, args, output):
        return output + (a[args[0]] @ b).to(output.dtype)

    handle = model.wte.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


class _Head(nn.Module):
    """Normalisation then a linear classifier, on one position of the last layer."""

    def __init__(self, d: int, num_classes: int, norm: str, generator: torch.Generator) -> None:
        super().__init__()
        if norm == "layer":
            self.norm: nn.Module = nn.LayerNorm(d)
        elif norm == "batch":
            self.norm = nn.BatchNorm1d(d)
        else:
            self.norm = nn.Identity()
        self.linear = nn.Linear(d, num_classes)
        bound = 1.0 / math.sqrt(d)  # nn.Linear's default range, drawn from our generator
        with torch.no_grad():
            self.linear.weight.uniform_(-bound, bound, generator=generator)
            self.linear.bias.uniform_(-bound, bound, generator=generator)

    def forward(self, h: Tensor) -> Tensor:
        return self.linear(self.norm(h))


@dataclass(frozen=True)
class EmbeddingProbe:
    """A trained P/Q probe: embedding delta `a @ b` ([vocab, r] @ [r, d]) and its head."""

    a: Tensor
    b: Tensor
    head: nn.Module
    train_accuracy: float
    test_accuracy: float
    train_index: Tensor
    test_index: Tensor

    @property
    def rank(self) -> int:
        return self.a.shape[1]

    def logits(self, model: nn.Module, inputs: Tensor, positions: Tensor) -> Tensor:
        _check_idx(model, inputs, "inputs")
        _check_positions(positions, inputs)
        self.head.eval()
        with _frozen_eval(model), torch.no_grad():
            return _probe_logits(model, self.a, self.b, self.head, inputs, positions)

    def accuracy(
        self, model: nn.Module, inputs: Tensor, positions: Tensor, labels: Tensor
    ) -> float:
        _check_labels(labels, inputs.shape[0])
        pred = self.logits(model, inputs, positions).argmax(dim=-1)
        return float((pred == labels.to(pred.device)).float().mean())


def _check_positions(positions: Tensor, inputs: Tensor) -> None:
    n, t = inputs.shape
    if (
        not isinstance(positions, Tensor)
        or positions.shape != (n,)
        or positions.dtype.is_floating_point
    ):
        raise ValueError(f"positions must be an integer tensor of shape [{n}]")
    if int(positions.min()) < 0 or int(positions.max()) >= t:
        raise ValueError(f"positions must lie in [0, {t}) (the inputs' length)")


def _probe_logits(
    model: nn.Module, a: Tensor, b: Tensor, head: nn.Module, inputs: Tensor, positions: Tensor
) -> Tensor:
    # Causal model: the state at position p depends on tokens <= p only, so cut the batch there.
    cut = int(positions.max()) + 1
    last = len(model.blocks) - 1
    with embedding_delta(model, a, b):
        h = _run_to_layers(model, inputs[:, :cut], [last])[last]
    picked = h[torch.arange(h.shape[0], device=h.device), positions.to(h.device)]
    return head(picked.float())


def fit_embedding_lowrank_probe(
    model: nn.Module,
    inputs: Tensor,
    positions: Tensor,
    labels: Tensor,
    rank: int,
    *,
    norm: str = "layer",
    num_classes: int | None = None,
    steps: int = 1000,
    batch_size: int = 50,
    lr: float = 1e-3,
    weight_decay: float = 0.3,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> EmbeddingProbe:
    """P31 Sec. 5's probe: frozen model, trainable rank-`rank` embedding delta, head on last layer.

    `inputs` [N, T] token ids, `positions` [N] the token whose last-layer state is read,
    `labels` [N] class ids. The delta A @ B (A: vocab x r, B: r x d) is added to `model.wte`'s
    output by a forward hook; B starts at zero, so before training the model computes exactly
    what it did (`steps=0` returns that untrained probe). A held-out `test_fraction` of the
    items (seeded) gives `test_accuracy`.
    Optimiser as in the paper: AdamW, linear decay of lr to 0. The paper trains 30k steps with
    dropout on; our model has no dropout, and `steps` defaults lower for small models.
    The model's weights, gradients, `requires_grad` flags and train/eval mode are left as found.
    """
    _check_idx(model, inputs, "inputs")
    _check_positions(positions, inputs)
    n = inputs.shape[0]
    _check_labels(labels, n)
    if labels.dim() != 1 or int(labels.min()) < 0:
        raise ValueError("labels must have shape [N] and hold class ids >= 0")
    if not isinstance(rank, int) or rank <= 0:
        raise ValueError(f"rank must be a positive int, got {rank!r}")
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be an int >= 0, got {steps!r}")
    if not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if not lr > 0 or not weight_decay >= 0:
        raise ValueError(f"lr must be > 0 and weight_decay >= 0, got {lr!r}, {weight_decay!r}")
    seen = int(labels.max()) + 1
    num_classes = max(seen, 2) if num_classes is None else num_classes
    if not isinstance(num_classes, int) or num_classes < 2 or seen > num_classes:
        raise ValueError(
            f"num_classes must be an int >= 2 and above every label (max label {seen - 1}), "
            f"got {num_classes!r}"
        )
    train_idx, test_idx = train_test_split(n, test_fraction, seed)
    if norm == "batch" and min(batch_size, len(train_idx)) < 2:
        raise ValueError("norm='batch' needs batch_size >= 2 and at least 2 training items")

    device = model.wte.weight.device
    vocab, d = model.wte.weight.shape
    gen = torch.Generator().manual_seed(seed)
    a = (torch.randn(vocab, rank, generator=gen) / math.sqrt(rank)).to(device).requires_grad_()
    b = torch.zeros(rank, d, device=device, requires_grad=True)
    head = _Head(d, num_classes, norm, gen).to(device)
    decayed = [a, b, head.linear.weight]
    kept = [p for p in head.parameters() if all(p is not q for q in decayed)]
    opt = torch.optim.AdamW(
        [{"params": decayed, "weight_decay": weight_decay}, {"params": kept, "weight_decay": 0.0}],
        lr=lr,
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 - s / max(steps, 1))
    inputs, positions, labels = inputs.to(device), positions.to(device), labels.to(device)

    with _frozen_eval(model), torch.enable_grad():
        head.train()
        order = torch.empty(0, dtype=torch.long)
        for _ in range(steps):
            if len(order) < min(batch_size, len(train_idx)):
                order = train_idx[torch.randperm(len(train_idx), generator=gen)]
            batch, order = order[:batch_size], order[batch_size:]
            logits = _probe_logits(model, a, b, head, inputs[batch], positions[batch])
            loss = F.cross_entropy(logits, labels[batch])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        head.eval()
        with torch.no_grad():
            accs = []
            for idx in (train_idx, test_idx):
                pred = _probe_logits(model, a, b, head, inputs[idx], positions[idx]).argmax(-1)
                accs.append(float((pred == labels[idx]).float().mean()))
    return EmbeddingProbe(a.detach(), b.detach(), head, accs[0], accs[1], train_idx, test_idx)
