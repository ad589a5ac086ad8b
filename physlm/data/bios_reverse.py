"""bioS "reverse" biographies: the person's name comes after the attributes (Part 3.2 Sec. 6).

Part 3.2 (Result 7, Fig. 6) shows that inverse search ("who was born on ...?") stays near 0%
for every augmentation of bioS, and only datasets that move the name later in the biography
(``multi5+reverse1/2/6``, ``multi5+permute+reverse6``) give non-trivial accuracy: a causal model
can only learn "attributes -> name" where the attributes are written before the name.

Our reading of ``reverseK`` (the paper's exact wording is not in our notes): every one of the six
sentences uses the pronoun as subject, and a naming sentence ``{pronoun} is {full name}.`` is
inserted after the first K sentences; ``reverse6`` puts the name at the very end. The templates,
pools, variants (multiM, permute) and packing are those of `physlm.data.bios.BioSStream`.
"""

from __future__ import annotations

import numpy as np

from physlm.data import fit_per_row
from physlm.data.bios import (
    ATTRIBUTES,
    BioSConfig,
    BioSStream,
    BioSWorld,
    ExposureSchedule,
    _attribute_sentence,
    _choices,
)

VERSION = "bios-reverse-1"
NAMING_EXTRA = 4  # tokens a reverse bio adds: "{pron} is {3-token name} ." minus the 2 tokens a
# pronoun saves over the name in the first sentence


def render_reverse(
    world: BioSWorld,
    person: tuple[int, ...],
    tpl: list[int],
    order: list[int],
    k: int,
    spans: dict[str, tuple[int, int]] | None = None,
) -> list[int]:
    """Token ids of one reverse biography: six pronoun sentences, the naming sentence after k.

    ``person``, ``tpl`` and ``order`` are as in `physlm.data.bios.render`; ``spans`` receives
    ``name`` and the value spans, as there.
    """
    (first, middle, last, pron, month, day, year, bcity, univ, major, emp, wcity) = person
    w = world
    pro = w.pronoun[pron]
    values = (
        [w.month[month], w.day[day], w.comma, w.year[year]],
        w.city[bcity],
        w.university[univ],
        w.major[major],
        w.employer[emp],
        w.city[wcity],
    )
    is_id, stop = w.vocab.id("is"), w.vocab.id(".")
    out: list[int] = []

    def naming() -> None:
        out.extend([pro, is_id])
        if spans is not None:
            spans["name"] = (len(out), len(out) + 3)
        out.extend([w.first[first], w.middle[middle], w.last[last], stop])

    for pos, a in enumerate(order):
        if pos == k:
            naming()
        t = w.templates[a][tpl[a]]
        out.append(pro)
        _attribute_sentence(out, t, a, values, spans)
    if k == len(order):
        naming()
    return out


class ReverseBioSStream(BioSStream):
    """bioS with the name moved after ``reverse`` sentences (Part 3.2 ``reverseK``).

    Takes a `BioSConfig` (or its keywords) plus ``reverse`` in 0..6; ``fullname`` must be off
    (the name appears once, in the naming sentence). Everything else, including the exposure
    schedule and the evaluation rendering, works as in `BioSStream`.
    """

    def __init__(self, config: BioSConfig | None = None, reverse: int = 6, **kwargs):
        n = len(ATTRIBUTES)
        if isinstance(reverse, bool) or not isinstance(reverse, int | np.integer) or not (
            0 <= reverse <= n
        ):
            raise ValueError(f"reverse must be an integer in 0..{n}, got {reverse!r}")
        super().__init__(config, **kwargs)
        c = self.config
        if c.fullname:
            raise ValueError("fullname must be False for reverse biographies")
        self.reverse = int(reverse)
        self.max_bio_len = self.world.max_bio_len(False) + NAMING_EXTRA
        slot = self.max_bio_len + 1 + int(c.domain_token)
        self.bios_per_row = fit_per_row(c.seq_len, slot, c.bios_per_row)
        self.schedule = ExposureSchedule(c.n_people, c.batch_size, self.bios_per_row, c.seed,
                                         self.junk)
        self.steps = self.steps_for(c.exposures)

    def spec(self) -> dict:
        return {**super().spec(), "kind": "bioS-reverse", "reverse": self.reverse,
                "reverse_version": VERSION, "bios_per_row": self.bios_per_row}

    def _render_many(self, people, tpl_keys, ord_keys, spans=None) -> list[list[int]]:
        tpl, order = _choices(self.world, tpl_keys, ord_keys)
        return [
            render_reverse(self.world, person, t, o, self.reverse,
                           None if spans is None else spans[i])
            for i, (person, t, o) in enumerate(zip(people, tpl.tolist(), order.tolist(),
                                                   strict=True))
        ]
