"""The ontology iGSM problems draw their nouns from: hierarchies of categories, each with items.

Part 2.1 (Sec. 2.1, "structure graph") takes its nouns from a fixed hierarchical
categorisation: several hierarchies, each a chain of categories (layers) such as a school, its
classrooms, their backpacks, ..., every category holding many items. Every problem picks one
hierarchy, a window of consecutive layers and a few items of each layer. The official lists
(4 hierarchies of 4 layers, about 100 items each) are English nouns; ours are made up here from
syllables, so that no noun carries outside meaning and the vocabulary is closed.

Which category an item belongs to is world knowledge, not problem text (the paper's model learns
it from the training data): the checker gets the same `NameWorld` to resolve abstract
parameters such as "A's C" (all C-items below item A).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cached_property

from physlm.data import check_ints

# syllable parts: onset + vowel + optional coda; names are 2 (items) or 3 (categories) syllables
_ONSETS = ("b", "br", "d", "dr", "f", "g", "gr", "k", "kl", "l", "m", "n", "p", "pr", "r", "s",
           "st", "t", "tr", "v", "z", "sh", "th", "h", "j")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ou", "ea")
_CODAS = ("", "", "n", "r", "l", "s", "m", "k")
# the capitalised words of the text format: a noun may not be one of them
_FORMAT_WORDS = frozenset({"The", "How", "Define"})


@dataclass(frozen=True)
class WorldConfig:
    """hierarchies x layers categories, `items` items in each; `seed` picks the syllable names."""

    hierarchies: int = 4
    layers: int = 4
    items: int = 100
    seed: int = 0

    def __post_init__(self) -> None:
        bounds = (("hierarchies", 1), ("layers", 2), ("items", 2), ("seed", 0))
        check_ints(self, bounds, what="world ")
        if self.hierarchies * self.layers * self.items > 200_000:
            raise ValueError(
                "world is too large: hierarchies * layers * items must be <= 200000, got "
                f"{self.hierarchies * self.layers * self.items}"
            )


def _syllable(rng: random.Random) -> str:
    return rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS)


def made_up_names(n: int, syllables: int, rng: random.Random, taken: set[str]) -> list[str]:
    """`n` distinct capitalised names of `syllables` syllables, none of them in `taken`."""
    out: list[str] = []
    misses = 0
    while len(out) < n:
        name = "".join(_syllable(rng) for _ in range(syllables)).capitalize()
        if name in taken:
            misses += 1
            if misses > 50 * n + 1000:  # the syllable space is too small for this request
                syllables += 1
                misses = 0
            continue
        taken.add(name)
        out.append(name)
    return out


class NameWorld:
    """Category names ``categories[h][layer]`` and item names ``items[h][layer][index]``.

    Every name is one capitalised word and unique across the world, so a name alone says
    whether it is an item or a category and where it sits (`where`).
    """

    def __init__(self, config: WorldConfig | None = None, reserved: frozenset[str] = frozenset()):
        self.config = c = config or WorldConfig()
        rng = random.Random(f"igsm-names-{c.seed}")
        taken = set(reserved) | _FORMAT_WORDS
        self.categories: list[list[str]] = [
            made_up_names(c.layers, 3, rng, taken) for _ in range(c.hierarchies)
        ]
        self.items: list[list[list[str]]] = [
            [made_up_names(c.items, 2, rng, taken) for _ in range(c.layers)]
            for _ in range(c.hierarchies)
        ]

    @cached_property
    def where(self) -> dict[str, tuple[str, int, int]]:
        """name -> ("item" or "category", hierarchy, layer)."""
        out: dict[str, tuple[str, int, int]] = {}
        for h, cats in enumerate(self.categories):
            for layer, cat in enumerate(cats):
                out[cat] = ("category", h, layer)
                for item in self.items[h][layer]:
                    out[item] = ("item", h, layer)
        return out

    def is_item(self, name: str) -> bool:
        return self.where.get(name, ("",))[0] == "item"

    def is_category(self, name: str) -> bool:
        return self.where.get(name, ("",))[0] == "category"

    def all_names(self) -> list[str]:
        return list(self.where)
