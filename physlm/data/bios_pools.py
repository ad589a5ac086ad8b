"""The value pools of bioS (Part 3.1 App. A.1; Part 3.3 Sec. 2), generated procedurally.

The paper draws names and attributes from fixed lists (400 first x 400 middle x 1000 last names,
200 birth cities, 300 universities, 100 majors, 263 employers with their headquarters city).
Only the *sizes* matter for the knowledge measure, so this module builds its own pools from
syllables and a few generic English words, deterministically from a fixed world seed. No list is
taken from another project.

Every pool is *prefix-free* as token sequences: no value is a proper prefix of another value of the
same attribute. Otherwise knowing "Velmora" versus "Velmora Falls" would hide in the token after the
value, which the capacity measure does not count.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from functools import lru_cache

WORLD_SEED = 33  # fixed: the pools are part of the world's definition, not of a run

# Pool sizes of the paper (Part 3.1 App. A.1; restated for bioS(N) in Part 3.3 Sec. 2).
N_FIRST, N_MIDDLE, N_LAST = 400, 400, 1000
N_CITIES, N_UNIVERSITIES, N_MAJORS, N_EMPLOYERS = 200, 300, 100, 263
N_STATES = 40
MONTHS: tuple[str, ...] = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)
DAYS: tuple[str, ...] = tuple(str(d) for d in range(1, 29))  # days 1..28
YEARS: tuple[str, ...] = tuple(str(y) for y in range(1900, 2100))  # years 1900..2099
PRONOUNS: tuple[str, ...] = ("He", "She")  # Part 3.3 counts the pronoun as a 2-valued attribute

_ONSETS = ("b bl br c ch cl cr d dr f fl fr g gl gr h j k l m n p pl pr qu r s sc sh sk sl st t "
           "th tr v w y z").split() + ["", ""]
_NUCLEI = "a e i o u a e i o a e i o u ai ea ee ia io ou".split()
_CODAS = ["", "", "", "", "n", "r", "l", "s", "m", "th", "nd", "rk", "ld", "st", "x", "ck", "nt",
          "rn", "ll", "sh"]
_NAME_ENDINGS = ("a", "e", "o", "ia", "en", "an", "ie", "is", "el", "yn")
_SURNAME_ENDINGS = ("son", "ford", "ley", "wick", "by", "ton", "ham", "well", "more", "field",
                    "stone", "worth", "ridge", "dale", "man", "er", "brook", "croft", "ard", "ing")
_CITY_PREFIXES = ("North", "South", "East", "West", "Port", "Lake", "Mount", "New", "Fort", "Glen")
_CITY_SUFFIXES = ("Falls", "Springs", "Heights", "Harbor", "Ridge", "Valley", "Bay", "Crossing",
                  "Park", "Junction")
_FIELDS = ("Physics", "Chemistry", "Biology", "History", "Economics", "Linguistics",
           "Mathematics", "Philosophy", "Sociology", "Geology", "Astronomy", "Music",
           "Architecture", "Nursing", "Law", "Statistics", "Psychology", "Anthropology", "Ecology",
           "Finance", "Literature", "Engineering", "Medicine", "Agriculture", "Education",
           "Journalism", "Design", "Theology", "Genetics", "Accounting", "Geography",
           "Oceanography", "Neuroscience", "Pharmacology", "Acoustics")
_MODIFIERS = ("Applied", "Computational", "Theoretical", "Marine", "Urban", "Comparative",
              "Environmental", "Molecular", "Political", "Cognitive", "Industrial", "Clinical",
              "Digital", "Quantitative", "Experimental")
_COMPANY_SUFFIXES = ("Systems", "Labs", "Group", "Foods", "Motors", "Energy", "Partners",
                     "Holdings", "Media", "Logistics", "Bank", "Health", "Robotics", "Airlines",
                     "Pharmaceuticals", "Networks", "Industries", "Capital", "Software",
                     "Insurance", "Textiles", "Mining", "Studios", "Analytics", "Semiconductors",
                     "Telecom", "Retail", "Biotech", "Aerospace", "Chemicals")
_UNIVERSITY_PATTERNS = (  # (pattern, weight)
    ("University of {r}", 25), ("{r} University", 25), ("{r} State University", 15),
    ("{r} College", 15), ("{r} Institute of Technology", 10), ("{r} Polytechnic Institute", 5),
    ("{r} Academy", 5),
)


@dataclass(frozen=True)
class BioSPools:
    """All value strings of bioS; ``employer_hq[i]`` indexes the HQ of employer i in ``cities``."""

    first: tuple[str, ...]
    middle: tuple[str, ...]
    last: tuple[str, ...]
    cities: tuple[str, ...]  # "City, ST"
    universities: tuple[str, ...]
    majors: tuple[str, ...]
    employers: tuple[str, ...]
    employer_hq: tuple[int, ...]

    @property
    def n_names(self) -> int:
        """N0 of Definition 4.3: the number of possible full names."""
        return len(self.first) * len(self.middle) * len(self.last)


# reject three vowels or three consonants in a row, and doubled vowels other than "ee"/"oo"
_BAD_RUN = re.compile(r"[aeiouy]{3}|[^aeiouy]{3}|aa|ii|uu")


class _WordMaker:
    """Pronounceable invented words, unique across the whole world."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.used: set[str] = set()

    def _syllable(self) -> str:
        r = self.rng
        return r.choice(_ONSETS) + r.choice(_NUCLEI) + r.choice(_CODAS)

    def make(self, n_syll: tuple[int, int], ending: tuple[str, ...] = (), lo: int = 4,
             hi: int = 10) -> str:
        while True:
            word = "".join(self._syllable() for _ in range(self.rng.randint(*n_syll)))
            if ending:
                word += self.rng.choice(ending)
            word = word.capitalize()
            if not (lo <= len(word) <= hi) or word in self.used:
                continue
            if _BAD_RUN.search(word.lower()):
                continue
            self.used.add(word)
            return word


def _weighted(rng: random.Random, items: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([p for p, _ in items], weights=[w for _, w in items])[0]


@lru_cache(maxsize=4)
def build_pools(seed: int = WORLD_SEED) -> BioSPools:
    """Build every bioS pool from ``seed`` (deterministic; cached)."""
    rng = random.Random(seed)
    words = _WordMaker(rng)
    words.used.update(_CITY_PREFIXES + _CITY_SUFFIXES + _FIELDS + _MODIFIERS + _COMPANY_SUFFIXES)
    words.used.update(MONTHS + PRONOUNS)

    first = tuple(words.make((1, 2), _NAME_ENDINGS) for _ in range(N_FIRST))
    middle = tuple(words.make((2, 2)) for _ in range(N_MIDDLE))
    last = tuple(words.make((1, 2), _SURNAME_ENDINGS, lo=5, hi=12) for _ in range(N_LAST))

    states = set()
    while len(states) < N_STATES:
        states.add(rng.choice("ABCDEFGHJKLMNPRSTVWXZ") + rng.choice("ACDEHKLMNORSTVXYZ"))
    states_list = sorted(states)
    city_roots = [words.make((2, 3)) for _ in range(N_CITIES)]
    cities = []
    for root in city_roots:
        u = rng.random()
        name = (f"{rng.choice(_CITY_PREFIXES)} {root}" if u < 0.25
                else f"{root} {rng.choice(_CITY_SUFFIXES)}" if u < 0.45 else root)
        cities.append(f"{name}, {rng.choice(states_list)}")

    universities = []
    spare_roots = city_roots[:]
    rng.shuffle(spare_roots)
    for i in range(N_UNIVERSITIES):
        root = spare_roots[i] if i < 120 else words.make((2, 3))
        universities.append(_weighted(rng, _UNIVERSITY_PATTERNS).format(r=root))
    rng.shuffle(universities)

    combos = [f"{m} {f}" for m in _MODIFIERS for f in _FIELDS]
    rng.shuffle(combos)
    bare = list(_FIELDS)
    rng.shuffle(bare)
    majors = sorted(bare[:20] + combos[:N_MAJORS - 20])
    rng.shuffle(majors)

    employers = [f"{words.make((1, 2), lo=4, hi=9)} {rng.choice(_COMPANY_SUFFIXES)}"
                 for _ in range(N_EMPLOYERS)]
    employer_hq = tuple(rng.randrange(N_CITIES) for _ in range(N_EMPLOYERS))
    return BioSPools(first=first, middle=middle, last=last, cities=tuple(cities),
                     universities=tuple(universities), majors=tuple(majors),
                     employers=tuple(employers), employer_hq=employer_hq)
