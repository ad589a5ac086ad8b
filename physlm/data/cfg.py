"""Part 1's synthetic context-free grammars: the layered cfg3 family, its named members, sampling.

Definition (Part 1, arXiv 2305.13673, Sec. 2 and App. A.1; Part 4.1 App. A.5 for Lano): a grammar
has a root, a stack of non-terminal (NT) levels and a terminal alphabet. Every rule of a level-l
symbol rewrites it into 2 or 3 symbols of level l+1, so a level-l symbol always spans a contiguous
run of level-(l+1) symbols. Sentences are generated top-down, picking one of the symbol's rules
uniformly at random at every NT (no rule probabilities). Within one level no two rules share a
right-hand side. The cfg3 family uses 3 symbols per level, 5 NT levels under the root and the
terminals {1, 2, 3} (official configs: `depth = 6`, `sizes = [1, 3, 3, 3, 3, 3, 3]`).

Token ids follow the official generator (PhysicsLM4 `Lano-cfg/data_cfg.py`): terminals are
1..V, then EOS = V+1, MASK = V+2, SEP = V+3, then NT ids counting upward from the deepest level
(7, 8, 9 for the cfg3 family) to the root (22).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

Rule = tuple[int, ...]


@dataclass(frozen=True)
class Grammar:
    """A layered CFG.

    `sizes[l]` is the number of symbols at level l: level 0 is the root (one symbol), the last
    level is the terminal alphabet. `rules[l][a]` lists the right-hand sides of symbol `a` of level
    l, each a tuple of symbol indices of level l+1. Terminal index v is token id v+1.
    """

    name: str
    sizes: tuple[int, ...]
    rules: tuple[tuple[tuple[Rule, ...], ...], ...]

    def __post_init__(self) -> None:
        if len(self.sizes) < 2 or self.sizes[0] != 1 or min(self.sizes) < 1:
            raise ValueError(
                f"sizes must start with 1 (the root) and list >= 1 symbol for each of at least "
                f"2 levels, got {self.sizes}"
            )
        if len(self.rules) != len(self.sizes) - 1:
            raise ValueError(
                f"rules must have one entry per non-terminal level ({len(self.sizes) - 1}), "
                f"got {len(self.rules)}"
            )
        for level, level_rules in enumerate(self.rules):
            if len(level_rules) != self.sizes[level]:
                raise ValueError(
                    f"rules[{level}] must list {self.sizes[level]} symbols, got {len(level_rules)}"
                )
            for sym, rhs_list in enumerate(level_rules):
                if not rhs_list:
                    raise ValueError(f"symbol {sym} of level {level} has no rules")
                for rhs in rhs_list:
                    if not rhs or not all(0 <= c < self.sizes[level + 1] for c in rhs):
                        raise ValueError(
                            f"rule {rhs} of symbol {sym} at level {level} must be a non-empty "
                            f"tuple of indices in [0, {self.sizes[level + 1]})"
                        )

    @property
    def depth(self) -> int:
        """Number of rule applications from the root to a terminal."""
        return len(self.sizes) - 1

    @property
    def num_terminals(self) -> int:
        return self.sizes[-1]

    @property
    def eos_token(self) -> int:
        """EOS id of the official generator (V+1)."""
        return self.num_terminals + 1

    def symbol_id(self, level: int, index: int) -> int:
        """The official token id of symbol `index` of `level` (terminals 1..V, NTs from V+4 up)."""
        return official_id(self.sizes, level, index)

    @cached_property
    def width_bounds(self) -> tuple[tuple[tuple[int, int], ...], ...]:
        """`width_bounds[l][a]`: the shortest and longest string symbol a of level l derives."""
        bounds: list[tuple[tuple[int, int], ...]] = [((1, 1),) * self.num_terminals]
        for level in range(self.depth - 1, -1, -1):
            below = bounds[0]
            bounds.insert(
                0,
                tuple(
                    (
                        min(sum(below[c][0] for c in rhs) for rhs in rhs_list),
                        max(sum(below[c][1] for c in rhs) for rhs in rhs_list),
                    )
                    for rhs_list in self.rules[level]
                ),
            )
        return tuple(bounds)

    @cached_property
    def mean_length(self) -> float:
        """Expected sentence length under uniform rule choice (exact, by recursion)."""
        return self._expectations[0]

    @cached_property
    def _expectations(self) -> tuple[float, float]:
        """(E[length], E[-log P(derivation)]) of the root under uniform rule choice."""
        length = [1.0] * self.num_terminals
        nll = [0.0] * self.num_terminals
        for level in range(self.depth - 1, -1, -1):
            new_len, new_nll = [], []
            for rhs_list in self.rules[level]:
                k = len(rhs_list)
                new_len.append(sum(sum(length[c] for c in rhs) for rhs in rhs_list) / k)
                new_nll.append(math.log(k) + sum(sum(nll[c] for c in rhs) for rhs in rhs_list) / k)
            length, nll = new_len, new_nll
        return length[0], nll[0]

    @property
    def nll_per_token(self) -> float:
        """E[-log P(derivation)] / E[length]: the scale the exact-probability DP rescales by."""
        length, nll = self._expectations
        return nll / length

    def num_rules(self) -> int:
        return sum(len(r) for level in self.rules for r in level)

    def describe(self) -> str:
        """The rules in the paper's notation, official ids, one NT per line."""
        lines = []
        for level, level_rules in enumerate(self.rules):
            for sym, rhs_list in enumerate(level_rules):
                alts = " | ".join(
                    " ".join(str(self.symbol_id(level + 1, c)) for c in rhs) for rhs in rhs_list
                )
                lines.append(f"{self.symbol_id(level, sym)} -> {alts}")
        return "\n".join(lines)


def official_id(sizes: tuple[int, ...], level: int, index: int) -> int:
    """Official numbering: terminals 1..V, three reserved ids, then NTs from the deepest up."""
    depth = len(sizes) - 1
    if not 0 <= level <= depth or not 0 <= index < sizes[level]:
        raise ValueError(f"no symbol {index} at level {level} of sizes {sizes}")
    if level == depth:
        return index + 1
    return sizes[-1] + 3 + sum(sizes[level + 1 : depth]) + index + 1


def _check_range(name: str, value: tuple[int, int], minimum: int) -> tuple[int, int]:
    if (
        not isinstance(value, tuple | list)
        or len(value) != 2
        or not all(isinstance(v, int) for v in value)
        or not minimum <= value[0] <= value[1]
    ):
        raise ValueError(f"{name} must be a pair (lo, hi) of ints with {minimum} <= lo <= hi, "
                         f"got {value!r}")
    return int(value[0]), int(value[1])


def random_grammar(
    seed: int,
    sizes: tuple[int, ...] = (1, 3, 3, 3, 3, 3, 3),
    num_rules: tuple[int, int] = (3, 4),
    rule_len: tuple[int, int] = (2, 3),
    distinct_symbols: bool = False,
    name: str | None = None,
) -> Grammar:
    """A seeded member of the family (Part 1 App. A.1; official `CFG_Config.build_graph`).

    Each NT gets a uniform number of rules in `num_rules`; each rule a uniform length in
    `rule_len` and uniform symbols of the next level; a rule whose right side already occurs in
    the level is redrawn (`disallow_duplicate_seq`). `distinct_symbols` forbids a symbol twice in
    one right side (`disallow_duplicate_sym`, set for cfg3b). The defaults give cfg3f's shape.
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    sizes = tuple(sizes)
    if len(sizes) < 2 or sizes[0] != 1 or not all(isinstance(s, int) and s >= 1 for s in sizes):
        raise ValueError(
            f"sizes must be ints >= 1 for at least 2 levels, starting with 1 (the root); "
            f"got {sizes}"
        )
    deg_lo, deg_hi = _check_range("num_rules", num_rules, 1)
    len_lo, len_hi = _check_range("rule_len", rule_len, 1)
    for level in range(len(sizes) - 1):
        below = sizes[level + 1]
        if distinct_symbols and len_hi > below:
            raise ValueError(
                f"rule_len up to {len_hi} with distinct_symbols needs >= {len_hi} symbols at "
                f"level {level + 1}, sizes has {below}"
            )
        available = sum(
            math.perm(below, k) if distinct_symbols else below**k for k in range(len_lo, len_hi + 1)
        )
        if available < sizes[level] * deg_hi:
            raise ValueError(
                f"num_rules={num_rules} needs up to {sizes[level] * deg_hi} distinct right sides "
                f"at level {level}, but rule_len={rule_len} over {below} symbols allows "
                f"{available}"
            )
    rng = np.random.default_rng(seed)
    rules = []
    for level in range(len(sizes) - 1):
        below = sizes[level + 1]
        seen: set[Rule] = set()
        level_rules = []
        for _ in range(sizes[level]):
            rhs_list = []
            for _ in range(int(rng.integers(deg_lo, deg_hi + 1))):
                while True:
                    k = int(rng.integers(len_lo, len_hi + 1))
                    if distinct_symbols:
                        rhs = tuple(int(c) for c in rng.permutation(below)[:k])
                    else:
                        rhs = tuple(int(c) for c in rng.integers(0, below, size=k))
                    if rhs not in seen:
                        break
                seen.add(rhs)
                rhs_list.append(rhs)
            level_rules.append(tuple(rhs_list))
        rules.append(tuple(level_rules))
    return Grammar(name or f"family-seed{seed}", sizes, tuple(rules))


def grammar_from_text(name: str, sizes: tuple[int, ...], text: str) -> Grammar:
    """Parse rules written as `A -> B C | D E F` lines with the official ids (see `symbol_id`)."""
    where = {
        official_id(sizes, lv, i): (lv, i) for lv in range(len(sizes)) for i in range(sizes[lv])
    }
    found: dict[tuple[int, int], tuple[Rule, ...]] = {}
    for line in text.strip().splitlines():
        head, _, body = line.partition("->")
        level, sym = where[int(head)]
        alts = []
        for alt in body.split("|"):
            kids = [where[int(tok)] for tok in alt.split()]
            if any(kl != level + 1 for kl, _ in kids):
                raise ValueError(f"{name}: rule {line.strip()!r} skips a level")
            alts.append(tuple(k for _, k in kids))
        found[(level, sym)] = tuple(alts)
    rules = tuple(
        tuple(found[(lv, i)] for i in range(sizes[lv])) for lv in range(len(sizes) - 1)
    )
    return Grammar(name, sizes, rules)


# The five cfg3 grammars of Part 1 (arXiv 2305.13673; the synthetic CFGs are detailed in its
# App. A.1), in the official ids. The rules follow the public transcription in PolarState/CFG
# (`cfg/grammar/cfg_defines.py`); the official JSON configs (PhysicsLM4 `Lano-cfg/configs/`) were
# not consulted directly. Cross-checks against the official sources: cfg3f's root line is printed in
# Part 4.1 App. A.5 (22 -> 20 21 | 20 19 21 | 21 19 19 | 20 20); the rule counts (32, 32, 39, 48,
# 54) and the exact mean lengths (276, 308, 236, 252, 250) match the counts and sampled means
# (274, 310, 238, 254, 250) of the official configs (tests/test_cfg.py).
_CFG3_SIZES = (1, 3, 3, 3, 3, 3, 3)
_CFG3_TEXT = {
    "cfg3b": """
22 -> 21 20 | 20 19
21 -> 18 16 | 16 18 17
20 -> 17 16 18 | 16 17
19 -> 16 17 18 | 17 18 16
18 -> 15 14 13 | 14 13
17 -> 14 13 15 | 15 13 14
16 -> 15 13 | 13 15 14
15 -> 12 11 10 | 11 12 10
14 -> 11 10 12 | 10 11 12
13 -> 11 12 | 12 11
12 -> 8 9 7 | 9 7 8
11 -> 8 7 9 | 7 8 9
10 -> 7 9 8 | 9 8 7
9 -> 3 2 1 | 2 1
8 -> 3 2 | 3 1 2
7 -> 3 1 | 1 2 3
""",
    "cfg3i": """
22 -> 19 19 20 | 21 20 19
21 -> 16 16 18 | 18 17
20 -> 17 16 17 | 18 18
19 -> 18 16 18 | 16 16
18 -> 14 15 13 | 14 15
17 -> 15 15 | 15 14
16 -> 13 13 | 14 14
15 -> 11 11 10 | 11 10 12
14 -> 10 10 10 | 10 10
13 -> 12 11 | 10 12 11
12 -> 7 9 9 | 8 7
11 -> 7 7 7 | 7 7 8
10 -> 8 7 7 | 9 9
9 -> 1 1 3 | 1 2
8 -> 1 1 | 2 2
7 -> 3 1 2 | 2 3 1
""",
    "cfg3h": """
22 -> 20 20 21 | 19 21
21 -> 17 17 18 | 17 18 17
20 -> 18 16 | 17 16
19 -> 16 17 | 18 17
18 -> 15 13 13 | 15 14 14 | 14 15 15
17 -> 13 14 | 15 13 15
16 -> 14 13 | 15 13
15 -> 10 12 | 11 11 10
14 -> 10 12 12 | 10 10 | 12 12 10
13 -> 12 11 | 11 10
12 -> 7 9 | 8 7 | 9 8
11 -> 8 7 7 | 7 7 | 7 9 9
10 -> 8 7 9 | 9 7 | 8 8
9 -> 2 1 3 | 1 3 3
8 -> 1 2 | 3 3 1 | 1 3
7 -> 2 3 2 | 1 2 3 | 1 3 1
""",
    "cfg3g": """
22 -> 19 20 | 20 20 19 | 20 19 21
21 -> 16 16 | 16 16 18 | 18 16
20 -> 16 17 | 18 18 | 16 17 17
19 -> 17 17 16 | 18 17 16 | 18 16 17
18 -> 15 13 | 15 15 | 14 13 15
17 -> 14 13 14 | 14 15 13 | 15 14
16 -> 14 13 13 | 13 14 | 13 13
15 -> 10 11 | 12 10 10 | 12 11
14 -> 11 12 | 10 11 10 | 10 10
13 -> 10 12 | 11 11 11 | 11 11
12 -> 7 9 | 7 8 | 9 9 9
11 -> 8 8 9 | 9 7 | 8 9 7
10 -> 8 8 8 | 7 7 7 | 7 7
9 -> 2 3 3 | 2 3 | 2 1
8 -> 1 3 2 | 1 3 | 3 3 1
7 -> 2 3 1 | 1 1 | 2 2
""",
    "cfg3f": """
22 -> 20 21 | 20 19 21 | 21 19 19 | 20 20
21 -> 18 17 | 17 16 | 16 17 18 | 16 18
20 -> 16 16 | 16 17 | 17 16 18
19 -> 18 16 18 | 17 18 | 18 18
18 -> 14 15 13 | 15 13 13 | 13 15
17 -> 15 14 13 | 14 15 | 15 14
16 -> 15 15 | 13 15 13 | 14 13 | 14 14
15 -> 10 11 11 | 11 11 10 | 10 10 | 12 12 11
14 -> 10 12 | 12 10 12 | 12 11 | 10 12 12
13 -> 11 12 | 12 11 12 | 10 12 11
12 -> 7 9 7 | 9 8 | 8 8 9
11 -> 8 8 | 9 7 | 9 7 7
10 -> 8 9 9 | 9 7 9 | 7 9 9
9 -> 1 2 1 | 3 3 | 1 1
8 -> 3 1 1 | 1 2 | 3 3 1
7 -> 2 2 1 | 3 2 2 | 3 1 2 | 3 2
""",
}
NAMED_GRAMMARS = tuple(_CFG3_TEXT)


def named_grammar(name: str) -> Grammar:
    """One of Part 1's grammars by name: cfg3b, cfg3i, cfg3h, cfg3g or cfg3f."""
    if name not in _CFG3_TEXT:
        raise ValueError(f"name must be one of {NAMED_GRAMMARS}, got {name!r}")
    return grammar_from_text(name, _CFG3_SIZES, _CFG3_TEXT[name])


@dataclass(frozen=True)
class CFGSamples:
    """Sentences with their parse trees, padded to the longest sentence.

    tokens[i, :lengths[i]] is sentence i (token ids 1..V, padding 0). For every token and every
    NT level l (0 = root .. depth-1), `ancestors[i, l, t]` is the index of its level-l ancestor
    symbol (-1 on padding) and `nodes[i, l, t]` numbers that ancestor's occurrence in the sentence,
    because symbols alone do not pin the tree (a symbol can repeat next to itself).
    `boundaries[i, l, t]` marks the last token of each level-l subtree. These are Part 1's probing
    targets (NT ancestors and NT ends; official `generate_onedata` returns the same information).
    """

    tokens: np.ndarray
    lengths: np.ndarray
    ancestors: np.ndarray
    nodes: np.ndarray
    boundaries: np.ndarray

    def sentences(self) -> list[list[int]]:
        return [row[:n].tolist() for row, n in zip(self.tokens, self.lengths, strict=True)]


def _rule_tables(grammar: Grammar, level: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    level_rules = grammar.rules[level]
    max_deg = max(len(r) for r in level_rules)
    max_len = max(len(rhs) for r in level_rules for rhs in r)
    table = np.full((len(level_rules), max_deg, max_len), -1, dtype=np.int64)
    lens = np.zeros((len(level_rules), max_deg), dtype=np.int64)
    for a, rhs_list in enumerate(level_rules):
        for k, rhs in enumerate(rhs_list):
            table[a, k, : len(rhs)] = rhs
            lens[a, k] = len(rhs)
    degrees = np.array([len(r) for r in level_rules], dtype=np.int64)
    return table, lens, degrees


def sample(grammar: Grammar, n: int, seed: int) -> CFGSamples:
    """Draw `n` sentences by top-down expansion with uniform rule choice, all in one pass per level.

    Same distribution as the official `generate_onedata` (Part 1 App. A.1); the random stream
    differs. Deterministic in (grammar, n, seed).
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    rng = np.random.default_rng(seed)
    syms = np.zeros(n, dtype=np.int64)
    level_syms = [syms]
    parents = []
    for level in range(grammar.depth):
        table, lens, degrees = _rule_tables(grammar, level)
        choice = rng.integers(0, degrees[syms])
        kid_len = lens[syms, choice]
        kids = table[syms, choice]
        syms = kids[np.arange(kids.shape[1])[None, :] < kid_len[:, None]]
        parents.append(np.repeat(np.arange(len(kid_len)), kid_len))
        level_syms.append(syms)
    total = len(syms)
    node = [np.arange(total)]
    for level in range(grammar.depth - 1, -1, -1):
        node.insert(0, parents[level][node[0]])
    sent = node[0]
    lengths = np.bincount(sent, minlength=n).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    pos = np.arange(total) - offsets[sent]
    width = int(lengths.max())
    tokens = np.zeros((n, width), dtype=np.int64)
    tokens[sent, pos] = syms + 1
    shape = (n, grammar.depth, width)
    ancestors = np.full(shape, -1, dtype=np.int16)
    nodes = np.full(shape, -1, dtype=np.int32)
    boundaries = np.zeros(shape, dtype=bool)
    for level in range(grammar.depth):
        here = node[level]
        ancestors[sent, level, pos] = level_syms[level][here]
        nodes[sent, level, pos] = here - here[offsets][sent]
        boundaries[sent, level, pos] = np.append(here[1:] != here[:-1], True)
    return CFGSamples(tokens, lengths, ancestors, nodes, boundaries)
