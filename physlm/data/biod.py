"""bioD(N, K, C, D, L, T): the parameterised knowledge data of Part 3.3 (Sec. 2, Def. 2.2).

N people with unique names, K attributes each. For every attribute there is a fixed "diversity"
set of D distinct chunks, each a string of L tokens over an alphabet of T tokens. A person's value
of an attribute is C chunks, each drawn uniformly from that attribute's D chunks. The knowledge is
then ``N log2(N0/N)`` bits of names, ``N K C log2 D`` bits of values and ``K D log2(T^L / D)``
bits of chunk strings (Part 3.3 Thm. 3.2).

Text layout (our reading; the definition fixes the knowledge, not the wording): a biography is
the name tokens, then for each attribute its key token ``attr{k}`` followed by the C*L value
tokens, attributes in a fresh random order at every exposure (``order="fixed"`` keeps the
canonical order). Name part i draws from its own pool of ``name_pools[i]`` tokens (default
400 x 400 x 1000 as in bioS, so N0 = 1.6e8); the chunk alphabet is separate (``v0 .. v{T-1}``).
Every biography has the same length, ``tokens_per_person``.

Packing, exposure counting, junk rows and the domain token work as in `physlm.data.bios`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from functools import cached_property

import numpy as np
import torch

from physlm.data import config_from, fit_per_row, make_batch
from physlm.data.bios import (
    ExposureSchedule,
    check_step,
    hash_below,
    mix,
    parse_fraction,
    unique_names,
)
from physlm.data.vocab import Vocab

VERSION = "biod-1"
_MASK64 = (1 << 64) - 1
_T_CHUNKS, _T_PEOPLE, _T_ORD, _T_EVAL, _T_JUNK, _T_JPERM, _T_JPEOPLE = range(11, 18)


def _int(name: str, v, lo: int = 1, allow_none: bool = False):
    if allow_none and v is None:
        return
    if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")


@dataclass(frozen=True)
class BioDConfig:
    """bioD(N, K, C, D, L, T) plus the stream parameters (see `physlm.data.bios.BioSConfig`).

    n_people: N. n_attributes: K. chunks: C chunks per value. diversity: D chunks per attribute.
    chunk_len: L tokens per chunk. chunk_vocab: T tokens of the chunk alphabet.
    name_pools: pool size of every name part (N0 is their product).
    """

    n_people: int
    n_attributes: int
    chunks: int
    diversity: int
    chunk_len: int
    chunk_vocab: int
    exposures: int
    batch_size: int
    seq_len: int
    seed: int = 0
    name_pools: tuple[int, ...] = (400, 400, 1000)
    order: str = "shuffle"
    bios_per_row: int | None = None
    junk_fraction: str = "0"
    junk_people: int | None = None
    domain_token: bool = False

    def __post_init__(self):
        for name in ("n_people", "n_attributes", "chunks", "diversity", "chunk_len",
                     "chunk_vocab", "batch_size", "seq_len"):
            _int(name, getattr(self, name))
        _int("exposures", self.exposures, lo=0)
        _int("seed", self.seed, lo=0)
        _int("bios_per_row", self.bios_per_row, allow_none=True)
        _int("junk_people", self.junk_people, allow_none=True)
        pools = tuple(self.name_pools) if isinstance(self.name_pools, list | tuple) else None
        if not pools:
            raise ValueError(f"name_pools must be a non-empty tuple of positive integers, "
                             f"got {self.name_pools!r}")
        for s in pools:
            _int("every name_pools entry", s)
        object.__setattr__(self, "name_pools", tuple(int(s) for s in pools))
        if self.order not in ("shuffle", "fixed"):
            raise ValueError(f"order must be 'shuffle' or 'fixed', got {self.order!r}")
        if self.diversity > self.chunk_vocab ** self.chunk_len:
            raise ValueError(f"diversity D={self.diversity} exceeds the T^L = "
                             f"{self.chunk_vocab}^{self.chunk_len} distinct chunks")
        n0 = math.prod(self.name_pools)
        if self.n_people > n0:
            raise ValueError(f"n_people must be at most the N0={n0} possible names "
                             f"(name_pools={self.name_pools}), got {self.n_people}")
        object.__setattr__(self, "junk_fraction", str(parse_fraction(self.junk_fraction)))
        if self.junk_people is not None:
            if self.junk_fraction == "0":
                raise ValueError("junk_people needs junk_fraction > 0")
            if self.n_people + self.junk_people > n0:
                raise ValueError("n_people + junk_people exceeds the name space")


def sample_chunks(rng: np.random.Generator, d: int, length: int, t: int) -> np.ndarray:
    """D distinct random strings [D, L] over [0, T), uniformly (rejection of repeats)."""
    if d > t ** length:
        raise ValueError(f"diversity D={d} exceeds the T^L = {t}^{length} distinct chunks")
    out = rng.integers(0, t, size=(d, length))
    while True:
        _, first = np.unique(out, axis=0, return_index=True)
        if first.size == d:
            return out
        dup = np.setdiff1d(np.arange(d), first)
        out[dup] = rng.integers(0, t, size=(dup.size, length))


def identifying_prefix(chunks: np.ndarray) -> np.ndarray:
    """For each chunk, the length of its shortest prefix that no other chunk of the set shares.

    Tokens from that position on are fixed once the chunk is identified: their loss (p3) measures
    whether the model stored the chunk string, separately from which chunk a person has.
    """
    d, length = chunks.shape
    u = np.zeros(d, dtype=np.int64)
    for j in range(1, length + 1):
        _, inv, counts = np.unique(chunks[:, :j], axis=0, return_inverse=True, return_counts=True)
        newly = (u == 0) & (counts[inv.ravel()] == 1)
        u[newly] = j
    return u


class BioDStream:
    """bioD as a `physlm.data.BatchSource`, rendered with numpy (fixed-length biographies)."""

    def __init__(self, config: BioDConfig | None = None, **kwargs):
        config = config_from(BioDConfig, config, kwargs)
        self.config = c = config
        k, t = c.n_attributes, c.chunk_vocab
        words = [f"attr{i}" for i in range(k)]
        words += [f"name{p}_{j}" for p, s in enumerate(c.name_pools) for j in range(s)]
        words += [f"v{j}" for j in range(t)]
        self.vocab = v = Vocab(words)
        self.vocab_size = len(v)
        self.attr_tok = np.asarray([v.id(f"attr{i}") for i in range(k)], dtype=np.int64)
        self.name_tok = [np.asarray([v.id(f"name{p}_{j}") for j in range(s)], dtype=np.int64)
                         for p, s in enumerate(c.name_pools)]
        self.value_tok = np.asarray([v.id(f"v{j}") for j in range(t)], dtype=np.int64)
        self.n0 = math.prod(c.name_pools)
        self.n_name = len(c.name_pools)
        self.tokens_per_person = self.n_name + k * (1 + c.chunks * c.chunk_len)
        slot = self.tokens_per_person + 1 + int(c.domain_token)
        self.bios_per_row = fit_per_row(c.seq_len, slot, c.bios_per_row)
        rng = np.random.default_rng([c.seed, _T_CHUNKS])
        # chunk strings as value-token ids: [K, D, L]
        self.chunk_strings = np.stack([sample_chunks(rng, c.diversity, c.chunk_len, t)
                                       for _ in range(k)])
        self.chunk_tok = self.value_tok[self.chunk_strings]
        self.prefix_len = np.stack([identifying_prefix(s) for s in self.chunk_strings])  # [K, D]
        self.names, self.values = self._sample_people(c.n_people, _T_PEOPLE)
        self.junk_names = self.junk_values = None
        if c.junk_people is not None:
            self.junk_names, self.junk_values = self._sample_people(
                c.junk_people, _T_JPEOPLE, exclude=self._name_ids(self.names))
        self.schedule = ExposureSchedule(c.n_people, c.batch_size, self.bios_per_row, c.seed,
                                         parse_fraction(c.junk_fraction))
        self.steps = self.steps_for(c.exposures)

    # -- people -----------------------------------------------------------------------------------

    def _name_ids(self, names: np.ndarray) -> np.ndarray:
        ids = np.zeros(len(names), dtype=np.int64)
        for p, s in enumerate(self.config.name_pools):
            ids = ids * s + names[:, p]
        return ids

    def _split_name_ids(self, ids: np.ndarray) -> np.ndarray:
        cols = []
        for s in reversed(self.config.name_pools):
            cols.append(ids % s)
            ids = ids // s
        return np.stack(cols[::-1], axis=1)

    def _sample_people(self, n: int, tag: int, exclude=None) -> tuple[np.ndarray, np.ndarray]:
        """Names [n, parts] (pool indices) and values [n, K, C] (chunk indices)."""
        c = self.config
        rng = np.random.default_rng([c.seed, tag])
        names = self._split_name_ids(unique_names(rng, n, self.n0, exclude))
        values = rng.integers(0, c.diversity, size=(n, c.n_attributes, c.chunks))
        return names, values

    def _hashed_people(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c = self.config
        names = self._split_name_ids(hash_below(mix(keys, 0), self.n0))
        slots = np.arange(c.n_attributes * c.chunks).reshape(1, c.n_attributes, c.chunks)
        values = hash_below(mix(keys[:, None, None], 1 + slots), c.diversity)
        return names, values

    # -- rendering --------------------------------------------------------------------------------

    def _orders(self, keys: np.ndarray | None, n: int) -> np.ndarray:
        k = self.config.n_attributes
        a = np.arange(k, dtype=np.int64)
        if keys is None:
            return np.broadcast_to(a, (n, k))
        return np.argsort(mix(keys[:, None], a[None, :]), axis=1, kind="stable")

    def render(self, names: np.ndarray, values: np.ndarray, order: np.ndarray) -> np.ndarray:
        """Token ids [n, tokens_per_person] of biographies (names, values, attribute order)."""
        n = len(names)
        name_tok = np.stack([self.name_tok[p][names[:, p]] for p in range(self.n_name)], axis=1)
        rows = np.arange(n)[:, None]
        vals = values[rows, order]  # [n, K, C]
        chunk = self.chunk_tok[order[:, :, None], vals]  # [n, K, C, L]
        body = np.concatenate([self.attr_tok[order][:, :, None], chunk.reshape(n, order.shape[1],
                                                                               -1)], axis=2)
        return np.concatenate([name_tok, body.reshape(n, -1)], axis=1)

    def _pack(self, bios: np.ndarray, dom: np.ndarray, width: int) -> np.ndarray:
        """Rows of ``bios`` [R, k, len]: ``<eos> (<dom>) bio <eos> ...`` padded to ``width``."""
        r, k, length = bios.shape
        v = self.vocab
        parts = []
        if self.config.domain_token:
            parts.append(np.where(dom[:, None, None], v.dom_id, -1) * np.ones((r, k, 1), np.int64))
        parts += [bios, np.full((r, k, 1), v.eos_id, dtype=np.int64)]
        seg = np.concatenate(parts, axis=2).reshape(r, -1)
        row = np.concatenate([np.full((r, 1), v.eos_id, dtype=np.int64), seg], axis=1)
        out = np.full((r, width), v.pad_id, dtype=np.int64)
        if self.config.domain_token:  # junk rows carry no <dom>: squeeze out the -1 placeholders
            for i in range(r):
                toks = row[i][row[i] >= 0]
                out[i, :toks.size] = toks
        else:
            out[:, :row.shape[1]] = row
        return out

    # -- BatchSource ------------------------------------------------------------------------------

    def spec(self) -> dict:
        d = asdict(self.config)
        d["name_pools"] = list(self.config.name_pools)
        return {"kind": "bioD", "version": VERSION, **d, "bios_per_row": self.bios_per_row}

    def steps_for(self, exposures: int) -> int:
        """Steps after which every person has had at least ``exposures`` exposures."""
        return self.schedule.steps_for(exposures)

    def plan(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """(useful[B], who[B, k]), see `physlm.data.bios.ExposureSchedule.plan`."""
        return self.schedule.plan(step, self.config.junk_people, _T_JPERM)

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        c = self.config
        useful, idx = self.schedule.bio_indices(check_step(step))
        _, who = self.plan(step)
        b, k = idx.shape
        names = np.empty((b, k, self.n_name), dtype=np.int64)
        values = np.empty((b, k, c.n_attributes, c.chunks), dtype=np.int64)
        keys = np.empty((b, k), dtype=np.uint64)
        if useful.any():
            p = who[useful]
            names[useful], values[useful] = self.names[p], self.values[p]
            keys[useful] = mix(c.seed, _T_ORD, idx[useful])
        if (~useful).any():
            h = idx[~useful]
            if c.junk_people is None:
                jn, jv = self._hashed_people(mix(c.seed, _T_JUNK, h.ravel()))
                names[~useful] = jn.reshape(-1, k, self.n_name)
                values[~useful] = jv.reshape(-1, k, c.n_attributes, c.chunks)
            else:
                names[~useful] = self.junk_names[who[~useful]]
                values[~useful] = self.junk_values[who[~useful]]
            keys[~useful] = mix(c.seed, _T_JUNK, h, 1)
        flat = b * k
        order = self._orders(keys.ravel() if c.order == "shuffle" else None, flat)
        bios = self.render(names.reshape(flat, -1), values.reshape(flat, c.n_attributes, -1),
                           order).reshape(b, k, -1)
        return make_batch(self._pack(bios, useful, c.seq_len + 1), self.vocab.pad_id)

    # -- evaluation -------------------------------------------------------------------------------

    def eval_batches(self, batch_size: int = 256) -> Iterator[dict[str, torch.Tensor]]:
        """Every person once: ``<eos> (<dom>) bio <eos>``, with the masks of the capacity measure.

        Besides x, y, mask and person: ``name_mask`` (name targets, p1), ``value_mask`` (all C*L
        value targets of every attribute, p2), ``attr`` (attribute of a value target, else -1),
        ``chunk`` (``k*D + d`` at the targets past the chunk's identifying prefix, else -1; p3) and
        ``chunk_start`` (``k*D + d`` at the first target of every chunk occurrence, else -1).
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        c = self.config
        lead = 1 + int(c.domain_token)
        width = self.tokens_per_person + lead + 1
        k_, cl, L = c.n_attributes, c.chunks, c.chunk_len
        for start in range(0, c.n_people, batch_size):
            ids = np.arange(start, min(start + batch_size, c.n_people))
            n = len(ids)
            keys = mix(c.seed, _T_EVAL, ids) if c.order == "shuffle" else None
            order = self._orders(keys, n)
            bios = self.render(self.names[ids], self.values[ids], order)
            packed = self._pack(bios[:, None, :], np.ones(n, dtype=bool), width)
            batch = make_batch(packed, self.vocab.pad_id)
            tp = batch["y"].shape[1]
            # target position of bio token i is lead + i - 1
            name = torch.zeros(n, tp, dtype=torch.bool)
            name[:, lead - 1: lead - 1 + self.n_name] = True
            attr = np.full((n, tp), -1, dtype=np.int64)
            chunk = np.full((n, tp), -1, dtype=np.int64)
            chunk_start = np.full((n, tp), -1, dtype=np.int64)
            vals = self.values[ids][np.arange(n)[:, None], order]  # [n, K, C]
            for s in range(k_):  # slot s holds attribute order[:, s]
                a = order[:, s]
                base = lead - 1 + self.n_name + s * (1 + cl * L) + 1
                attr[:, base: base + cl * L] = a[:, None]
                for j in range(cl):
                    d = vals[:, s, j]
                    cid = a * c.diversity + d
                    pos0 = base + j * L
                    chunk_start[:, pos0] = cid
                    u = self.prefix_len[a, d]  # [n]
                    for i in range(L):
                        sel = i >= u
                        chunk[sel, pos0 + i] = cid[sel]
            attr_t = torch.as_tensor(attr)
            batch.update(name_mask=name, value_mask=attr_t >= 0, attr=attr_t,
                         chunk=torch.as_tensor(chunk), chunk_start=torch.as_tensor(chunk_start),
                         person=torch.as_tensor(ids))
            yield batch

    # -- bookkeeping ------------------------------------------------------------------------------

    def knowledge(self) -> dict:
        """What the capacity measure needs (Part 3.3 Thm. 3.2 / Def. 4.3, bioD form)."""
        c = self.config
        return {"kind": "bioD", "n_people": c.n_people, "n0": self.n0,
                "log2_n0": math.log2(self.n0), "K": c.n_attributes, "C": c.chunks,
                "D": c.diversity, "L": c.chunk_len, "T": c.chunk_vocab}

    @cached_property
    def _used(self) -> torch.Tensor:
        c = self.config
        ids = set(self.attr_tok.tolist()) | {self.vocab.eos_id}
        if c.domain_token:
            ids.add(self.vocab.dom_id)
        for p in range(self.n_name):
            ids |= set(self.name_tok[p].tolist())
        ids |= set(self.chunk_tok.ravel().tolist())
        return torch.tensor(sorted(ids))

    def used_token_ids(self) -> torch.Tensor:
        """Ids the data can feed the model: names, attribute keys, tokens that occur in chunks."""
        return self._used
