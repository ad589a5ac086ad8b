"""The full-solution checker: accepts every generated solution, rejects planted mistakes with the
right report (kind, first wrong parameter, missing and unnecessary parameters)."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from physlm.data.igsm import check, generate, igsm_preset, name_world, reask
from physlm.data.igsm.checker import ParseError, parse_problem
from physlm.data.igsm.presets import LETTERS
from physlm.data.igsm.render import param_phrase, solution_text
from physlm.data.igsm.solution import Solution, write_sentence

MED, HARD, CPU = igsm_preset("med"), igsm_preset("hard"), igsm_preset("cpu")
WORLD = name_world(MED.world)
PROBLEMS = [generate(MED, f"c{i}") for i in range(40)]
MULTI = [p for p in PROBLEMS if len(p.solution.sentences) >= 3]


def run(p, sentences, answer=None):
    text = solution_text(p.structure, Solution(tuple(sentences)))
    return check(p.text, text, WORLD, p.answer if answer is None else answer)


def name(p, x) -> str:
    return param_phrase(p.structure, x, False)


@pytest.mark.parametrize("preset", ["smoke", "cpu", "med", "hard"])
def test_accepts_every_generated_solution(preset):
    c = igsm_preset(preset)
    world = name_world(c.world)
    for i in range(40):
        for p in (generate(c, i), reask(generate(c, i), i)):
            r = check(p.text, p.solution_text, world, p.answer, c.mod)
            assert r.correct and r.valid and not r.errors and not r.missing and not r.unnecessary
            assert r.defined == [name(p, x) for x in p.solution.params]


def test_accepts_out_of_distribution_and_qp():
    for p in [generate(MED.test_set(22), 0), generate(replace(MED, p_format="qp"), 1)]:
        assert check(p.text, p.solution_text, WORLD, p.answer).correct


def test_wrong_answer():
    p = PROBLEMS[0]
    r = check(p.text, p.solution_text, WORLD, (p.answer + 1) % 23)
    assert not r.valid and not r.errors and not r.answer_ok
    assert check(p.text, p.solution_text, WORLD, None).answer_ok  # from the solution itself


def test_wrong_value_of_a_constant():
    seen = 0
    for p in MULTI:
        sents = list(p.solution.sentences)
        for s, sent in enumerate(sents):
            eq = sent.equations[-1]
            if len(sent.equations) == 1 and eq.sign is None and eq.operands[0].const:
                bad = eq._replace(result=(eq.result + 1) % 23)
                sents[s] = replace(sent, equations=(bad,))
                r = run(p, sents)
                assert not r.valid and r.first_error.kind == "wrong_value"
                assert r.first_wrong_param == name(p, sent.param) and r.first_error.sentence == s
                seen += 1
                break
    assert seen >= 5


def test_wrong_arithmetic():
    seen = 0
    for p in MULTI:
        sents = list(p.solution.sentences)
        for s, sent in enumerate(sents):
            if sent.equations[-1].sign is not None:
                eqs = list(sent.equations)
                eqs[-1] = eqs[-1]._replace(result=(eqs[-1].result + 5) % 23)
                sents[s] = replace(sent, equations=tuple(eqs))
                r = run(p, sents)
                assert r.first_error.kind == "wrong_arithmetic"
                assert r.first_wrong_param == name(p, sent.param)
                seen += 1
                break
    assert seen >= 5


def test_missing_step_is_not_computable_where_it_is_first_needed():
    for p in MULTI:
        order = p.solution.params
        s = random.Random(str(order)).randrange(len(order) - 1)
        gone = order[s]
        sents = [x for t, x in enumerate(p.solution.sentences) if t != s]
        r = run(p, sents)
        # independent expectation from the generator's graph: the first later user of `gone`
        users = [t for t, x in enumerate(order) if gone in p.graph.preds(x)]
        first = users[0]
        assert r.first_error.kind == "not_computable"
        assert r.first_wrong_param == name(p, order[first])
        assert r.first_error.sentence == first - 1
        assert r.missing == [name(p, gone)] and not r.unnecessary and not r.valid


def test_missing_last_step():
    p = MULTI[0]
    r = run(p, p.solution.sentences[:-1])
    assert not r.errors and not r.question_defined and not r.valid
    assert r.missing == [name(p, p.question)]


def test_unnecessary_step_is_reported_but_valid():
    seen = 0
    for p in PROBLEMS:
        extra = [x for x in p.structure.all_params if x not in p.necessary
                 and all(d in p.necessary for d in p.graph.preds(x))]
        if not extra:
            continue
        x = extra[0]
        letter_of = {s.param: s.letter for s in p.solution.sentences}
        used = {eq.lhs for s in p.solution.sentences for eq in s.equations}
        letters = [a for a in LETTERS if a not in used]
        sent = write_sentence(p.graph, x, letter_of, letters)
        sents = list(p.solution.sentences)
        sents.append(sent)
        r = run(p, sents)
        assert r.valid and not r.correct and r.unnecessary == [name(p, x)] and not r.missing
        seen += 1
    assert seen >= 5


def test_out_of_order_step():
    seen = 0
    for p in MULTI:
        order = p.solution.params
        for s in range(len(order) - 1):
            if order[s] in p.graph.preds(order[s + 1]):
                sents = list(p.solution.sentences)
                sents[s], sents[s + 1] = sents[s + 1], sents[s]
                r = run(p, sents)
                assert r.first_error.kind == "not_computable" and r.first_error.sentence == s
                assert r.first_wrong_param == name(p, order[s + 1])
                assert not r.missing and not r.valid
                seen += 1
                break
    assert seen >= 5


def test_wrong_dependency_with_consistent_arithmetic():
    """Quote another known parameter (and its value): arithmetic holds, dependencies do not."""
    seen = 0
    for p in MULTI:
        sents = list(p.solution.sentences)
        for s in range(1, len(sents)):
            sent = sents[s]
            eq = sent.equations[-1]
            if len(sent.equations) != 1 or eq.sign is not None or eq.operands[0].const:
                continue
            own = eq.operands[0].name
            other = next((x for x in sents[:s] if x.letter != own), None)
            if other is None:
                continue
            value = other.equations[-1].result
            bad = eq._replace(operands=(eq.operands[0]._replace(name=other.letter, value=value),),
                              result=value)
            sents[s] = replace(sent, equations=(bad,))
            r = run(p, sents)
            assert r.first_error.kind == "wrong_dependencies"
            assert r.first_wrong_param == name(p, sent.param)
            seen += 1
            break
    assert seen >= 3


def test_unknown_parameter_duplicate_and_bad_letters():
    p = MULTI[0]
    text = p.solution_text
    first = p.solution.sentences[0]
    a, b = p.structure.names(first.param)
    r = check(p.text, text.replace(f"Define {a}'s {b} as", f"Define {b}'s {a} as", 1), WORLD)
    assert r.first_error.kind == "unknown_parameter" and r.first_wrong_param == f"{b}'s {a}"
    sents = list(p.solution.sentences)
    r = run(p, [sents[0], sents[0], *sents[1:]])
    assert r.first_error.kind == "duplicate" and r.first_error.sentence == 1
    twin = replace(sents[1], letter=sents[0].letter, equations=tuple(
        e._replace(lhs=sents[0].letter) if e.lhs == sents[1].letter else e
        for e in sents[1].equations))
    r = run(p, [sents[0], twin, *sents[2:]])
    assert r.first_error.kind in ("bad_letter", "not_computable") and r.first_error.sentence == 1


def test_numbers_must_be_residues_and_letters_letters():
    for p in MULTI:
        sents = list(p.solution.sentences)
        s, sent = next(((t, x) for t, x in enumerate(sents) if len(x.equations) == 1
                        and x.equations[0].sign is None and x.equations[0].operands[0].const),
                       (None, None))
        if sent is None:
            continue
        eq = sent.equations[0]
        sents[s] = replace(sent, equations=(eq._replace(result=eq.result + 23),))
        r = run(p, sents)
        assert r.first_error.kind == "wrong_value" and r.first_error.sentence == s
        text = p.solution_text.replace(f"so {sent.letter} =", "so 7 =", 1)
        r = check(p.text, text.replace(f"as {sent.letter};", "as 7;", 1), WORLD, p.answer)
        assert not r.valid
        break
    else:
        pytest.fail("no sentence with a bare constant")


def test_unreadable_solutions_are_reported_not_raised():
    p = PROBLEMS[0]
    for junk in ["", "Define", "Define x as", "hello world", "Define A's B as a; so a = = 3."]:
        r = check(p.text, junk, WORLD, p.answer)
        assert not r.valid
    r = check(p.text, p.solution_text + " Define", WORLD, p.answer)
    assert not r.parsed and r.first_error.kind == "parse"
    with pytest.raises(ParseError):
        parse_problem("The number of each", WORLD)
    with pytest.raises(ParseError, match="question"):
        parse_problem(PROBLEMS[0].problem_text, WORLD)


def test_back_needs_retry_mode():
    p = MULTI[0]
    a, b = p.structure.names(p.question)
    text = f"Define {a}'s {b} as [BACK]. " + p.solution_text
    assert check(p.text, text, WORLD, p.answer).first_error.kind == "parse"
    assert check(p.text, text, WORLD, p.answer, allow_retry=True).correct


def test_random_single_token_corruptions_are_all_rejected():
    """Any number, letter or noun of a solution replaced by another of its kind, or one
    intermediate equation dropped: the checker must reject every one."""
    from physlm.data.igsm.tokens import detokenize, tokenize

    rng = random.Random(0)
    nouns = WORLD.all_names()
    tried = 0
    for i in range(160):
        p = generate(MED, f"f{i}")
        toks = tokenize(p.solution_text)
        mode = ("number", "letter", "noun", "drop")[i % 4]
        if mode == "drop":
            parts = p.solution_text.split("; ")
            mids = [k for k, x in enumerate(parts) if k > 0 and not x.startswith("so ")]
            if not mids:
                continue
            k = rng.choice(mids)
            text = "; ".join(parts[:k] + parts[k + 1 :])
        else:
            kind = {"number": str.isdigit, "letter": lambda x: x in LETTERS,
                    "noun": lambda x: x in WORLD.where}[mode]
            spots = [t for t, x in enumerate(toks) if kind(x)]
            t = rng.choice(spots)
            pool = ([str(v) for v in range(23)] if mode == "number" else list(LETTERS)
                    if mode == "letter" else [x for x in nouns
                                              if WORLD.is_item(x) == WORLD.is_item(toks[t])])
            toks[t] = rng.choice([x for x in pool if x != toks[t]])
            text = detokenize(toks)
        assert not check(p.text, text, WORLD, p.answer).valid, (mode, text)
        tried += 1
    assert tried > 140
