"""Questions about the bioS people: the QA set of Part 3.1 and the manipulation tasks of Part 3.2.

Part 3.1 (Sec. 2, "QA dataset"): six questions per person, one per attribute, in the form
"What is the birth date of X? Answer: October 2, 1996." The people are split into halves
P_train / P_test; QA is trained on P_train and tested out of distribution on P_test.

Part 3.2 (Sec. 3-6) asks for knowledge manipulation on the same people: partial retrieval (birth
day or year alone), dual retrieval (two attributes in one answer), classification (birth month
mod 2 / 6 / 12, major "luckiness" mod k), comparison of two people (later month, month difference,
luckier major, luckiness difference) and inverse search (attributes to name). Classification and
comparison may be trained with a chain-of-thought hint: the needed attribute values are written
before the answer (Part 3.2 Sec. 4.1, e.g. "October; September. No.").

Format (our choice of words; the papers' wording for P3.1, our wording where P3.2 leaves it open):
an item is ``prompt completion .`` where the prompt ends in ``Answer:`` (answer directly) or
``Hint:`` (write the hint first; this is our stand-in for the paper's special token that asks
for the CoT). The completion is the loss region (``target_span``); the answer proper is the
exact-match region (``answer_span``). The closing "." is in neither.

Vocabulary: the bioS words keep their ids and the question words are appended after them
(`QAVocab`), so a model built with ``QAVocab.size`` reads bioS batches and QA batches alike.
Negative numbers are written ``minus 3`` because the word-level tokenizer splits "-3".
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from functools import lru_cache

import numpy as np
import torch

from physlm.data import config_from
from physlm.data.bios import (
    BioSStream,
    ExposureSchedule,
    bios_world,
    check_step,
    pack_rows,
)
from physlm.data.bios_pools import DAYS, MONTHS, YEARS
from physlm.data.vocab import Vocab, split_words

VERSION = "bios-qa-1"
_T_SPLIT, _T_PAIR, _T_QA, _T_HINT = 201, 202, 203, 204  # random-stream tags, apart from bios.py's

# ---------------------------------------------------------------------------------------------
# wording

# Part 3.1 Sec. 2: the six questions, one per attribute (the paper's own wording)
P31_QUESTIONS: dict[str, str] = {
    "birth_date": "What is the birth date of {X}?",
    "birth_city": "What is the birth city of {X}?",
    "university": "Which university did {X} study?",
    "major": "What major did {X} study?",
    "employer": "Which company did {X} work for?",
    "work_city": "Where did {X} work?",
}
QA_ATTRIBUTES: tuple[str, ...] = tuple(P31_QUESTIONS)

# nouns for dual retrieval, clauses for inverse search
_NOUNS = {
    "birth_date": "birth date",
    "birth_city": "birth city",
    "university": "university",
    "major": "major",
    "employer": "company",
    "work_city": "company city",
}
_CLAUSES = {
    "birth_date": "was born on {V}",
    "birth_city": "was born in {V}",
    "university": "studied at {V}",
    "major": "studied {V}",
    "employer": "worked for {V}",
    "work_city": "worked in {V}",
}

# Part 3.2 Sec. 3: six two-attribute questions. The paper's exact six are not in our notes; these
# cover the three natural pairs, two cross pairs and the reversed pair (company city, company)
# that Result 1 singles out.
DUAL_PAIRS: tuple[tuple[str, str], ...] = (
    ("birth_date", "birth_city"),
    ("university", "major"),
    ("employer", "work_city"),
    ("major", "birth_date"),
    ("birth_city", "employer"),
    ("work_city", "employer"),
)

# Part 3.2 Sec. 6: attributes given in inverse-search questions (a subset of the paper's ten
# tasks, from the birth date alone up to every attribute), each asking for the first or full name
INVERSE_GIVEN: tuple[tuple[str, ...], ...] = (
    ("birth_date",),
    ("birth_date", "birth_city"),
    ("birth_date", "birth_city", "university", "major"),
    QA_ATTRIBUTES,
)

_FIXED_TEXT = (
    "Answer: Hint: Yes No minus ; . , ? "
    "What is the birth year of {X}? What is the birth day of {X}? What are the and of {X}? "
    "Who and? Was {X} born in an even month? What is the birth month of {X} modulo? "
    "What is the luckiness of the major of {X} modulo? Was {X} born in a later month than {Y}? "
    "What is the birth month of {X} minus the birth month of {Y}? "
    "Is the major of {X} luckier than the major of {Y}? "
    "What is the luckiness of the major of {X} minus the luckiness of the major of {Y}?"
)


def _words() -> set[str]:
    texts = [_FIXED_TEXT, *P31_QUESTIONS.values(), *_NOUNS.values(), *_CLAUSES.values()]
    words: set[str] = set()
    for t in texts:
        words.update(split_words(t.replace("{X}", " ").replace("{Y}", " ").replace("{V}", " ")))
    words.update(str(i) for i in range(101))
    return words


class QAVocab(Vocab):
    """The bioS vocabulary with the question words appended: bioS ids are unchanged."""

    def __init__(self, base: Vocab, words: Iterable[str]):
        new = sorted(set(words) - set(base.stoi))
        if any(not w or any(c.isspace() for c in w) for w in new):
            raise ValueError("words must be non-empty and contain no whitespace")
        self.itos = list(base.itos) + new
        self.stoi = {w: i for i, w in enumerate(self.itos)}
        self.pad_id, self.eos_id, self.bos_id = base.pad_id, base.eos_id, base.bos_id
        self.dom_id, self.n_specials = base.dom_id, base.n_specials
        self.base_size = len(base)

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.itos).encode()).hexdigest()[:12]


@lru_cache(maxsize=2)
def _qa_vocab(base: Vocab) -> QAVocab:
    return QAVocab(base, _words())


def qa_vocab(bios: BioSStream | None = None) -> QAVocab:
    """The QA vocabulary: the bioS world's words, then the question words (built once)."""
    return _qa_vocab(bios_world().vocab if bios is None else bios.vocab)


# ---------------------------------------------------------------------------------------------
# items


@dataclass(frozen=True)
class QAItem:
    """One question. ``ids`` = prompt, completion, "."; spans index into ``ids``.

    ``person`` (and ``other`` for comparisons, else -1) index the bioS people.
    """

    task: str
    person: int
    other: int
    hint: bool
    prompt: str
    completion: str
    answer: str
    ids: tuple[int, ...]
    target_span: tuple[int, int]
    answer_span: tuple[int, int]

    @property
    def text(self) -> str:
        return f"{self.prompt} {self.completion}."

    def answer_mask(self) -> np.ndarray:
        """Bool mask over ``ids``: the answer tokens (exact-match region)."""
        return _span_mask(len(self.ids), self.answer_span)

    def target_mask(self) -> np.ndarray:
        """Bool mask over ``ids``: the completion tokens (loss region: hint and answer)."""
        return _span_mask(len(self.ids), self.target_span)


def _span_mask(n: int, span: tuple[int, int]) -> np.ndarray:
    m = np.zeros(n, dtype=bool)
    m[span[0] : span[1]] = True
    return m


def _make_item(
    vocab: Vocab,
    task: str,
    person: int,
    question: str,
    answer: str,
    hint: str | None = None,
    other: int = -1,
) -> QAItem:
    if hint is None:
        prompt, completion = f"{question} Answer:", answer
    else:
        prompt, completion = f"{question} Hint:", f"{hint}. Answer: {answer}"
    p, c, a = vocab.encode(prompt), vocab.encode(completion), vocab.encode(answer)
    ids = tuple(p + c + [vocab.id(".")])
    end = len(p) + len(c)
    return QAItem(
        task,
        int(person),
        int(other),
        hint is not None,
        prompt,
        completion,
        answer,
        ids,
        (len(p), end),
        (end - len(a), end),
    )


class _Facts:
    """Attribute strings and numbers of the bioS people, read from the index arrays."""

    def __init__(self, bios: BioSStream):
        self.p, self.pools = bios.people, bios.world.pools

    def name(self, i: int) -> str:
        pools, p = self.pools, self.p
        return f"{pools.first[p.first[i]]} {pools.middle[p.middle[i]]} {pools.last[p.last[i]]}"

    def first(self, i: int) -> str:
        return self.pools.first[self.p.first[i]]

    def value(self, i: int, attr: str) -> str:
        p, pools = self.p, self.pools
        if attr == "birth_date":
            return f"{MONTHS[p.month[i]]} {DAYS[p.day[i]]}, {YEARS[p.year[i]]}"
        pool = {
            "birth_city": pools.cities,
            "university": pools.universities,
            "major": pools.majors,
            "employer": pools.employers,
            "work_city": pools.cities,
        }[attr]
        return pool[getattr(p, attr)[i]]

    def month_number(self, i: int) -> int:
        """1 (January) .. 12 (December)."""
        return int(self.p.month[i]) + 1

    def luckiness(self, i: int) -> int:
        """A major's "luckiness": its index 0..99 in the major pool (Part 3.2 Sec. 4)."""
        return int(self.p.major[i])


def _people(bios: BioSStream, people) -> list[int]:
    n = bios.config.n_people
    if people is None:
        return list(range(n))
    out = [int(i) for i in np.asarray(people, dtype=np.int64).ravel()]
    if any(not 0 <= i < n for i in out):
        raise ValueError(f"people must be indices in [0, {n}), got values outside")
    if len(set(out)) != len(out):
        raise ValueError("people must not repeat an index")
    return out


def split_people(
    n_people: int, seed: int = 0, train_fraction: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """P_train / P_test (Part 3.1 Sec. 2: QA of half the people is trained, the rest tested).

    A seeded permutation; the first ``floor(train_fraction * N)`` people are P_train. Both halves
    come back sorted.
    """
    if isinstance(n_people, bool) or not isinstance(n_people, int | np.integer) or n_people < 2:
        raise ValueError(f"n_people must be an integer >= 2, got {n_people!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    if not 0 < train_fraction < 1:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction!r}")
    perm = np.random.default_rng([int(seed), _T_SPLIT]).permutation(int(n_people))
    k = int(train_fraction * n_people)
    if not 0 < k < n_people:
        raise ValueError(f"train_fraction={train_fraction} leaves a half of {n_people} empty")
    return np.sort(perm[:k]), np.sort(perm[k:])


def p31_items(
    bios: BioSStream, people=None, attributes: Sequence[str] = QA_ATTRIBUTES
) -> list[QAItem]:
    """The Part 3.1 QA set: one question per (person, attribute), person-major order."""
    bad = [a for a in attributes if a not in P31_QUESTIONS]
    if bad or not attributes:
        raise ValueError(f"attributes must be a non-empty subset of {QA_ATTRIBUTES}, got {bad}")
    v, f = qa_vocab(bios), _Facts(bios)
    out = []
    for i in _people(bios, people):
        name = f.name(i)
        for a in attributes:
            out.append(_make_item(v, a, i, P31_QUESTIONS[a].format(X=name), f.value(i, a)))
    return out


# ---------------------------------------------------------------------------------------------
# Part 3.2 tasks

CLASSIFY = {
    "month_mod2": 2,
    "month_mod6": 6,
    "month_mod12": 12,
    "major_mod5": 5,
    "major_mod20": 20,
    "major_mod100": 100,
}
COMPARE = ("month_later", "month_diff", "major_luckier", "major_diff")
HINTED = (*CLASSIFY, *COMPARE)  # tasks for which Part 3.2 defines a CoT hint


def p32_tasks() -> tuple[str, ...]:
    """Every task name `p32_items` accepts."""
    dual = tuple(f"dual:{a},{b}" for a, b in DUAL_PAIRS)
    inverse = tuple(f"inverse:{','.join(g)}->{t}" for g in INVERSE_GIVEN for t in ("first", "full"))
    return ("partial_birth_year", "partial_birth_day", *dual, *CLASSIFY, *COMPARE, *inverse)


def _signed(n: int) -> str:
    return f"minus {-n}" if n < 0 else str(n)


def _yes(b: bool) -> str:
    return "Yes" if b else "No"


def pairs(people: Sequence[int], seed: int = 0) -> list[tuple[int, int]]:
    """Comparison partners: a seeded cycle through ``people``, so every person is X once and Y
    once and never compared with themself."""
    people = list(people)
    if len(people) < 2:
        raise ValueError(f"comparison tasks need at least 2 people, got {len(people)}")
    order = np.random.default_rng([int(seed), _T_PAIR]).permutation(len(people))
    nxt = {people[order[k]]: people[order[(k + 1) % len(order)]] for k in range(len(order))}
    return [(i, nxt[i]) for i in people]


def p32_items(
    bios: BioSStream, task: str, people=None, hint: bool | str = False, seed: int = 0
) -> list[QAItem]:
    """Items of one Part 3.2 task (a name from `p32_tasks`) for ``people`` (default: everyone).

    ``hint=True`` writes the needed attribute values before the answer; only classification and
    comparison have a hint (Part 3.2 Sec. 4-5). ``hint="half"`` hints each person's item with
    probability 1/2 (seeded), the paper's "train with hint" mix. ``seed`` also picks the
    comparison partners.
    """
    if task not in p32_tasks():
        raise ValueError(f"task must be one of {p32_tasks()}, got {task!r}")
    if hint not in (False, True, "half") or not isinstance(hint, bool | str):
        raise ValueError(f"hint must be False, True or 'half', got {hint!r}")
    if hint and task not in HINTED:
        raise ValueError(f"hint is defined only for tasks {HINTED}, got task {task!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    v, f, ids = qa_vocab(bios), _Facts(bios), _people(bios, people)
    if hint == "half":
        coin = np.random.default_rng([int(seed), _T_HINT]).random(len(ids)) < 0.5
        hinted = {i: bool(c) for i, c in zip(ids, coin, strict=True)}
    else:
        hinted = dict.fromkeys(ids, bool(hint))
    out: list[QAItem] = []

    def item(i, question, answer, hint_text=None, other=-1):
        h = hint_text if hinted[i] else None
        out.append(_make_item(v, task, i, question, answer, h, other))

    if task.startswith("partial_"):
        what = task.removeprefix("partial_birth_")
        for i in ids:
            p = f.p
            val = YEARS[p.year[i]] if what == "year" else DAYS[p.day[i]]
            item(i, f"What is the birth {what} of {f.name(i)}?", val)
    elif task.startswith("dual:"):
        a, b = task.removeprefix("dual:").split(",")
        for i in ids:
            q = f"What are the {_NOUNS[a]} and the {_NOUNS[b]} of {f.name(i)}?"
            item(i, q, f"{f.value(i, a)}; {f.value(i, b)}")
    elif task in CLASSIFY:
        k = CLASSIFY[task]
        for i in ids:
            x = f.name(i)
            if task.startswith("month"):
                h, m = f.value(i, "birth_date").split()[0], f.month_number(i)
                if k == 2:
                    item(i, f"Was {x} born in an even month?", _yes(m % 2 == 0), h)
                else:
                    item(i, f"What is the birth month of {x} modulo {k}?", str(m % k), h)
            else:
                q = f"What is the luckiness of the major of {x} modulo {k}?"
                item(i, q, str(f.luckiness(i) % k), f.value(i, "major"))
    elif task in COMPARE:
        for i, j in pairs(ids, seed):
            x, y = f.name(i), f.name(j)
            if task.startswith("month"):
                h = f"{MONTHS[f.p.month[i]]}; {MONTHS[f.p.month[j]]}"
                d = f.month_number(i) - f.month_number(j)
                if task == "month_later":
                    item(i, f"Was {x} born in a later month than {y}?", _yes(d > 0), h, j)
                else:
                    q = f"What is the birth month of {x} minus the birth month of {y}?"
                    item(i, q, _signed(d), h, j)
            else:
                h = f"{f.value(i, 'major')}; {f.value(j, 'major')}"
                d = f.luckiness(i) - f.luckiness(j)
                if task == "major_luckier":
                    q = f"Is the major of {x} luckier than the major of {y}?"
                    item(i, q, _yes(d > 0), h, j)
                else:
                    q = (
                        f"What is the luckiness of the major of {x} minus the luckiness of the "
                        f"major of {y}?"
                    )
                    item(i, q, _signed(d), h, j)
    else:  # inverse search
        given, target = task.removeprefix("inverse:").split("->")
        for i in ids:
            clauses = " and ".join(_CLAUSES[a].format(V=f.value(i, a)) for a in given.split(","))
            item(i, f"Who {clauses}?", f.name(i) if target == "full" else f.first(i))
    return out


# ---------------------------------------------------------------------------------------------
# batches


def encode_items(items: Sequence[QAItem], pad_id: int = 0) -> dict[str, torch.Tensor]:
    """Evaluation rows ``item`` padded to a common length, one item per row.

    x, y [B, T] (y = next token), ``mask`` (targets in the completion: loss region),
    ``answer_mask`` (targets in the answer: exact-match region), ``prompt_len`` [B].
    """
    if not items:
        raise ValueError("items must not be empty")
    width = max(len(it.ids) for it in items)
    rows = np.full((len(items), width), pad_id, dtype=np.int64)
    tgt = np.zeros((len(items), width - 1), dtype=bool)
    ans = np.zeros_like(tgt)
    for r, it in enumerate(items):
        rows[r, : len(it.ids)] = it.ids
        tgt[r, it.target_span[0] - 1 : it.target_span[1] - 1] = True  # target t is token t + 1
        ans[r, it.answer_span[0] - 1 : it.answer_span[1] - 1] = True
    t = torch.as_tensor(rows)
    return {
        "x": t[:, :-1].contiguous(),
        "y": t[:, 1:].contiguous(),
        "mask": torch.as_tensor(tgt),
        "answer_mask": torch.as_tensor(ans),
        "prompt_len": torch.as_tensor([it.target_span[0] for it in items]),
    }


def items_digest(items: Sequence[QAItem]) -> str:
    """Content hash of items (task, people, tokens, spans): part of a stream's spec."""
    h = hashlib.sha256()
    for it in items:
        h.update(
            json.dumps(
                [it.task, it.person, it.other, it.ids, it.target_span, it.answer_span]
            ).encode()
        )
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class QAStreamConfig:
    """batch_size / seq_len: rows per step and tokens per row. seed: the item order.

    qa_fraction: share of rows that hold QA; below 1 the other rows are bioS biographies of the
    given bioS stream (Part 3.1 Sec. 2 mixed training: every row is all-BIO or all-QA, QA_r = 0.8).
    The share is of rows, which are near full, so it approximates the paper's token ratio.
    qa_loss: "answer" learns only the completions of QA rows; "all" learns every QA token.
    """

    batch_size: int
    seq_len: int
    seed: int = 0
    qa_fraction: str = "1"
    qa_loss: str = "answer"

    def __post_init__(self):
        for name in ("batch_size", "seq_len"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if (
            isinstance(self.seed, bool)
            or not isinstance(self.seed, int | np.integer)
            or self.seed < 0
        ):
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        try:
            q = (
                Fraction(self.qa_fraction)
                if not isinstance(self.qa_fraction, float)
                else Fraction(self.qa_fraction).limit_denominator(10_000)
            )
        except (TypeError, ValueError, ZeroDivisionError):
            raise ValueError(
                f"qa_fraction must be a number in (0, 1], got {self.qa_fraction!r}"
            ) from None
        if not 0 < q <= 1:
            raise ValueError(f"qa_fraction must be in (0, 1], got {self.qa_fraction!r}")
        object.__setattr__(self, "qa_fraction", str(q))
        if self.qa_loss not in ("answer", "all"):
            raise ValueError(f"qa_loss must be 'answer' or 'all', got {self.qa_loss!r}")


class QAStream:
    """QA items (and, when mixed, bioS rows) as a `physlm.data.BatchSource`.

    QA rows are ``<eos> item <eos> item ... <pad>`` with a fixed number of items per row. The
    g-th item of the run is ``items[perm_e[g mod M]]`` with ``e = g // M`` (M items, a seeded
    permutation per epoch), so ``batch(step)`` is a pure function of (seed, step) and after e
    epochs every item has been seen exactly e times. Mixed: the j-th bio row is row ``j mod B``
    of ``bios.batch(j // B)``.
    """

    def __init__(
        self,
        items: Sequence[QAItem],
        config: QAStreamConfig | None = None,
        bios: BioSStream | None = None,
        **kwargs,
    ):
        config = config_from(QAStreamConfig, config, kwargs)
        if not items:
            raise ValueError("items must not be empty")
        self.config = c = config
        self.items = list(items)
        self._digest = items_digest(self.items)
        self.mixed = Fraction(c.qa_fraction) < 1
        if self.mixed:
            if bios is None:
                raise ValueError("qa_fraction < 1 (mixed training) needs the bioS stream: bios=")
            if (bios.config.batch_size, bios.config.seq_len) != (c.batch_size, c.seq_len):
                raise ValueError(
                    "bios must have the same batch_size and seq_len as the QA "
                    f"stream, got {bios.config.batch_size}, {bios.config.seq_len}"
                )
        self.bios = bios
        self.vocab = qa_vocab(bios)
        self.vocab_size = len(self.vocab)
        if max(max(it.ids) for it in self.items) >= self.vocab_size:
            raise ValueError("items use ids outside the QA vocabulary")
        longest = max(len(it.ids) for it in self.items)
        self.items_per_row = c.seq_len // (longest + 1)
        if self.items_per_row < 1:
            raise ValueError(
                f"seq_len must be at least {longest + 1} to hold one item, got {c.seq_len}"
            )
        self.schedule = ExposureSchedule(
            len(self.items), c.batch_size, self.items_per_row, c.seed, 1 - Fraction(c.qa_fraction)
        )

    # -- BatchSource ------------------------------------------------------------------------------

    def spec(self) -> dict:
        return {
            "kind": "bioS-QA",
            "version": VERSION,
            "vocab": self.vocab.digest,
            "items": self._digest,
            "n_items": len(self.items),
            **asdict(self.config),
            "items_per_row": self.items_per_row,
            "bios": self.bios.spec() if self.mixed else None,
        }

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        step = check_step(step)
        c, v = self.config, self.vocab
        useful, idx = self.schedule.bio_indices(step)
        qa_rows = np.nonzero(useful)[0]
        rows = np.full((c.batch_size, c.seq_len + 1), v.pad_id, dtype=np.int64)
        mask = np.zeros((c.batch_size, c.seq_len), dtype=bool)
        if qa_rows.size:
            which = self.schedule.people(idx[qa_rows], tag=_T_QA)
            for r, row_items in zip(qa_rows.tolist(), which.tolist(), strict=True):
                its = [self.items[k] for k in row_items]
                rows[r] = pack_rows(
                    [[list(it.ids) for it in its]], c.seq_len + 1, v.pad_id, v.eos_id
                )[0]
                pos = 1
                for it in its:
                    if c.qa_loss == "all":
                        s, e = 0, len(it.ids)
                    else:
                        s, e = it.target_span
                    mask[r, pos + s - 1 : pos + e - 1] = True  # target t is row token t + 1
                    pos += len(it.ids) + 1
        bio_rows = np.nonzero(~useful)[0]
        if bio_rows.size:
            _, ordinal = self.schedule.rows(step)
            cache: dict[int, dict[str, torch.Tensor]] = {}
            for r in bio_rows.tolist():
                j = int(ordinal[r])
                s, k = divmod(j, c.batch_size)
                if s not in cache:
                    cache[s] = self.bios.batch(s)
                b = cache[s]
                rows[r, :-1] = b["x"][k].numpy()
                rows[r, -1] = int(b["y"][k, -1])
                mask[r] = b["mask"][k].numpy()
        t = torch.as_tensor(rows)
        return {
            "x": t[:, :-1].contiguous(),
            "y": t[:, 1:].contiguous(),
            "mask": torch.as_tensor(mask),
        }

    # -- schedule ---------------------------------------------------------------------------------

    def steps_for(self, epochs: int) -> int:
        """Fewest steps after which every QA item has been seen at least ``epochs`` times."""
        if isinstance(epochs, bool) or not isinstance(epochs, int | np.integer) or epochs < 0:
            raise ValueError(f"epochs must be an integer >= 0, got {epochs!r}")
        return self.schedule.steps_for(int(epochs))

    def plan(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """(qa[B], item[B, k]): which rows hold QA, and the item index of every QA slot
        (-1 in bio rows)."""
        useful, idx = self.schedule.bio_indices(check_step(step))
        out = np.full_like(idx, -1)
        if useful.any():
            out[useful] = self.schedule.people(idx[useful], tag=_T_QA)
        return useful, out
