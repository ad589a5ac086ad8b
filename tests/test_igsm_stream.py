"""IGSMStream (BatchSource: purity, loss mask on the solution, samples the checker accepts) and
the V-probing labels, recomputed from the checker's reading of the text."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from physlm.data import BatchSource
from physlm.data.igsm import (
    IGSMStream,
    check,
    define_points,
    generate,
    igsm_preset,
    name_world,
    parse_problem,
    probe_input,
    probe_labels,
    probe_positions,
    with_retries,
)

CPU = igsm_preset("cpu")
WORLD = name_world(CPU.world)


def stream(**kw) -> IGSMStream:
    return IGSMStream(**{"igsm": CPU, "batch_size": 4, "seq_len": 192, "seed": 1, **kw})


def test_pure_in_seed_and_step():
    s = stream()
    assert isinstance(s, BatchSource)
    a, b = s.batch(3), stream().batch(3)
    assert all(torch.equal(a[k], b[k]) for k in ("x", "y", "mask"))
    assert not torch.equal(a["x"], s.batch(4)["x"])
    assert not torch.equal(a["x"], stream(seed=2).batch(3)["x"])
    assert a["x"].shape == a["y"].shape == a["mask"].shape == (4, 192)
    assert torch.equal(a["x"][:, 1:], a["y"][:, :-1])


def _learned_by_scan(row: np.ndarray, s: IGSMStream) -> np.ndarray:
    """Targets inside a solution: after a <sol>, before the next <bos>, not padding."""
    v, out, inside = s.vocab, np.zeros(len(row) - 1, dtype=bool), False
    for u in range(1, len(row)):
        prev = row[u - 1]
        if prev == v.sol_id:
            inside = True
        if row[u] in (v.bos_id, v.pad_id):
            inside = False
        out[u - 1] = inside and row[u] != v.pad_id
    return out


def test_loss_mask_is_the_solution_part():
    s = stream()
    tokens, _, _ = s.rows(0)
    mask = s.batch(0)["mask"].numpy()
    for r in range(len(tokens)):
        assert np.array_equal(mask[r], _learned_by_scan(tokens[r], s))
    everything = stream(loss_on="all").batch(0)
    assert torch.equal(everything["mask"], everything["y"] != s.vocab.pad_id)


def test_every_packed_sample_is_a_correct_problem_and_solution():
    s = stream(packing="whole")
    tokens, _, placed = s.rows(2)
    v = s.vocab
    n = 0
    for r, row in enumerate(tokens.tolist()):
        starts = [t for t, x in enumerate(row) if x == v.bos_id]
        assert len(starts) == len(placed[r]) >= 1
        for t0, p in zip(starts, placed[r], strict=True):
            sol = row.index(v.sol_id, t0)
            problem_text = v.decode_text(row[t0 + 1 : sol])
            solution, answer = s.read_completion(row[sol + 1 :])
            assert problem_text == p.text and solution == p.solution_text
            assert check(problem_text, solution, WORLD, answer).correct
            n += 1
    assert n > len(tokens)  # whole packing puts several problems in a row


def test_single_packing_and_too_short_rows():
    tokens, _, placed = stream(packing="single").rows(0)
    assert all(len(r) == 1 for r in placed)
    with pytest.raises(ValueError, match="seq_len"):
        stream(seq_len=16).rows(0)


def test_retry_rows_mask_the_wrong_names_only():
    s = stream(retry_rate=0.5, mask_retry="name", packing="single", batch_size=6)
    tokens, learn, placed = s.rows(0)
    v = s.vocab
    back = 0
    for r, row in enumerate(tokens.tolist()):
        sol = row.index(v.sol_id)
        solution, answer = s.read_completion(row[sol + 1 :])
        rep = check(placed[r][0].text, solution, WORLD, answer, allow_retry=True)
        assert rep.correct
        back += rep.retries
        # inside the solution, unlearned tokens are exactly those between "Define" and "as"
        # of a fragment that ends in [BACK]
        words = [v.itos[x] for x in row]
        expect = np.ones(len(row), dtype=bool)
        t = sol + 1
        while t < len(row) and words[t] != "<eos>":
            if words[t] == "Define":
                end = words.index("as", t)
                if words[end + 1] == "[BACK]":
                    expect[t + 1 : end] = False
                t = end
            t += 1
        assert np.array_equal(learn[r, sol + 1 : t + 1], expect[sol + 1 : t + 1])
    assert back > 0
    plain = stream(retry_rate=0.5, packing="single", batch_size=6)
    tok2, learn2, _ = plain.rows(0)
    assert np.array_equal(tok2, tokens)  # masking changes the loss, not the data
    for r, row in enumerate(tok2.tolist()):  # without masking the whole solution is learned
        sol, eos = row.index(v.sol_id), row.index(v.eos_id)
        assert learn2[r, sol + 1 : eos + 1].all() and not learn2[r, : sol + 1].any()


def test_spec_is_json_and_tracks_the_data():
    a, b = stream().spec(), stream(retry_rate=0.2).spec()
    json.dumps(a)
    assert a != b and a["version"] == b["version"]
    assert stream(igsm=replace(CPU, max_op=2)).spec() != a


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"batch_size": 0}, "batch_size"),
        ({"seq_len": 4}, "seq_len"),
        ({"packing": "cut"}, "packing"),
        ({"loss_on": "answer"}, "loss_on"),
        ({"retry_rate": 1.5}, "retry_rate"),
        ({"retry_kind": "weak"}, "retry_kind"),
        ({"mask_retry": "all"}, "mask_retry"),
        ({"igsm": "med"}, "igsm"),
    ],
)
def test_bad_parameters(kw, match):
    with pytest.raises(ValueError, match=match):
        stream(**kw)


def test_probe_labels_match_the_checkers_reading():
    med = igsm_preset("med")
    world = name_world(med.world)
    for i in range(15):
        p = generate(med, f"L{i}")
        lab = probe_labels(p)
        parsed = parse_problem(p.text, world)
        names = [p.structure.names(x) for x in lab.params]
        assert set(names) == set(parsed.parameters())
        needed = parsed.necessary()
        assert lab.nece.tolist() == [n in needed for n in names]
        closure = {}
        for n in names:  # transitive closure by a fresh search over the parsed dependencies
            seen, stack = set(), list(parsed.deps(n))
            while stack:
                x = stack.pop()
                if x not in seen:
                    seen.add(x)
                    stack += parsed.deps(x)
            closure[n] = seen
        for a, na in enumerate(names):
            assert [names[b] in closure[na] for b in range(len(names))] == lab.dep[a].tolist()
        defined = check(p.text, p.solution_text, world, p.answer).defined
        for t in range(len(defined) + 1):
            known = {d for d in defined[:t]}
            for a, na in enumerate(names):
                show = f"{na[0]}'s {na[1]}"
                assert lab.known[t, a] == (show in known)
                ready = all(f"{x[0]}'s {x[1]}" in known for x in parsed.deps(na))
                assert lab.can_next[t, a] == (show not in known and ready)
                known_names = {x for x in names if f"{x[0]}'s {x[1]}" in known}
                assert parsed.can_next(na, known_names) == lab.can_next[t, a]
                assert lab.value[t, a] == (parsed.value(na) if show in known else med.mod)


def test_probe_positions():
    s = IGSMStream(igsm=igsm_preset("med"), batch_size=1, seq_len=1024)
    p = generate(igsm_preset("med"), 5)
    ids, _ = s.sample(p)
    pos = probe_positions(ids, s.vocab.sol_id, s.vocab.id("."))
    assert len(pos) == len(p.solution.sentences) + 1 and ids[pos[0]] == s.vocab.sol_id


def test_define_points_name_each_sentence_and_each_retry():
    s = IGSMStream(igsm=igsm_preset("med"), batch_size=1, seq_len=1024, retry_rate=0.5)
    p = generate(igsm_preset("med"), 6)
    ids, _ = s.sample(p, seed=6)
    points = define_points(ids, s.vocab)
    wrong = [w for ws in with_retries(p, 0.5, 6).wrong for w in ws]
    assert len(points) == len(p.solution.sentences) + len(wrong) > len(p.solution.sentences)
    for pos, name in points:
        assert s.vocab.itos[ids[pos]] == "as" and name is not None
    named = [n for pos, n in points if s.vocab.itos[ids[pos + 1]] != "[BACK]"]
    assert named == [p.structure.names(x) for x in p.solution.params]


def test_probe_input_wraps_the_parameters_in_markers():
    s = stream()
    v = s.vocab
    p = generate(CPU, 2)
    prefix = s.prompt_ids(p)
    a = p.structure.names(p.question)
    one = probe_input(prefix, v, a)
    assert one[: len(prefix)] == prefix and one[-1] == v.end_id
    assert v.decode_text(one[len(prefix) :]) == f"[START] {a[0]}'s {a[1]} [END]"
    b = p.structure.names(p.structure.all_params[0])
    pair = probe_input(prefix, v, a, b)
    want = f"[START] {a[0]}'s {a[1]} [MID] {b[0]}'s {b[1]} [END]"
    assert v.decode_text(pair[len(prefix) :]) == want
    # the markers never occur in training data
    tokens, _, _ = s.rows(0)
    assert not {v.start_id, v.mid_id, v.end_id} & set(tokens.ravel().tolist())


def test_trains_through_the_package_trainer(tmp_path):
    from physlm.model import ModelConfig
    from physlm.runs import run_key
    from physlm.train import TrainConfig, train

    s = IGSMStream(igsm=igsm_preset("smoke"), batch_size=2, seq_len=96, seed=0)
    m = ModelConfig(vocab_size=s.vocab_size, n_layer=1, n_head=2, n_embd=16, block_size=96)
    cfg = TrainConfig(steps=2, warmup_steps=1, log_every=1)
    _, metrics = train(m, cfg, s, tmp_path, progress=False)
    assert [r["step"] for r in metrics if r["kind"] == "train"] == [1, 2]
    assert run_key(m, cfg, s) != run_key(m, cfg, IGSMStream(igsm=igsm_preset("smoke"),
                                                           batch_size=2, seq_len=96, seed=1))
