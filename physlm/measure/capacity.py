"""Knowledge bits and the capacity ratio of Part 3.3 (Def. 4.3, Thm. 3.2).

A model is evaluated on its own training people, one biography each (Part 3.3 Sec. 3-4):

* p1: cross-entropy in nats *summed* over a person's name tokens, averaged over people;
* p2: summed over a person's value tokens, averaged over people (bioS: pronoun, birth month, day,
  year, birth city, university, major, employer; the work city follows from the employer);
* p3 (bioD): summed over the tokens of a chunk string past its identifying prefix, averaged over
  the (attribute, chunk) pairs that occur.

Summed, not averaged, token losses are what turn into bits (Part 3.3 Remark 3.1). Then

    bits(bioS) = N log2(N0 / e^p1) + N log2(S0 / e^p2)
    R(F) = bits / P,   R_max(F) = [N log2(N0 / N) + N log2 S0] / P

with N0 = 400*400*1000 names, S0 = 2*(12*28*200)*200*300*100*263 (log2 S0 ~ 47.59) and P the
parameters that the data can reach (unused embedding rows excluded). For bioD(N, K, C, D, L, T)
the value term is per attribute (p2 averaged over people and attributes) and a third term counts
the chunk strings:

    bits(bioD) = N log2(N0 / e^p1) + N K log2(D^C / e^p2) + K D log2(T^L / (D e^p3)).

``exact=True`` uses the Theorem 3.2 counting for unique draws, N0 - N and T^L - D. A model that
knows every fact but cannot tell which of the N people comes next has p1 = ln N, p2 = p3 = 0 and
scores exactly the maximum; guessing uniformly over the pools (p1 = ln N0, p2 = ln S0) scores 0.

Our operationalisation of p3 (the definition in the paper speaks of the loss on the diversity
chunks): a chunk's tokens before its shortest unique prefix tell *which* chunk a person has and
belong to p2 only; the tokens after it are fixed by the chunk string, so their loss is zero
exactly when the string is stored, whatever the model knows about people.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

LOG2E = 1.0 / math.log(2.0)

# bioS pool sizes (Part 3.1 App. A.1; Part 3.3 Def. 4.3)
BIOS_N0 = 400 * 400 * 1000
BIOS_S0 = 2 * (12 * 28 * 200) * 200 * 300 * 100 * 263
BIOS_LOG2_S0 = math.log2(BIOS_S0)

OVERFILL = 2.3
"""Bits per parameter above which the data overfills a model: the paper's ceiling (Part 3.3,
Result 1: no model stores more than 2.3 bits/param), so a model whose data holds more cannot
store it all and its measured ratio is its capacity, not the size of its data."""


def _check_n(n_people) -> int:
    if isinstance(n_people, bool) or not isinstance(n_people, int) or n_people < 1:
        raise ValueError(f"n_people must be a positive integer, got {n_people!r}")
    return n_people


def _log2_minus(log2_a: float, b: float) -> float:
    """log2(2^log2_a - b) for b < 2^log2_a, without forming 2^log2_a."""
    ratio = b / 2.0 ** log2_a if log2_a < 1000 else 0.0
    if ratio >= 1:
        raise ValueError("exact counting needs N < N0 and D < T^L")
    return log2_a + math.log1p(-ratio) * LOG2E


def bios_bits(n_people: int, p1: float, p2: float, log2_n0: float = math.log2(BIOS_N0),
              log2_s0: float = BIOS_LOG2_S0, exact: bool = False) -> float:
    """Knowledge bits of a model on bioS(N) (numerator of Part 3.3 Def. 4.3); may be negative."""
    n = _check_n(n_people)
    name = _log2_minus(log2_n0, n) if exact else log2_n0
    return n * (name - p1 * LOG2E) + n * (log2_s0 - p2 * LOG2E)


def bios_max_bits(n_people: int, log2_n0: float = math.log2(BIOS_N0),
                  log2_s0: float = BIOS_LOG2_S0, exact: bool = False) -> float:
    """Bits of bioS(N) itself: N log2(N0 / N) + N log2 S0 (numerator of R_max)."""
    n = _check_n(n_people)
    return bios_bits(n, math.log(n), 0.0, log2_n0, log2_s0, exact)


def biod_bits(n_people: int, K: int, C: int, D: int, L: int, T: int, p1: float, p2: float,
              p3: float, log2_n0: float, exact: bool = False) -> float:
    """Knowledge bits of a model on bioD(N, K, C, D, L, T) (Part 3.3 Thm. 3.2 / Def. 4.3).

    p2 is the summed loss of one attribute's value (C*L tokens), averaged over people and
    attributes; p3 the summed loss of a chunk's content tokens, averaged over chunks.
    """
    n = _check_n(n_people)
    for name, v in (("K", K), ("C", C), ("D", D), ("L", L), ("T", T)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    name_bits = _log2_minus(log2_n0, n) if exact else log2_n0
    chunk_bits = _log2_minus(L * math.log2(T), D) if exact else L * math.log2(T)
    return (n * (name_bits - p1 * LOG2E)
            + n * K * (C * math.log2(D) - p2 * LOG2E)
            + K * D * (chunk_bits - math.log2(D) - p3 * LOG2E))


def biod_max_bits(n_people: int, K: int, C: int, D: int, L: int, T: int, log2_n0: float,
                  exact: bool = False) -> float:
    """Bits of bioD itself: p1 = ln N, p2 = p3 = 0 in `biod_bits`."""
    return biod_bits(n_people, K, C, D, L, T, math.log(_check_n(n_people)), 0.0, 0.0, log2_n0,
                     exact)


def capacity_ratio(bits: float, params: int) -> float:
    """R(F) = bits / P: knowledge bits per parameter."""
    if isinstance(params, bool) or not isinstance(params, int) or params < 1:
        raise ValueError(f"params must be a positive integer, got {params!r}")
    return bits / params


@dataclass(frozen=True)
class Losses:
    """Summed-per-person losses in nats (see the module docstring)."""

    n_people: int
    p1: float
    p2: float
    p3: float | None = None
    per_attribute: dict[str, float] = field(default_factory=dict)  # summed per person
    chunks_seen: int | None = None  # bioD: (attribute, chunk) pairs that occur


@dataclass(frozen=True)
class Capacity:
    """Bits, the most bits the data holds, and both per parameter."""

    bits: float
    max_bits: float
    params: int
    losses: Losses

    @property
    def ratio(self) -> float:
        return self.bits / self.params

    @property
    def max_ratio(self) -> float:
        return self.max_bits / self.params


def _attribute_names(knowledge: dict) -> list[str]:
    if knowledge["kind"] == "bioS":
        from physlm.data.bios import COUNTED

        return list(COUNTED)
    return [f"attr{k}" for k in range(knowledge["K"])]


@torch.no_grad()
def measure_losses(model: nn.Module, data, batch_size: int = 256,
                   device: torch.device | str | None = None) -> Losses:
    """p1, p2 (and p3 for bioD) of ``model`` (``forward(idx) -> logits``) on ``data``.

    ``data`` is a `BioSStream` or `BioDStream` (anything with ``eval_batches`` and ``knowledge``).
    The model is put in eval mode for the measurement and its mode restored afterwards.
    """
    knowledge = data.knowledge()
    names = _attribute_names(knowledge)
    if device is None:
        p = next(model.parameters(), None)
        device = p.device if p is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    name_sum = 0.0
    attr_sum = torch.zeros(len(names), dtype=torch.float64)
    n_seen = 0
    chunk_loss: torch.Tensor | None = None
    chunk_occ: torch.Tensor | None = None
    if knowledge["kind"] == "bioD":
        n_chunks = knowledge["K"] * knowledge["D"]
        chunk_loss = torch.zeros(n_chunks, dtype=torch.float64)
        chunk_occ = torch.zeros(n_chunks, dtype=torch.float64)
    try:
        batches: Iterable[dict] = data.eval_batches(batch_size)
        for b in batches:
            logits = model(b["x"].to(device))
            loss = F.cross_entropy(logits.float().transpose(1, 2), b["y"].to(device),
                                   reduction="none").double().cpu()
            name_sum += float(loss[b["name_mask"]].sum())
            attr = b["attr"]
            sel = attr >= 0
            attr_sum.index_add_(0, attr[sel], loss[sel])
            n_seen += int(b["x"].shape[0])
            if chunk_loss is not None:
                ch, st = b["chunk"], b["chunk_start"]
                chunk_loss.index_add_(0, ch[ch >= 0], loss[ch >= 0])
                chunk_occ.index_add_(0, st[st >= 0], torch.ones(int((st >= 0).sum()),
                                                                 dtype=torch.float64))
    finally:
        model.train(was_training)
    n = knowledge["n_people"]
    if n_seen != n:
        raise ValueError(f"eval data covered {n_seen} people, expected {n}")
    per_attr = {k: float(v) / n for k, v in zip(names, attr_sum.tolist(), strict=True)}
    p2 = float(attr_sum.sum()) / n
    p3 = chunks_seen = None
    if chunk_loss is not None:
        p2 /= knowledge["K"]
        seen = chunk_occ > 0
        chunks_seen = int(seen.sum())
        p3 = float((chunk_loss[seen] / chunk_occ[seen]).mean()) if chunks_seen else 0.0
    return Losses(n_people=n, p1=name_sum / n, p2=p2, p3=p3, per_attribute=per_attr,
                  chunks_seen=chunks_seen)


def bits_from_losses(losses: Losses, knowledge: dict, exact: bool = False) -> tuple[float, float]:
    """(bits, max_bits) of measured losses for the data described by ``knowledge``."""
    n = knowledge["n_people"]
    if knowledge["kind"] == "bioS":
        args = (knowledge["log2_n0"], knowledge["log2_s0"], exact)
        return (bios_bits(n, losses.p1, losses.p2, *args), bios_max_bits(n, *args))
    if knowledge["kind"] == "bioD":
        shape = tuple(knowledge[k] for k in ("K", "C", "D", "L", "T"))
        return (biod_bits(n, *shape, losses.p1, losses.p2, losses.p3, knowledge["log2_n0"],
                          exact),
                biod_max_bits(n, *shape, knowledge["log2_n0"], exact))
    raise ValueError(f"unknown knowledge kind {knowledge['kind']!r}; expected 'bioS' or 'bioD'")


def measure_capacity(model: nn.Module, data, params: int, batch_size: int = 256,
                     exact: bool = False, device: torch.device | str | None = None) -> Capacity:
    """Losses, bits and R(F) of a trained model on its own training people.

    ``params`` is P of Def. 4.3; use ``count_params(model, data.used_token_ids())``.
    """
    capacity_ratio(0.0, params)  # validates params
    losses = measure_losses(model, data, batch_size, device)
    bits, max_bits = bits_from_losses(losses, data.knowledge(), exact)
    return Capacity(bits=bits, max_bits=max_bits, params=params, losses=losses)
