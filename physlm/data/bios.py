"""bioS(N): synthetic biographies of Part 3.1 (App. A.1) and Part 3.3 (Sec. 2).

Each of N people has a unique full name (400 first x 400 middle x 1000 last names, rejection
sampled) and independent uniform attributes: a pronoun (2), a birth date (12 months x 28 days x
years 1900-2099), a birth city (200), a university (300), a major (100) and an employer (263). The
work city is the employer's headquarters, so it carries no extra knowledge. A biography is six
sentences, one per attribute, each from about fifty templates; only the first sentence names the
person, the others use the pronoun.

Part 3.3 trains on a fresh rendering at every exposure: templates re-sampled and sentence order
shuffled. Part 3.1 variants (``single``, ``multiM``, ``permute``, ``fullname``) are options.

Tokenization (our choice; the papers use GPT-2 BPE): a closed word-level vocabulary. A multi-word
value is one token per word, and punctuation is its own token, so "Port Velmora, KX" is four
tokens. A birth date is ``Month Day , Year`` (four tokens; the comma is not a value token). Names
are one token per name part.

Packing (our choice; the paper concatenates bios with ``<eos>`` and cuts 512-token windows): every
row holds a fixed number of whole biographies, each preceded by ``<eos>``, and is padded at the
end. This makes the data of a step a pure function of (seed, step) and the exposure count exact:
the g-th biography of the run is person ``perm_e[g mod N]`` with ``e = g // N`` and ``perm_e`` a
seeded permutation, so after e epochs every person has been seen exactly e times.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from functools import lru_cache

import numpy as np
import torch

from physlm.data import config_from, fit_per_row, make_batch
from physlm.data.bios_pools import (
    DAYS,
    MONTHS,
    N_CITIES,
    N_EMPLOYERS,
    N_LAST,
    N_MAJORS,
    N_MIDDLE,
    N_UNIVERSITIES,
    PRONOUNS,
    YEARS,
    BioSPools,
    build_pools,
)
from physlm.data.bios_templates import TEMPLATES
from physlm.data.vocab import Vocab, split_words

ATTRIBUTES: tuple[str, ...] = tuple(TEMPLATES)  # Part 3.1 single order: date, city, univ, major,
# employer, work city
# Value spans of one rendered bio. COUNTED are the tokens of p2 (Part 3.3 Def. 4.3); the work
# city is left out because it follows from the employer.
SPANS: tuple[str, ...] = ("name", "pronoun", "birth_month", "birth_day", "birth_year",
                          "birth_city", "university", "major", "employer", "work_city")
COUNTED: tuple[str, ...] = ("pronoun", "birth_month", "birth_day", "birth_year", "birth_city",
                            "university", "major", "employer")
VERSION = "bios-1"

# tags that separate the independent random streams derived from one seed
_T_PEOPLE, _T_PERM, _T_TPL, _T_ORD, _T_EVAL, _T_JUNK, _T_JPERM, _T_JPEOPLE = range(1, 9)


# ---------------------------------------------------------------------------------------------
# counter-based hashing: every random choice is a pure function of its coordinates


_G = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_MASK64 = (1 << 64) - 1


def _splitmix(z: np.ndarray) -> np.ndarray:
    z = z + _G
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def _u64(p) -> np.ndarray:
    if isinstance(p, int | np.integer):
        return np.atleast_1d(np.uint64(int(p) & _MASK64))
    a = np.asarray(p)
    if a.dtype != np.uint64:
        a = a.astype(np.int64).astype(np.uint64)  # negative values wrap, as in C
    return np.atleast_1d(a)


def mix(*parts) -> np.ndarray:
    """A 64-bit hash of broadcast integer arrays (splitmix64 chain); always at least 1-d."""
    arrs = [_u64(p) for p in parts]
    shape = np.broadcast_shapes(*(a.shape for a in arrs))
    h = np.zeros(shape, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for a in arrs:
            h = _splitmix(h ^ a)
    return h


def hash_below(h: np.ndarray, n) -> np.ndarray:
    """Map hashes to [0, n) (n may be an array); the modulo bias is below 2^-40."""
    return (h % np.asarray(n, dtype=np.uint64)).astype(np.int64)


# ---------------------------------------------------------------------------------------------
# exposure schedule: shared by bioS and bioD


def parse_fraction(value, name: str = "junk_fraction") -> Fraction:
    """Exact fraction in [0, 1) from a float, int, str ("7/8") or Fraction."""
    try:
        f = Fraction(value) if not isinstance(value, float) else Fraction(value).limit_denominator(
            10_000)
    except (TypeError, ValueError, ZeroDivisionError):
        raise ValueError(
            f"{name} must be a number or a fraction like '7/8', got {value!r}") from None
    if not 0 <= f < 1:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return f


class ExposureSchedule:
    """Where each biography of a run goes: pure integer arithmetic on (seed, step).

    Rows are useful or junk. With useful share u = 1 - junk_fraction, global row q = step*B + r is
    useful iff floor((q+1)u) > floor(qu), so every prefix of the run has the exact share
    (Part 3.3 Sec. 10 / App. E: each 512-token window holds only useful or only junk data).
    Useful row number j holds useful biographies g = j*k .. j*k+k-1.
    """

    def __init__(self, n_people: int, batch_size: int, bios_per_row: int, seed: int,
                 junk_fraction: Fraction = Fraction(0)):
        self.n, self.b, self.k, self.seed = n_people, batch_size, bios_per_row, seed
        self.u = 1 - junk_fraction
        self._perms: dict[tuple[int, int, int], np.ndarray] = {}

    def rows(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """(useful[B], ordinal[B]): row kinds of a step and their rank among rows of that kind."""
        q = step * self.b + np.arange(self.b, dtype=np.int64)
        num, den = self.u.numerator, self.u.denominator
        before, after = (q * num) // den, ((q + 1) * num) // den
        useful = after > before
        return useful, np.where(useful, before, q - before)

    def bio_indices(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """(useful[B], index[B, k]): the global useful (g) or junk (h) index of every biography."""
        useful, ordinal = self.rows(step)
        return useful, ordinal[:, None] * self.k + np.arange(self.k, dtype=np.int64)[None, :]

    def permutation(self, tag: int, epoch: int, n: int) -> np.ndarray:
        key = (tag, epoch, n)
        if key not in self._perms:
            if len(self._perms) >= 3:  # a step spans at most two epochs
                self._perms.pop(next(iter(self._perms)))
            rng = np.random.default_rng([self.seed & _MASK64, tag, epoch])
            self._perms[key] = rng.permutation(n)
        return self._perms[key]

    def people(self, g: np.ndarray, n: int | None = None, tag: int = _T_PERM) -> np.ndarray:
        """Person of the g-th biography: epoch e = g // n, then a seeded permutation of epoch e."""
        n = self.n if n is None else n
        g = np.asarray(g, dtype=np.int64)
        out = np.empty_like(g)
        epochs = g // n
        for e in np.unique(epochs):
            sel = epochs == e
            out[sel] = self.permutation(tag, int(e), n)[g[sel] % n]
        return out

    def plan(
        self, step: int, junk_people: int | None, junk_tag: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """(useful[B], who[B, k]): person index of every useful biography of a step, and the junk
        index (a person of a fixed junk pool of `junk_people`, or else the fresh junk counter)
        of every junk biography."""
        useful, idx = self.bio_indices(check_step(step))
        who = idx.copy()
        if useful.any():
            who[useful] = self.people(idx[useful])
        if (~useful).any() and junk_people is not None:
            who[~useful] = self.people(idx[~useful], junk_people, junk_tag)
        return useful, who

    def steps_for(self, exposures: int) -> int:
        """Fewest steps after which every person has been seen at least ``exposures`` times."""
        if not isinstance(exposures, int | np.integer) or exposures < 0:
            raise ValueError(f"exposures must be an integer >= 0, got {exposures!r}")
        rows_needed = -(-int(exposures) * self.n // self.k)
        return math.ceil(Fraction(rows_needed) / (self.b * self.u))


def check_step(step) -> int:
    if isinstance(step, bool) or not isinstance(step, int | np.integer) or step < 0:
        raise ValueError(f"step must be an integer >= 0, got {step!r}")
    return int(step)


def pack_rows(bios: list[list[list[int]]], width: int, pad_id: int, eos_id: int,
              prefix: list[list[int | None]] | None = None) -> np.ndarray:
    """Rows ``[<eos>, (prefix), bio, <eos>, (prefix), bio, ..., pad, ...]`` of length width."""
    out = np.full((len(bios), width), pad_id, dtype=np.int64)
    for r, row in enumerate(bios):
        toks = [eos_id]
        for j, bio in enumerate(row):
            if prefix is not None and prefix[r][j] is not None:
                toks.append(prefix[r][j])
            toks.extend(bio)
            toks.append(eos_id)
        if len(toks) > width:
            raise AssertionError(f"row of {len(toks)} tokens does not fit width {width}")
        out[r, :len(toks)] = toks
    return out


# ---------------------------------------------------------------------------------------------
# the world: pools, templates and their tokens


@dataclass(frozen=True)
class Template:
    mid: tuple[int, ...]  # tokens between the subject and the value
    tail: tuple[int, ...]  # tokens after the value, including the final "."


class BioSWorld:
    """Pools, templates and vocabulary of bioS, tokenized once."""

    def __init__(self, pools: BioSPools):
        self.pools = pools
        words: set[str] = set(MONTHS) | set(DAYS) | set(YEARS) | set(PRONOUNS) | {",", "."}
        for pool in (pools.first, pools.middle, pools.last, pools.cities, pools.universities,
                     pools.majors, pools.employers):
            for v in pool:
                words.update(split_words(v))
        for ts in TEMPLATES.values():
            for t in ts:
                words.update(split_words(t.replace("{S}", " ").replace("{V}", " ")))
        self.vocab = Vocab(words)
        v = self.vocab
        enc = v.encode
        self.first = [v.id(w) for w in pools.first]
        self.middle = [v.id(w) for w in pools.middle]
        self.last = [v.id(w) for w in pools.last]
        self.pronoun = [v.id(w) for w in PRONOUNS]
        self.month = [v.id(w) for w in MONTHS]
        self.day = [v.id(w) for w in DAYS]
        self.year = [v.id(w) for w in YEARS]
        self.comma = v.id(",")
        self.city = [enc(c) for c in pools.cities]
        self.university = [enc(u) for u in pools.universities]
        self.major = [enc(m) for m in pools.majors]
        self.employer = [enc(e) for e in pools.employers]
        self.hq = np.asarray(pools.employer_hq, dtype=np.int64)
        self.templates: list[list[Template]] = []
        for a in ATTRIBUTES:
            row = []
            for t in TEMPLATES[a]:
                i = t.index("{V}")
                row.append(Template(tuple(enc(t[4:i])), tuple(enc(t[i + 3:]))))
            self.templates.append(row)
        self.n_templates = np.asarray([len(t) for t in self.templates], dtype=np.int64)
        value_max = [4, max(map(len, self.city)), max(map(len, self.university)),
                     max(map(len, self.major)), max(map(len, self.employer)),
                     max(map(len, self.city))]
        # longest sentence bodies (all but the subject), for the longest-biography bound
        self._max_body = sum(max(len(t.mid) + len(t.tail) for t in ts) + vm
                             for ts, vm in zip(self.templates, value_max, strict=True))
        blob = json.dumps([asdict(pools), TEMPLATES, v.itos], sort_keys=True).encode()
        self.digest = hashlib.sha256(blob).hexdigest()[:12]

    def max_bio_len(self, fullname: bool = False) -> int:
        """Tokens of the longest possible biography (3-token name, 1-token pronoun subjects)."""
        n = len(ATTRIBUTES)
        return self._max_body + (3 * n if fullname else 3 + (n - 1))

    @property
    def n0(self) -> int:
        return self.pools.n_names

    @property
    def log2_s0(self) -> float:
        """log2 of the number of attribute combinations (Part 3.3 Def. 4.3): ~47.59 bits."""
        sizes = (len(PRONOUNS), len(MONTHS) * len(DAYS) * len(YEARS), N_CITIES, N_UNIVERSITIES,
                 N_MAJORS, N_EMPLOYERS)
        return float(sum(math.log2(s) for s in sizes))


@lru_cache(maxsize=2)
def bios_world() -> BioSWorld:
    """The one bioS world (deterministic; built once per process)."""
    return build_world()


def build_world() -> BioSWorld:
    return BioSWorld(build_pools())


# ---------------------------------------------------------------------------------------------
# people


FIELDS = ("first", "middle", "last", "pronoun", "month", "day", "year", "birth_city",
          "university", "major", "employer")


@dataclass(frozen=True)
class BioSPeople:
    """Indices into the pools, one entry per person (numpy int64 arrays of equal length)."""

    first: np.ndarray
    middle: np.ndarray
    last: np.ndarray
    pronoun: np.ndarray
    month: np.ndarray
    day: np.ndarray
    year: np.ndarray
    birth_city: np.ndarray
    university: np.ndarray
    major: np.ndarray
    employer: np.ndarray
    work_city: np.ndarray = field(repr=False)

    def __len__(self) -> int:
        return len(self.first)

    def name_ids(self) -> np.ndarray:
        """Full-name index in [0, N0): (first * 400 + middle) * 1000 + last."""
        return (self.first * N_MIDDLE + self.middle) * N_LAST + self.last

    def take(self, idx: np.ndarray) -> BioSPeople:
        return BioSPeople(**{f: getattr(self, f)[idx] for f in (*FIELDS, "work_city")})


def _attributes(draw, n: int, hq: np.ndarray) -> dict[str, np.ndarray]:
    sizes = dict(pronoun=len(PRONOUNS), month=len(MONTHS), day=len(DAYS), year=len(YEARS),
                 birth_city=N_CITIES, university=N_UNIVERSITIES, major=N_MAJORS,
                 employer=N_EMPLOYERS)
    out = {k: draw(k, s) for k, s in sizes.items()}
    out["work_city"] = hq[out["employer"]]
    return out


def unique_names(rng: np.random.Generator, n: int, n0: int,
                 exclude: np.ndarray | None = None) -> np.ndarray:
    """n distinct ids in [0, n0), uniformly, by rejection sampling; none of them in ``exclude``."""
    head = np.unique(exclude) if exclude is not None else np.empty(0, dtype=np.int64)
    if n < 0 or n + head.size > n0:
        raise ValueError(f"cannot draw {n} unique names from {n0 - head.size} free names")
    ids = head.astype(np.int64)
    while ids.size < n + head.size:
        cand = rng.integers(0, n0, size=n + head.size - ids.size + 16)
        both = np.concatenate([ids, cand])
        _, first = np.unique(both, return_index=True)
        ids = both[np.sort(first)][: n + head.size]
    return ids[head.size:]


def sample_people(n: int, seed: int, world: BioSWorld, tag: int = _T_PEOPLE,
                  exclude: np.ndarray | None = None) -> BioSPeople:
    """N people with unique full names and independent uniform attributes (Part 3.1 App. A.1)."""
    rng = np.random.default_rng([seed & _MASK64, tag])
    p = world.pools
    ids = unique_names(rng, n, world.n0, exclude)
    attrs = _attributes(lambda k, s: rng.integers(0, s, size=n), n, world.hq)
    return BioSPeople(first=ids // (len(p.middle) * len(p.last)),
                      middle=(ids // len(p.last)) % len(p.middle), last=ids % len(p.last),
                      **attrs)


def hashed_people(keys: np.ndarray, world: BioSWorld) -> BioSPeople:
    """Fresh random people, one per key: the junk of bioS(N') with N' so large none repeats."""
    p = world.pools
    keys = np.asarray(keys, dtype=np.uint64)
    ids = hash_below(mix(keys, 0), world.n0)
    attrs = _attributes(lambda k, s: hash_below(mix(keys, 1 + FIELDS.index(k)), s), len(keys),
                        world.hq)
    return BioSPeople(first=ids // (len(p.middle) * len(p.last)),
                      middle=(ids // len(p.last)) % len(p.middle), last=ids % len(p.last),
                      **attrs)


# ---------------------------------------------------------------------------------------------
# rendering


def render(world: BioSWorld, person: tuple[int, ...], tpl: list[int], order: list[int],
           fullname: bool, spans: dict[str, tuple[int, int]] | None = None) -> list[int]:
    """Token ids of one biography. ``person`` holds the indices of FIELDS plus the work city.

    ``tpl[a]`` is the template of attribute a, ``order`` the sentence order. If ``spans`` is given
    it receives ``name -> (start, end)`` etc. for the first occurrence of each value.
    """
    (first, middle, last, pron, month, day, year, bcity, univ, major, emp, wcity) = person
    w = world
    name = [w.first[first], w.middle[middle], w.last[last]]
    pro = [w.pronoun[pron]]
    values = ([w.month[month], w.day[day], w.comma, w.year[year]], w.city[bcity],
              w.university[univ], w.major[major], w.employer[emp], w.city[wcity])
    out: list[int] = []
    for pos, a in enumerate(order):
        t = w.templates[a][tpl[a]]
        if spans is not None:
            if pos == 0:
                spans["name"] = (len(out), len(out) + 3)
            elif pos == 1 and not fullname:
                spans["pronoun"] = (len(out), len(out) + 1)
        out.extend(name if pos == 0 or fullname else pro)
        _attribute_sentence(out, t, a, values, spans)
    return out


def _attribute_sentence(out: list[int], t, a: int, values, spans: dict | None) -> None:
    """Append the rest of attribute `a`'s sentence after its subject, recording value spans."""
    out.extend(t.mid)
    if spans is not None:
        s = len(out)
        if a == 0:
            spans["birth_month"], spans["birth_day"] = (s, s + 1), (s + 1, s + 2)
            spans["birth_year"] = (s + 3, s + 4)
        else:
            spans[ATTRIBUTES[a]] = (s, s + len(values[a]))
    out.extend(values[a])
    out.extend(t.tail)


def _choices(world: BioSWorld, tpl_keys: np.ndarray, ord_keys: np.ndarray | None
             ) -> tuple[np.ndarray, np.ndarray]:
    """Template index [n, 6] and sentence order [n, 6] from per-bio keys (order fixed if None)."""
    a = np.arange(len(ATTRIBUTES), dtype=np.int64)
    tpl = hash_below(mix(tpl_keys[:, None], a[None, :]), world.n_templates[None, :])
    if ord_keys is None:
        order = np.broadcast_to(a, tpl.shape)
    else:
        order = np.argsort(mix(ord_keys[:, None], a[None, :]), axis=1, kind="stable")
    return tpl, order


def _rows_of(people: BioSPeople) -> list[tuple[int, ...]]:
    cols = [getattr(people, f) for f in (*FIELDS, "work_city")]
    return list(zip(*(c.tolist() for c in cols), strict=True))


# ---------------------------------------------------------------------------------------------
# the stream


@dataclass(frozen=True)
class BioSConfig:
    """Every parameter of a bioS training stream.

    n_people: N. exposures: passes over every person (sets ``steps``). batch_size: rows per step.
    seq_len: tokens per row. bios_per_row: fixed biographies per row (None: as many as always fit).
    order: "shuffle" (Part 3.3, Part 3.1 permute) or "fixed" (Part 3.1 single order).
    template_variants / order_variants: None re-renders at every exposure (Part 3.3); an integer M
    gives each person M fixed renderings cycled epoch by epoch (Part 3.1 single: 1, multi5: 5).
    fullname: the full name replaces every pronoun (Part 3.1 fullname).
    junk_fraction: share of rows holding junk biographies (Part 3.3 Results 10-11 use 7/8).
    junk_people: None for fresh random junk people at every junk biography (bioS(N') with N'
    huge), or N' for a fixed junk population (Result 11's repetitive junk, N' = 1K).
    domain_token: put ``<dom>`` before every useful biography (Part 3.3 Result 12).
    avoid: (n_people, seed) of another population whose full names this one never takes, so two
    populations can share one pretraining (Part 3.1 Sec. 7); names are redrawn only where they
    would collide, so a population that meets none draws exactly what it would alone.
    """

    n_people: int
    exposures: int
    batch_size: int
    seq_len: int
    seed: int = 0
    bios_per_row: int | None = None
    order: str = "shuffle"
    template_variants: int | None = None
    order_variants: int | None = None
    fullname: bool = False
    junk_fraction: str = "0"
    junk_people: int | None = None
    domain_token: bool = False
    avoid: tuple[int, int] | None = None

    def __post_init__(self):
        def positive(name, allow_none=False):
            v = getattr(self, name)
            if allow_none and v is None:
                return
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")

        for name in ("n_people", "batch_size", "seq_len"):
            positive(name)
        for name in ("bios_per_row", "template_variants", "order_variants", "junk_people"):
            positive(name, allow_none=True)
        if isinstance(self.exposures, bool) or not isinstance(self.exposures, int | np.integer) \
                or self.exposures < 0:
            raise ValueError(f"exposures must be an integer >= 0, got {self.exposures!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int | np.integer) \
                or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        if self.order not in ("shuffle", "fixed"):
            raise ValueError(f"order must be 'shuffle' or 'fixed', got {self.order!r}")
        if self.order == "fixed" and self.order_variants is not None:
            raise ValueError("order_variants needs order='shuffle'")
        object.__setattr__(self, "junk_fraction", str(parse_fraction(self.junk_fraction)))
        if self.junk_people is not None and self.junk_fraction == "0":
            raise ValueError("junk_people needs junk_fraction > 0")
        if self.avoid is not None:
            a = tuple(self.avoid)
            if len(a) != 2 or any(isinstance(v, bool) or not isinstance(v, int | np.integer)
                                  or v < 0 for v in a) or a[0] < 1:
                raise ValueError(f"avoid must be (n_people >= 1, seed >= 0), got {self.avoid!r}")
            object.__setattr__(self, "avoid", (int(a[0]), int(a[1])))


class BioSStream:
    """bioS(N) as a `physlm.data.BatchSource` (Part 3.3 Sec. 2 protocol)."""

    def __init__(self, config: BioSConfig | None = None, **kwargs):
        config = config_from(BioSConfig, config, kwargs)
        self.config = c = config
        self.world = bios_world()
        self.vocab = self.world.vocab
        self.vocab_size = len(self.vocab)
        if c.n_people > self.world.n0:
            raise ValueError(f"n_people must be at most the {self.world.n0} possible full names, "
                             f"got {c.n_people}")
        if c.junk_people is not None and c.n_people + c.junk_people > self.world.n0:
            raise ValueError("n_people + junk_people exceeds the name space")
        self.max_bio_len = self.world.max_bio_len(c.fullname)
        slot = self.max_bio_len + 1 + int(c.domain_token)
        self.bios_per_row = fit_per_row(c.seq_len, slot, c.bios_per_row)
        self.junk = parse_fraction(c.junk_fraction)
        self.schedule = ExposureSchedule(c.n_people, c.batch_size, self.bios_per_row, c.seed,
                                         self.junk)
        taken = None
        if c.avoid is not None:
            taken = sample_people(c.avoid[0], c.avoid[1], self.world).name_ids()
            if c.n_people + taken.size > self.world.n0:
                raise ValueError("n_people plus the avoided population exceeds the name space")
        self.people = sample_people(c.n_people, c.seed, self.world, exclude=taken)
        self.junk_pool: BioSPeople | None = None
        if c.junk_people is not None:
            self.junk_pool = sample_people(c.junk_people, c.seed, self.world, _T_JPEOPLE,
                                           exclude=self.people.name_ids())
        self.steps = self.steps_for(c.exposures)

    # -- BatchSource ------------------------------------------------------------------------------

    def spec(self) -> dict:
        return {"kind": "bioS", "version": VERSION, "world": self.world.digest,
                **asdict(self.config), "bios_per_row": self.bios_per_row}

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        rows, prefix = self._plan_tokens(check_step(step))
        packed = pack_rows(rows, self.config.seq_len + 1, self.vocab.pad_id, self.vocab.eos_id,
                           prefix)
        return make_batch(packed, self.vocab.pad_id)

    # -- schedule ---------------------------------------------------------------------------------

    def steps_for(self, exposures: int) -> int:
        """Steps after which every person has had at least ``exposures`` exposures."""
        return self.schedule.steps_for(exposures)

    def plan(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """(useful[B], who[B, k]), see `ExposureSchedule.plan`."""
        return self.schedule.plan(step, self.config.junk_people, _T_JPERM)

    def _plan_tokens(self, step: int):
        c, seed = self.config, self.config.seed
        useful, idx = self.schedule.bio_indices(step)
        _, who = self.plan(step)
        rows: list[list[list[int]]] = [[] for _ in range(c.batch_size)]
        prefix = None
        if c.domain_token:
            prefix = [[self.vocab.dom_id if u else None] * self.bios_per_row for u in useful]
        if useful.any():
            g, p = idx[useful].ravel(), who[useful].ravel()
            tk, ok = self._keys(g, p)
            bios = self._render_many(_rows_of(self.people.take(p)), tk, ok)
            r_idx = np.repeat(np.nonzero(useful)[0], self.bios_per_row)
            for r, bio in zip(r_idx.tolist(), bios, strict=True):
                rows[r].append(bio)
        if (~useful).any():
            h = idx[~useful].ravel()
            if self.junk_pool is None:
                people = _rows_of(hashed_people(mix(seed, _T_JUNK, h), self.world))
            else:
                people = _rows_of(self.junk_pool.take(who[~useful].ravel()))
            keys = mix(seed, _T_JUNK, h, 1)
            okeys = mix(seed, _T_JUNK, h, 2) if c.order == "shuffle" else None
            bios = self._render_many(people, keys, okeys)
            r_idx = np.repeat(np.nonzero(~useful)[0], self.bios_per_row)
            for r, bio in zip(r_idx.tolist(), bios, strict=True):
                rows[r].append(bio)
        return rows, prefix

    def _keys(self, g: np.ndarray, person: np.ndarray):
        """Template and order keys of useful biographies g of persons ``person``."""
        c, seed = self.config, self.config.seed
        epoch = g // c.n_people
        if c.template_variants is None:
            tk = mix(seed, _T_TPL, g)
        else:
            tk = mix(seed, _T_TPL, person, epoch % c.template_variants, 1)
        if c.order == "fixed":
            ok = None
        elif c.order_variants is None:
            ok = mix(seed, _T_ORD, g)
        else:
            ok = mix(seed, _T_ORD, person, epoch % c.order_variants, 1)
        return tk, ok

    def _render_many(self, people, tpl_keys, ord_keys, spans=None) -> list[list[int]]:
        tpl, order = _choices(self.world, tpl_keys, ord_keys)
        fullname = self.config.fullname
        out = []
        for i, (person, t, o) in enumerate(zip(people, tpl.tolist(), order.tolist(), strict=True)):
            out.append(render(self.world, person, t, o, fullname,
                              None if spans is None else spans[i]))
        return out

    # -- evaluation -------------------------------------------------------------------------------

    def eval_keys(self, person: np.ndarray):
        """Keys of the evaluation rendering: the first training variant when variants are fixed
        (so it was trained on), otherwise a rendering of its own."""
        c, seed = self.config, self.config.seed
        if c.template_variants is None:
            tk = mix(seed, _T_EVAL, person, 1)
        else:
            tk = mix(seed, _T_TPL, person, 0, 1)
        if c.order == "fixed":
            ok = None
        elif c.order_variants is None:
            ok = mix(seed, _T_EVAL, person, 2)
        else:
            ok = mix(seed, _T_ORD, person, 0, 1)
        return tk, ok

    def render_person(self, person: int) -> tuple[list[int], dict[str, tuple[int, int]]]:
        """The evaluation rendering of one person, with value spans."""
        spans = [{}]
        tk, ok = self.eval_keys(np.asarray([person]))
        bio = self._render_many(_rows_of(self.people.take(np.asarray([person]))), tk, ok,
                                spans)[0]
        return bio, spans[0]

    def eval_batches(self, batch_size: int = 256) -> Iterator[dict[str, torch.Tensor]]:
        """Every person once, as rows ``<eos> (<dom>) bio <eos>`` padded to a common length.

        Yields x, y [B, T], ``mask`` (real targets), ``name_mask`` (targets that are the opening
        full name; p1), ``value_mask`` (targets that are counted value tokens; p2) and
        ``attr`` [B, T] (index into COUNTED of a value target, -1 elsewhere), plus ``person`` [B].
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        c = self.config
        width = self.max_bio_len + 2 + int(c.domain_token)
        lead = 1 + int(c.domain_token)
        for start in range(0, c.n_people, batch_size):
            ids = np.arange(start, min(start + batch_size, c.n_people))
            spans = [{} for _ in ids]
            tk, ok = self.eval_keys(ids)
            bios = self._render_many(_rows_of(self.people.take(ids)), tk, ok, spans)
            prefix = [[self.vocab.dom_id]] * len(ids) if c.domain_token else None
            packed = pack_rows([[b] for b in bios], width, self.vocab.pad_id, self.vocab.eos_id,
                               prefix)
            batch = make_batch(packed, self.vocab.pad_id)
            attr = torch.full_like(batch["y"], -1)
            name = torch.zeros_like(batch["mask"])
            for r, sp in enumerate(spans):
                s, e = sp["name"]
                name[r, lead + s - 1: lead + e - 1] = True  # target t is row token t + 1
                for a, key in enumerate(COUNTED):
                    if key in sp:
                        s, e = sp[key]
                        attr[r, lead + s - 1: lead + e - 1] = a
            batch.update(name_mask=name, value_mask=attr >= 0, attr=attr,
                         person=torch.as_tensor(ids))
            yield batch

    # -- facts and bookkeeping --------------------------------------------------------------------

    def facts(self, person: int) -> dict[str, str]:
        """The person's facts as strings, as they appear in the text."""
        p, pools = self.people, self.world.pools
        i = int(person)
        return {
            "name": " ".join((pools.first[p.first[i]], pools.middle[p.middle[i]],
                              pools.last[p.last[i]])),
            "pronoun": PRONOUNS[p.pronoun[i]],
            "birth_month": MONTHS[p.month[i]], "birth_day": DAYS[p.day[i]],
            "birth_year": YEARS[p.year[i]],
            "birth_city": pools.cities[p.birth_city[i]],
            "university": pools.universities[p.university[i]], "major": pools.majors[p.major[i]],
            "employer": pools.employers[p.employer[i]], "work_city": pools.cities[p.work_city[i]],
        }

    def knowledge(self) -> dict:
        """What the capacity measure needs (Part 3.3 Def. 4.3): N, log2 N0, log2 S0."""
        log2_s0 = self.world.log2_s0 - (1.0 if self.config.fullname else 0.0)
        return {"kind": "bioS", "n_people": self.config.n_people,
                "log2_n0": math.log2(self.world.n0), "log2_s0": log2_s0}

    def used_token_ids(self) -> torch.Tensor:
        """Ids the data feeds the model (for `count_params`): not <pad>, <bos>, an unused <dom>."""
        skip = {self.vocab.pad_id, self.vocab.bos_id}
        if not self.config.domain_token:
            skip.add(self.vocab.dom_id)
        return torch.tensor([i for i in range(self.vocab_size) if i not in skip])
