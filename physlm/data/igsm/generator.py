"""Drawing iGSM problems: a structure, a dependency graph, a question of the target op.

Part 2.1 (Sec. 2.2): a problem of op = s is drawn until its shortest solution has exactly s
operations and its template falls into the split's bins (official ``IdGen_PT._gen_prob``: a
rejection loop). Our loop draws a structure graph, then dependency graphs on it, and asks about
a parameter (instance or abstract) whose shortest solution has s operations, chosen uniformly
among those that have.

The training op is min(t0, t1) with t0, t1 uniform in 1..max_op (official
``gen_sol_op('light')``), or uniform (``op_dist="uniform"``). A drawn op is redrawn when no
problem of that op turns up (a split may hold no template at a small op: op = 1 has one template
only, which hashes into the train bins); the op distribution is then the one conditioned on
the split. Problem sentences are shuffled by
the official levels: 0-4 a mild shuffle of a random topological order (each sentence moves
later by up to `level` places), 5 a uniform permutation, 6 the solution's order followed by the
unnecessary sentences; ``perm_level=None`` draws the level uniformly per problem (official
``IdGen_PT`` when no level is given). The *reask* set (Part 2.1 Sec. 4) keeps a problem and
asks about another parameter, drawn uniformly: a question the generator did not design, whose
op is whatever it is.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from functools import cached_property

from physlm.data.igsm.dependency import DependencyGraph, abstract_bias, sample_formulas
from physlm.data.igsm.presets import LETTERS, IGSMConfig
from physlm.data.igsm.render import problem_text, question, solution_text
from physlm.data.igsm.solution import Solution, random_topological_order, shortest_solution
from physlm.data.igsm.split import template_bin
from physlm.data.igsm.structure import Param, sample_structure
from physlm.data.igsm.tokens import name_world

# structure graphs tried before a fixed op is declared infeasible (successful draws of med, hard
# and their out-of-distribution ops took at most 11 in a measurement of 30 problems each)
MAX_STRUCTURES = 300
GRAPHS_PER_STRUCTURE = 8
REDRAW_OP_EVERY = 20  # a drawn (not fixed) op is redrawn after this many failed structures


@dataclass(frozen=True)
class Problem:
    """One iGSM problem: graphs, question, the order of its sentences and its solution."""

    graph: DependencyGraph
    question: Param
    order: tuple[Param, ...]  # instance parameters in the order the problem states them
    solution: Solution
    p_format: str = "pq"

    @property
    def structure(self):
        return self.graph.structure

    @property
    def op(self) -> int:
        return self.solution.n_equations

    @property
    def answer(self) -> int:
        return self.graph.values[self.question]

    @cached_property
    def necessary(self) -> frozenset[Param]:
        return self.graph.necessary(self.question)

    @cached_property
    def problem_text(self) -> str:
        """The problem sentences (without the question)."""
        return problem_text(self.graph, self.order)

    @cached_property
    def question_text(self) -> str:
        return question(self.structure, self.question)

    @cached_property
    def text(self) -> str:
        """Problem and question in the order of `p_format` ("pq" or "qp")."""
        p, q = self.problem_text, self.question_text
        return f"{p} {q}" if self.p_format == "pq" else f"{q} {p}"

    @cached_property
    def solution_text(self) -> str:
        return solution_text(self.structure, self.solution)


def sample_op(rng: random.Random, max_op: int, op_dist: str) -> int:
    """The training op (see the module docstring)."""
    if op_dist == "uniform":
        return rng.randint(1, max_op)
    return min(rng.randint(1, max_op), rng.randint(1, max_op))


def statement_order(
    graph: DependencyGraph, solution: Solution, rng: random.Random, level: int
) -> tuple[Param, ...]:
    """The order of the problem's sentences at shuffle `level` (see the module docstring)."""
    inst = frozenset(graph.structure.instance_params)
    if level == 5:
        out = sorted(inst)
        rng.shuffle(out)
        return tuple(out)
    if level == 6:
        first = [p for p in solution.params if p.kind == 0]
        done = set(first)
        rest = random_topological_order(graph, frozenset(graph.structure.all_params), rng)
        return tuple(first + [p for p in rest if p.kind == 0 and p not in done])
    base = [
        p
        for p in random_topological_order(graph, frozenset(graph.structure.all_params), rng)
        if p.kind == 0
    ]
    keyed = [(t + rng.randint(0, level), rng.random(), p) for t, p in enumerate(base)]
    return tuple(p for _, _, p in sorted(keyed))


def generate(config: IGSMConfig, seed: int | str) -> Problem:
    """One problem of `config`, a pure function of (config, seed)."""
    if not isinstance(config, IGSMConfig):
        raise ValueError(f"config must be an IGSMConfig, got {type(config).__name__}")
    rng = random.Random(f"igsm-{seed}")
    world = name_world(config.world)
    target = config.op if config.op is not None else sample_op(rng, config.max_op, config.op_dist)
    bins = frozenset(config.bins)
    for attempt in range(1, MAX_STRUCTURES + 1):
        if config.op is None and attempt % REDRAW_OP_EVERY == 0:
            target = sample_op(rng, config.max_op, config.op_dist)
        structure = sample_structure(
            rng, target, config.max_edge, config.depth, config.width, world, config.abstract
        )
        for _ in range(GRAPHS_PER_STRUCTURE):
            formulas = sample_formulas(
                rng, structure, config.mod, config.max_operands, rng.random(), abstract_bias(rng)
            )
            graph = DependencyGraph(structure, formulas, config.mod)
            counts = graph.all_op_counts
            hits = [p for p in structure.all_params if counts[p] == target]
            if not hits:
                continue
            q = rng.choice(hits)
            solution = shortest_solution(graph, q, rng)
            if template_bin(solution_text(structure, solution), world) not in bins:
                continue
            level = config.perm_level if config.perm_level is not None else rng.randint(0, 6)
            order = statement_order(graph, solution, rng, level)
            return Problem(graph, q, order, solution, config.p_format)
    raise RuntimeError(
        f"no problem with op={target} found in {MAX_STRUCTURES} structure graphs of at most "
        f"max_edge={config.max_edge} edges, depth {config.depth}, width {config.width} whose "
        f"solution template falls in the {config.split!r} bins: raise max_edge, depth or width, "
        "or choose another op (at small op there are few templates, and a split may hold none "
        "of them: op=1 has a single template, in the train bins)"
    )


def reask(problem: Problem, seed: int | str) -> Problem:
    """The same problem asking about another parameter, drawn uniformly (Part 2.1 Sec. 4)
    among those whose solution fits the 52 letters."""
    rng = random.Random(f"igsm-reask-{seed}")
    counts = problem.graph.all_op_counts
    others = [
        p
        for p in problem.structure.all_params
        if p != problem.question and counts[p] <= len(LETTERS)
    ]
    if not others:
        raise ValueError("this problem has no other parameter to ask about")
    q = rng.choice(others)
    return replace(problem, question=q, solution=shortest_solution(problem.graph, q, rng))


def problems(config: IGSMConfig, n: int, seed: int | str = 0) -> list[Problem]:
    """`n` problems of `config`: problem t is ``generate(config, f"{seed}-{t}")``."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be an int >= 0, got {n!r}")
    return [generate(config, f"{seed}-{t}") for t in range(n)]
