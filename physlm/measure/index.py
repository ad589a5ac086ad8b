"""An external index for inverse search: look people up by attribute, then retrieve forward.

Part 3.2 (Result 7) finds that a language model cannot answer "who was born on October 2, 1996?"
from pretraining on forward biographies, at any size or augmentation, and lists retrieval
augmentation among the remedies (Result 9). The remedy keeps the reversal out of the model: an
inverted index over the documents maps an attribute value to the people whose biography states
it, and the model only does what it is good at, forward retrieval ("what is the birth city of
X?"), to check each candidate against the rest of the question.

`AttributeIndex` holds (attribute, value) -> people for the attributes it indexes; `search`
answers one inverse question with it and a forward check made by the model.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

Check = Callable[[Sequence[int], str, str], Sequence[bool]]
"""``check(people, attribute, value)`` -> for each person, whether forward retrieval of
``attribute`` gives ``value`` (e.g. the model's greedy answer, compared by exact match)."""


@dataclass(frozen=True)
class AttributeIndex:
    """Inverted index: ``table[(attribute, value)]`` = the people (sorted) with that value."""

    attributes: tuple[str, ...]
    table: Mapping[tuple[str, str], tuple[int, ...]]

    @classmethod
    def build(
        cls, records: Iterable[tuple[int, Mapping[str, str]]], attributes: Sequence[str]
    ) -> AttributeIndex:
        """Index ``(person, {attribute: value})`` records on ``attributes`` only."""
        attributes = tuple(attributes)
        if not attributes or len(set(attributes)) != len(attributes):
            raise ValueError(f"attributes must be non-empty and distinct, got {attributes!r}")
        table: dict[tuple[str, str], set[int]] = defaultdict(set)
        for person, values in records:
            missing = [a for a in attributes if a not in values]
            if missing:
                raise ValueError(f"record of person {person} lacks attributes {missing}")
            for a in attributes:
                table[(a, values[a])].add(int(person))
        return cls(attributes, {k: tuple(sorted(v)) for k, v in table.items()})

    def candidates(self, given: Mapping[str, str]) -> list[int]:
        """People matching every indexed attribute of ``given`` (others are ignored)."""
        keys = [a for a in given if a in self.attributes]
        if not keys:
            raise ValueError(
                f"given must name at least one indexed attribute {self.attributes}, "
                f"got {sorted(given)}"
            )
        found: set[int] | None = None
        for a in keys:
            people = set(self.table.get((a, given[a]), ()))
            found = people if found is None else found & people
        return sorted(found or ())


def search(index: AttributeIndex, given: Mapping[str, str], check: Check) -> list[int]:
    """People who answer an inverse question: index look-up, then forward checks.

    Candidates come from the index; for each given attribute that is not indexed, candidates
    whose forward-retrieved value is not the given one are dropped.
    """
    alive = index.candidates(given)
    for a, want in given.items():
        if a in index.attributes or not alive:
            continue
        ok = list(check(alive, a, want))
        if len(ok) != len(alive):
            raise ValueError(f"check returned {len(ok)} answers for {len(alive)} people")
        alive = [p for p, good in zip(alive, ok, strict=True) if good]
    return alive
