"""iGSM generator: invariants checked against computations from the problem text.

The independent side is the checker's parser (`parse_problem`), which reads only the rendered
text and the world's nouns; counts of operations and values are recomputed here from text.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import replace

import pytest

from physlm.data.igsm import (
    IGSMConfig,
    WorldConfig,
    check,
    describe,
    generate,
    igsm_preset,
    name_world,
    parse_problem,
    problems,
    reask,
    sample_op,
    solution_template,
    template_bin,
)
from physlm.data.igsm.presets import TEST_BINS, TRAIN_BINS
from physlm.data.igsm.structure import sample_structure
from physlm.data.igsm.tokens import detokenize, tokenize

MED = igsm_preset("med")
CPU = igsm_preset("cpu")
SMALL_MED = [generate(MED, f"t{i}") for i in range(40)]
SMALL_CPU = [generate(CPU, f"t{i}") for i in range(60)]
_EQ = re.compile(r"([A-Za-z]) = ([^;.]*?)(?=;|\.(?: |$))")


def text_equations(solution: str) -> list[list[str]]:
    """The '='-separated segments of every equation, read from the solution text."""
    out = []
    for sentence in solution.split(". "):
        for part in sentence.rstrip(".").split("; ")[1:]:
            part = part.removeprefix("so ")
            out.append([s.strip() for s in part.split(" = ")])
    return out


def test_op_equals_the_equations_and_operators_of_the_solution_text():
    for p in SMALL_MED + SMALL_CPU:
        text = p.solution_text
        eqs = text_equations(text)
        assert p.op == len(eqs) == text.count(";")
        # every equation holds at most one binary operation, written twice (names, values)
        binary = [e for e in eqs if len(e) == 4]
        assert all(len(e) in (2, 3, 4) for e in eqs)
        signs = len(re.findall(r" [-+*] ", text))
        assert signs == 2 * len(binary)


def test_op_equals_the_in_degree_count_of_the_parsed_problem():
    """Part 2.1's op: max(1, in-degree - 1) over the necessary parameters, random node counted,
    recomputed from the problem text alone."""
    for p in SMALL_MED + SMALL_CPU:
        world = name_world(MED.world if p in SMALL_MED else CPU.world)
        parsed = parse_problem(p.text, world)
        total = 0
        for x in parsed.necessary():
            deps = parsed.deps(x)
            s = parsed.statements.get(x)
            indeg = len(deps) + (1 if s is not None and s.const is not None else 0)
            total += max(1, indeg - 1)
        assert total == p.op


def test_values_are_mod_23_and_equal_an_independent_evaluation():
    for p in SMALL_MED:
        parsed = parse_problem(p.text, name_world(MED.world))
        for x, v in p.graph.values.items():
            assert 0 <= v < 23
            assert parsed.value(p.structure.names(x)) == v
        assert parsed.value(parsed.question) == p.answer
        for seg in text_equations(p.solution_text):
            if len(seg) == 4:
                a, sign, b = seg[2].split()
                want = {"+": int(a) + int(b), "-": int(a) - int(b), "*": int(a) * int(b)}[sign]
                assert int(seg[3]) == want % 23
            assert all(0 <= int(n) < 23 for n in re.findall(r"\d+", " ".join(seg)))


def test_other_modulus():
    c = igsm_preset("cpu", mod=7)
    for i in range(20):
        p = generate(c, i)
        assert all(0 <= v < 7 for v in p.graph.values.values())
        assert parse_problem(p.text, name_world(c.world), mod=7).value(
            p.structure.names(p.question)
        ) == p.answer


def test_dependency_graph_is_a_dag_and_necessary_is_what_the_answer_depends_on():
    for p in SMALL_MED:
        g = p.graph
        order = {x: t for t, x in enumerate(g.topological)}
        assert all(order[d] < order[x] for x in order for d in g.preds(x))
        parsed = parse_problem(p.text, name_world(MED.world))
        assert {p.structure.names(x) for x in p.necessary} == parsed.necessary()
        # the solution computes exactly the necessary parameters, each once, in a topological order
        assert set(p.solution.params) == set(p.necessary)
        assert len(p.solution.params) == len(set(p.solution.params))
        pos = {x: t for t, x in enumerate(p.solution.params)}
        assert all(pos[d] < pos[x] for x in pos for d in g.preds(x))
        assert p.solution.params[-1] == p.question
        # changing an unnecessary parameter's constant never changes the answer
        for x in p.structure.instance_params:
            f = g.formulas[x]
            if x not in p.necessary and f.const is not None:
                formulas = {**g.formulas, x: replace(f, const=f.const % 22 + 1)}
                assert type(g)(g.structure, formulas, g.mod).values[p.question] == p.answer


def test_structure_respects_the_difficulty_limits():
    for p in SMALL_MED:
        s = p.structure
        assert 2 <= s.depth <= 4 and all(2 <= n <= 4 for n in s.sizes)
        assert s.n_edges <= MED.max_edge
        # every lower item has a parent; edges join adjacent layers only
        for i in range(1, s.depth):
            assert all(any(k in s.children[i - 1][j] for j in range(s.sizes[i - 1]))
                       for k in range(s.sizes[i]))
        # every sentence of the problem states one edge: all edges are stated
        assert len(p.order) == s.n_edges == p.problem_text.count(".")
        assert max(len(p.graph.formulas[x].operands) + (p.graph.formulas[x].const is not None)
                   for x in s.instance_params) <= MED.max_operands


def test_names_come_from_the_world_and_each_layer_is_one_category():
    world = name_world(MED.world)
    for p in SMALL_MED:
        s = p.structure
        for i, layer in enumerate(s.items):
            cats = {world.where[n][1:] for n in layer}
            assert cats == {(s.hierarchy, s.top + i)}
            assert world.where[s.categories[i]] == ("category", s.hierarchy, s.top + i)


def test_training_op_distribution_is_the_min_of_two_uniforms():
    import random

    rng = random.Random(0)
    n, m = 40000, 15
    counts = Counter(sample_op(rng, m, "light") for _ in range(n))
    for k in (1, 5, 8, 15):
        want = (2 * (m - k) + 1) / m**2  # P(min(t0, t1) = k)
        assert abs(counts[k] / n - want) < 4 * (want / n) ** 0.5 + 1e-3
    gen = Counter(p.op for p in SMALL_CPU)
    assert set(gen) <= {1, 2, 3} and gen[1] > gen[3]


def test_fixed_op_and_out_of_distribution_ops():
    for op in (5, 20):
        for i in range(3):
            p = generate(MED.test_set(op), i)
            assert p.op == op and template_bin(p.solution_text, name_world(MED.world)) in TEST_BINS


def test_determinism_per_seed():
    a, b = generate(MED, 7), generate(MED, 7)
    assert (a.text, a.solution_text, a.answer) == (b.text, b.solution_text, b.answer)
    assert generate(MED, 8).text != a.text
    assert [p.text for p in problems(CPU, 5, seed=3)] == [p.text for p in problems(CPU, 5, seed=3)]
    assert reask(a, 1).solution_text == reask(b, 1).solution_text


def test_split_is_disjoint_by_template_hash():
    world = name_world(CPU.world)
    test_cfg = replace(CPU, split="test", op=3)
    train = [generate(replace(CPU, op=3), i) for i in range(150)]
    test = [generate(test_cfg, i) for i in range(150)]
    t_train = {solution_template(p.solution_text, world) for p in train}
    t_test = {solution_template(p.solution_text, world) for p in test}
    assert t_train and t_test and not t_train & t_test
    assert {template_bin(p.solution_text, world) for p in train} <= set(TRAIN_BINS)
    assert {template_bin(p.solution_text, world) for p in test} <= set(TEST_BINS)


def test_template_ignores_names_numbers_and_letters():
    world = name_world(MED.world)
    p = SMALL_MED[0]
    tpl = solution_template(p.solution_text, world)
    assert not re.search(r"[1-9]", tpl)
    assert all(n not in tpl.split() for n in world.all_names())
    # renaming letters consistently keeps the template
    swap = dict(zip("abcABC", "ABCabc", strict=True))
    swapped = detokenize(swap.get(t, t) if len(t) == 1 else t for t in tokenize(p.solution_text))
    assert swapped != p.solution_text or not set(swap) & set(tokenize(p.solution_text))
    assert solution_template(swapped, world) == tpl


def test_op_one_has_a_single_template_in_the_train_bins():
    world = name_world(MED.world)
    ones = {solution_template(generate(replace(MED, op=1), i).solution_text, world)
            for i in range(30)}
    assert len(ones) == 1
    assert template_bin(next(iter(ones)), world) in TRAIN_BINS
    with pytest.raises(RuntimeError, match="op=1"):
        generate(replace(MED, op=1, split="test"), 0)


def test_reask_asks_about_another_parameter():
    changed = 0
    for i, p in enumerate(SMALL_MED[:20]):
        r = reask(p, i)
        assert r.question != p.question and r.text != p.text and r.problem_text == p.problem_text
        assert set(r.solution.params) == set(r.graph.necessary(r.question))
        changed += r.op != p.op
    assert changed > 0


def test_abstract_parameters_are_used():
    assert any(any(x.kind == 1 for x in p.necessary) for p in SMALL_MED)
    assert any(p.question.kind == 1 for p in SMALL_MED)


def test_structure_sampler_respects_widths():
    import random

    world = name_world(CPU.world)
    for seed in range(50):
        s = sample_structure(random.Random(seed), 3, 6, (2, 3), (2, 3), world)
        assert 2 <= s.depth <= 3 and all(2 <= n <= 3 for n in s.sizes) and s.n_edges <= 6


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"max_op": 0}, "max_op"),
        ({"max_op": 53}, "max_op"),
        ({"op": 0}, "op must"),
        ({"op_dist": "heavy"}, "op_dist"),
        ({"mod": 1}, "mod"),
        ({"max_operands": 1}, "max_operands"),
        ({"depth": (1, 3)}, "depth"),
        ({"depth": (3, 2)}, "depth"),
        ({"depth": (2, 5)}, "depth"),
        ({"width": (0, 2)}, "width"),
        ({"perm_level": 7}, "perm_level"),
        ({"p_format": "pp"}, "p_format"),
        ({"split": "dev"}, "split"),
        ({"max_edge": 1}, "max_edge"),
        ({"max_edge": 3, "depth": (4, 4), "width": (2, 2)}, "max_edge"),
        ({"max_edge": 11}, "max_edge"),
        ({"world": "big"}, "world"),
        ({"abstract": 1}, "abstract"),
    ],
)
def test_bad_parameters_fail_naming_them(kw, match):
    with pytest.raises(ValueError, match=match):
        IGSMConfig(**kw)


def test_bad_world_and_preset_names():
    with pytest.raises(ValueError, match="items"):
        WorldConfig(items=1)
    with pytest.raises(ValueError, match="preset"):
        igsm_preset("huge")
    with pytest.raises(ValueError, match="n must"):
        problems(CPU, -1)
    with pytest.raises(ValueError, match="config must be an IGSMConfig"):
        generate("med", 0)


def test_presets_are_the_papers():
    med, hard = igsm_preset("med"), igsm_preset("hard")
    assert (med.max_op, med.max_edge, med.mod) == (15, 20, 23)
    assert (hard.max_op, hard.max_edge, hard.mod) == (21, 28, 23)
    assert med.world == WorldConfig(4, 4, 100) and med.depth == (2, 4) == med.width


def test_problem_order_formats():
    p = generate(replace(CPU, p_format="qp"), 1)
    assert p.text.startswith("How many") and p.text.endswith(".")
    q = generate(CPU, 1)
    assert q.text.endswith("?")
    # level 6 states the necessary instance parameters first, in the solution's order
    r = generate(replace(MED, perm_level=6), 2)
    inst = [x for x in r.solution.params if x.kind == 0]
    assert list(r.order[: len(inst)]) == inst


def test_describe_counts_from_the_text():
    d = describe(SMALL_CPU)
    assert d["n"] == len(SMALL_CPU) and sum(d["op"].values()) == len(SMALL_CPU)
    assert d["op"] == dict(sorted(Counter(p.solution_text.count(";") for p in SMALL_CPU).items()))
    world = name_world(CPU.world)
    unneeded = []
    for p in SMALL_CPU:
        parsed = parse_problem(p.text, world)
        unneeded.append(len(set(parsed.statements) - parsed.necessary()))
    assert d["mean_unnecessary_stated"] == pytest.approx(sum(unneeded) / len(unneeded))
    assert d["mean_edges"] == pytest.approx(sum(p.problem_text.count(".") for p in SMALL_CPU)
                                            / len(SMALL_CPU))
    with pytest.raises(ValueError, match="empty"):
        describe([])


def test_without_abstract_parameters():
    c = igsm_preset("cpu", abstract=False)
    world = name_world(c.world)
    for i in range(40):
        p = generate(c, i)
        assert all(x.kind == 0 for x in p.structure.all_params) and p.question.kind == 0
        assert not any(world.is_category(t) for t in tokenize(p.text + " " + p.solution_text))
        assert check(p.text, p.solution_text, world, p.answer).correct
    assert {generate(c, i).op for i in range(60)} == {1, 2, 3}
