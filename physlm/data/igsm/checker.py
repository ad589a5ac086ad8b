"""A full-solution checker for iGSM that reads only text (and the world's nouns).

Part 2.1 (Sec. 3, "we check the correctness of the entire solution"; official
``tools_test.true_correct``, which reports the first wrong parameter, the missing required
parameters and the unnecessary ones). This checker shares no code with the generator: it parses
the problem sentences into its own dependency graph, resolves abstract parameters from the
stated edges and the world's categories, evaluates every parameter mod `mod`, and then walks the
solution sentence by sentence. A sentence "Define P as x; ...; so x = ..." is right when

1. P is a parameter of the problem and is not defined twice,
2. P is computable: every parameter it depends on was defined by an earlier sentence,
3. letters are fresh when defined and defined before they are used,
4. its equations reference exactly P's dependencies (through intermediate letters),
5. each equation substitutes the values written earlier and computes its result mod `mod`,
6. the result is P's true value.

The first violation is the *first wrong parameter*; the solution is `valid` when no sentence
is wrong, the question's parameter is defined and the answer is right, and `correct` when it is
also shortest (no unnecessary parameter: Part 2.1 Result 3).

Retries (Part 2.2 Sec. 4): with ``allow_retry`` a fragment "Define W as [BACK]." is taken back;
the report counts retries (and those whose W really was not yet computable) and checks the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from physlm.data.igsm.names import NameWorld
from physlm.data.igsm.tokens import ANS, BACK, tokenize

KINDS = (
    "parse",
    "unknown_parameter",
    "duplicate",
    "not_computable",
    "bad_letter",
    "wrong_dependencies",
    "wrong_arithmetic",
    "wrong_value",
)
_LETTER_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
Name = tuple[str, str]  # (owner, owned): "A's B"


def show(p: Name) -> str:
    return f"{p[0]}'s {p[1]}"


class ParseError(ValueError):
    pass


@dataclass
class Statement:
    const: int | None
    const_op: str | None
    operands: list[Name]
    combine: str


class _Cursor:
    def __init__(self, toks: list[str]):
        self.toks, self.t = toks, 0

    def peek(self, k: int = 0) -> str | None:
        return self.toks[self.t + k] if self.t + k < len(self.toks) else None

    def take(self, expected: str | None = None) -> str:
        tok = self.peek()
        if tok is None or (expected is not None and tok != expected):
            want = f"{expected!r}" if expected else "a token"
            raise ParseError(f"expected {want} at token {self.t}, got {tok!r}")
        self.t += 1
        return tok

    def words(self, *ws: str) -> None:
        for w in ws:
            self.take(w)

    def number(self) -> int:
        tok = self.take()
        if not tok.isdigit():
            raise ParseError(f"expected a number at token {self.t - 1}, got {tok!r}")
        return int(tok)


def _param(c: _Cursor) -> Name:
    owner = c.take()
    c.take("'s")
    return owner, c.take()


def _quoted(c: _Cursor) -> Name:
    c.take("each")
    return _param(c)


def _statement(c: _Cursor) -> tuple[Name, Statement]:
    c.words("The", "number", "of")
    p = _quoted(c)
    c.take("equals")
    const = const_op = None
    if c.peek() is not None and c.peek().isdigit():
        const = c.number()
        if c.peek() == ".":
            return p, Statement(const, None, [], "sum")
        if c.peek() == "more":
            c.words("more", "than")
            const_op = "add"
        else:
            c.words("times", "as", "much", "as")
            const_op = "mul"
    combine, operands = "sum", []
    if c.peek() == "the":
        c.take("the")
        kind = c.take()
        if kind not in ("sum", "difference"):
            raise ParseError(f"expected 'sum' or 'difference', got {kind!r}")
        c.take("of")
        operands.append(_quoted(c))
        while c.peek() == ",":
            c.take(",")
            operands.append(_quoted(c))
        c.take("and")
        operands.append(_quoted(c))
        if kind == "difference":
            if len(operands) != 2:
                raise ParseError("a difference takes exactly two parameters")
            combine = "diff"
    else:
        operands.append(_quoted(c))
    return p, Statement(const, const_op, operands, combine)


@dataclass
class ParsedProblem:
    """The checker's own reading of a problem text."""

    statements: dict[Name, Statement]
    question: Name
    world: NameWorld
    mod: int

    def __post_init__(self) -> None:
        self.children: dict[str, list[str]] = {}
        for a, b in self.statements:
            self.children.setdefault(a, []).append(b)
        self._deps: dict[Name, list[Name] | None] = {}
        self._values: dict[Name, int] = {}

    def layer(self, name: str) -> tuple[int, int] | None:
        w = self.world.where.get(name)
        return None if w is None else (w[1], w[2])

    def _reaches(self, item: str, category: str, seen: frozenset[str] = frozenset()) -> bool:
        if item in seen:
            return False
        for x in self.children.get(item, ()):
            if self.world.where.get(x, ("",))[0] == "item" and self.layer(x) == self.layer(
                category
            ):
                return True
            if self._reaches(x, category, seen | {item}):
                return True
        return False

    def deps(self, p: Name) -> list[Name] | None:
        """The parameters p is computed from, or None if p is not a parameter of the problem."""
        if p in self._deps:
            return self._deps[p]
        out: list[Name] | None
        if p in self.statements:
            out = list(self.statements[p].operands)
        elif (
            self.world.is_item(p[0])
            and self.world.is_category(p[1])
            and self.layer(p[0])[0] == self.layer(p[1])[0]
            and self.layer(p[1])[1] > self.layer(p[0])[1]
            and self._reaches(p[0], p[1])
        ):
            out = []
            for x in self.children.get(p[0], ()):
                if self.layer(x) == self.layer(p[1]):
                    out.append((p[0], x))
                elif self._reaches(x, p[1]):
                    out += [(p[0], x), (x, p[1])]
        else:
            out = None
        self._deps[p] = out
        return out

    def value(self, p: Name, stack: frozenset[Name] = frozenset()) -> int:
        if p in self._values:
            return self._values[p]
        if p in stack:
            raise ParseError(f"the problem's dependencies have a cycle through {show(p)}")
        if self.deps(p) is None:
            raise ParseError(f"{show(p)} is not a parameter of the problem")
        inner = stack | {p}
        m = self.mod
        if p in self.statements:
            s = self.statements[p]
            xs = [self.value(x, inner) for x in s.operands]
            if not xs:
                v = s.const
            else:
                v = xs[0] - xs[1] if s.combine == "diff" else sum(xs)
                if s.const_op == "add":
                    v = s.const + v
                elif s.const_op == "mul":
                    v = s.const * v
        else:
            v = 0
            for x in self.children.get(p[0], ()):
                if self.layer(x) == self.layer(p[1]):
                    v += self.value((p[0], x), inner)
                elif self._reaches(x, p[1]):
                    v += self.value((p[0], x), inner) * self.value((x, p[1]), inner)
        self._values[p] = v % m
        return v % m

    def can_next(self, p: Name, defined: set[Name] | dict[Name, str]) -> bool:
        """Part 2.1 Sec. 4's can_next(p) after the parameters `defined`: p is a parameter of the
        problem, not defined yet, and everything it depends on is (Part 2.2's error detector
        asks this at "Define p as")."""
        deps = self.deps(p)
        return deps is not None and p not in defined and all(x in defined for x in deps)

    def necessary(self) -> set[Name]:
        seen, stack = {self.question}, [self.question]
        while stack:
            for x in self.deps(stack.pop()) or ():
                if x not in seen:
                    seen.add(x)
                    stack.append(x)
        return seen

    def parameters(self) -> list[Name]:
        """Every parameter of the problem: the stated ones and every valid abstract one."""
        out = list(self.statements)
        for a in sorted({x for p in self.statements for x in p}):
            if not self.world.is_item(a):
                continue
            h, layer = self.layer(a)
            for cat in self.world.categories[h][layer + 1 :]:
                if self.deps((a, cat)) is not None:
                    out.append((a, cat))
        return out


def parse_problem(text: str, world: NameWorld, mod: int = 23) -> ParsedProblem:
    """Read the problem sentences and the question (in either order) from `text`."""
    c = _Cursor(tokenize(text))
    statements: dict[Name, Statement] = {}
    q: Name | None = None
    while c.peek() is not None:
        if c.peek() == "How":
            c.words("How", "many")
            owned = c.take()
            c.take("does")
            owner = c.take()
            c.words("have", "?")
            q = (owner, owned)
            continue
        p, s = _statement(c)
        c.take(".")
        if p in statements:
            raise ParseError(f"{show(p)} is stated twice")
        statements[p] = s
    if q is None:
        raise ParseError("the problem has no question")
    problem = ParsedProblem(statements, q, world, mod)
    if problem.deps(q) is None:
        raise ParseError(f"the question asks about {show(q)}, not a parameter of the problem")
    return problem


@dataclass
class StepError:
    sentence: int  # index among the solution's (non-retry) sentences
    param: str | None
    kind: str
    detail: str


@dataclass
class CheckReport:
    """What `check` found; `first_error` is the first wrong parameter."""

    parsed: bool
    errors: list[StepError] = field(default_factory=list)
    defined: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unnecessary: list[str] = field(default_factory=list)
    question_defined: bool = False
    answer_ok: bool = False
    retries: int = 0
    justified_retries: int = 0
    retries_per_sentence: list[int] = field(default_factory=list)

    @property
    def first_error(self) -> StepError | None:
        return self.errors[0] if self.errors else None

    @property
    def first_wrong_param(self) -> str | None:
        return self.errors[0].param if self.errors else None

    @property
    def valid(self) -> bool:
        """Every step right, the question's parameter computed, the answer right."""
        return self.parsed and not self.errors and self.question_defined and self.answer_ok

    @property
    def correct(self) -> bool:
        """Valid and shortest: no unnecessary parameter."""
        return self.valid and not self.unnecessary


class _Walk:
    """State of the walk through one solution."""

    def __init__(self, problem: ParsedProblem):
        self.problem = problem
        self.letter_value: dict[str, int] = {}
        self.letter_param: dict[str, Name] = {}
        self.letter_refs: dict[str, frozenset[Name]] = {}  # intermediate letter -> params
        self.defined: dict[Name, str] = {}

    def refs(self, name: str) -> frozenset[Name]:
        if name in self.letter_param:
            return frozenset({self.letter_param[name]})
        return self.letter_refs.get(name, frozenset())


def _equation(c: _Cursor, final: bool) -> tuple[str, list[list[str]]]:
    """``[so] x = seg = seg ...`` up to ";" or "."; returns x and the token segments."""
    if final:
        c.take("so")
    lhs = c.take()
    segs: list[list[str]] = []
    while c.peek() == "=":
        c.take("=")
        seg = []
        while c.peek() not in (None, "=", ";", "."):
            seg.append(c.take())
        segs.append(seg)
    if not segs:
        raise ParseError(f"equation for {lhs!r} has no right-hand side")
    return lhs, segs


def _check_equation(
    walk: _Walk, lhs: str, segs: list[list[str]], mod: int
) -> tuple[str | None, str, int, frozenset[Name]]:
    """(error kind or None, detail, result, referenced params) of one equation."""
    if len(segs) == 1 and len(segs[0]) == 1 and segs[0][0].isdigit():  # x = 5
        return None, "", int(segs[0][0]), frozenset()
    if len(segs) == 2 and len(segs[0]) == 1 and len(segs[1]) == 1:  # x = y = 7
        (y,), (v,) = segs
        if y not in walk.letter_value:
            return "bad_letter", f"{y!r} is used before it is defined", 0, frozenset()
        if not v.isdigit():
            raise ParseError(f"expected a number after {y!r}, got {v!r}")
        if int(v) != walk.letter_value[y]:
            return "wrong_arithmetic", f"{y} = {walk.letter_value[y]}, not {v}", int(v), frozenset()
        return None, "", int(v), walk.refs(y)
    if len(segs) == 3 and len(segs[0]) == 3 and len(segs[1]) == 3 and len(segs[2]) == 1:
        (a, sign, b), (va, sign2, vb), (r,) = segs
        numbers = va.isdigit() and vb.isdigit() and r.isdigit()
        if sign not in ("+", "-", "*") or sign2 != sign or not numbers:
            raise ParseError(f"malformed equation for {lhs!r}: {segs}")
        refs: frozenset[Name] = frozenset()
        for name, val in ((a, va), (b, vb)):
            if name.isdigit():
                if name != val:
                    return "wrong_arithmetic", f"constant {name} written as {val}", 0, refs
                continue
            if name not in walk.letter_value:
                return "bad_letter", f"{name!r} is used before it is defined", 0, refs
            if int(val) != walk.letter_value[name]:
                detail = f"{name} = {walk.letter_value[name]}, not {val}"
                return "wrong_arithmetic", detail, int(r), refs
            refs = refs | walk.refs(name)
        x, y = int(va), int(vb)
        want = (x + y if sign == "+" else x - y if sign == "-" else x * y) % mod
        if int(r) != want:
            return "wrong_arithmetic", f"{va} {sign} {vb} = {want}, not {r}", int(r), refs
        return None, "", int(r), refs
    raise ParseError(f"malformed equation for {lhs!r}: {segs}")


def check(
    problem_text: str,
    solution_text: str,
    world: NameWorld,
    answer: str | int | None = None,
    mod: int = 23,
    allow_retry: bool = False,
) -> CheckReport:
    """Check a solution against the problem (see the module docstring).

    `answer` is the final answer as written after the solution (None: the value the solution
    gives the question's parameter). Raises ParseError if the *problem* cannot be read; a
    solution that cannot be read gives a report with ``parsed=False``.
    """
    problem = parse_problem(problem_text, world, mod)
    report = CheckReport(parsed=True)
    walk = _Walk(problem)
    c = _Cursor(tokenize(solution_text))
    sentence, pending_retries = 0, 0

    def error(kind: str, param: Name | None, detail: str) -> None:
        report.errors.append(StepError(sentence, show(param) if param else None, kind, detail))

    try:
        while c.peek() is not None and c.peek() != ANS:
            c.take("Define")
            p = _param(c)
            c.take("as")
            if c.peek() == BACK:
                if not allow_retry:
                    raise ParseError("[BACK] in a solution checked without allow_retry")
                c.take(BACK)
                c.take(".")
                report.retries += 1
                pending_retries += 1
                deps = problem.deps(p)
                if deps is not None and p not in walk.defined:
                    if any(x not in walk.defined for x in deps):
                        report.justified_retries += 1
                continue
            letter = c.take()
            if letter not in _LETTER_OK:
                raise ParseError(f"expected a letter after 'as', got {letter!r}")
            equations = []
            while c.peek() == ";":
                c.take(";")
                final = c.peek() == "so"
                equations.append((final, *_equation(c, final)))
                if final:
                    break
            c.take(".")
            if not equations or not equations[-1][0]:
                raise ParseError(f"sentence {sentence} has no final 'so' equation")
            report.retries_per_sentence.append(pending_retries)
            pending_retries = 0
            _check_sentence(walk, p, letter, equations, error, mod)
            sentence += 1
    except ParseError as e:
        report.parsed = False
        report.errors.append(StepError(sentence, None, "parse", str(e)))
    if pending_retries:
        report.retries_per_sentence.append(pending_retries)
    if answer is None and report.parsed and c.peek() == ANS:
        c.take(ANS)
        answer = c.peek()

    needed = problem.necessary()
    report.defined = [show(p) for p in walk.defined]
    report.missing = [
        show(p) for p in problem.parameters() if p in needed and p not in walk.defined
    ]
    report.unnecessary = [show(p) for p in walk.defined if p not in needed]
    q = problem.question
    report.question_defined = q in walk.defined
    truth = problem.value(q)
    if answer is None:
        given = walk.letter_value.get(walk.defined.get(q, ""))
    else:
        given = int(answer) if str(answer).strip().isdigit() else None
    report.answer_ok = given == truth
    return report


def _check_sentence(walk: _Walk, p: Name, letter: str, equations, error, mod: int) -> None:
    """Check one sentence (the order of the module docstring) and bind its letters."""
    problem = walk.problem
    deps = problem.deps(p)
    kind: str | None = None
    detail = ""
    if deps is None:
        kind, detail = "unknown_parameter", f"{show(p)} is not a parameter of the problem"
    elif p in walk.defined:
        kind, detail = "duplicate", f"{show(p)} is defined twice"
    else:
        missing = [x for x in deps if x not in walk.defined]
        if missing:
            kind, detail = "not_computable", f"needs {', '.join(show(x) for x in missing)} first"
    fresh = letter not in walk.letter_value
    if kind is None and not fresh:
        kind, detail = "bad_letter", f"letter {letter!r} is already in use"
    refs: frozenset[Name] = frozenset()
    result = 0
    for final, lhs, segs in equations:
        if kind is None and final and lhs != letter:
            kind, detail = "bad_letter", f"'so {lhs}' does not close the sentence of {letter!r}"
        if kind is None and lhs not in _LETTER_OK:
            kind, detail = "bad_letter", f"{lhs!r} is not a letter"
        if kind is None and not final and (lhs in walk.letter_value or lhs == letter):
            kind, detail = "bad_letter", f"intermediate letter {lhs!r} is already in use"
        bad, why, result, refs = _check_equation(walk, lhs, segs, mod)
        if kind is None and bad is not None:
            kind, detail = bad, why
        if not final:
            walk.letter_value.setdefault(lhs, result)
            walk.letter_refs.setdefault(lhs, refs)
    if deps is not None and p not in walk.defined:
        walk.defined[p] = letter
    if fresh:
        walk.letter_value[letter] = result
        if deps is not None:
            walk.letter_param[letter] = p
    if kind is None and refs != frozenset(deps):
        want = ", ".join(sorted(show(x) for x in deps)) or "a constant only"
        kind, detail = "wrong_dependencies", f"{show(p)} is computed from {want}"
    if kind is None and result != problem.value(p):
        kind, detail = "wrong_value", f"{show(p)} = {problem.value(p)}, not {result}"
    if kind is not None:
        error(kind, p, detail)
