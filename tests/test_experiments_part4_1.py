"""Part 4.1's experiment functions: variants, identical data, decoding and scoring."""

from dataclasses import replace

import pytest
import torch
from torch import nn

from physlm.data.brevo import check_answer
from physlm.experiments import part4_1 as e
from physlm.scales import SCALES, part4_1


class Oracle(nn.Module):
    """Knows the right answers: for a known prompt it puts all mass on the next answer token
    (or on `wrong` for the prompts listed in `spoil`)."""

    def __init__(self, data, instances, spoil=(), reverse=(), block_size=200):
        super().__init__()
        self.cfg = type("Cfg", (), {"block_size": block_size})()
        self.vocab_size = data.vocab_size
        flip = {id(i) for i in reverse}
        self.known = {
            tuple(data.prompt(i)): data.answer(i)[-2::-1] + data.answer(i)[-1:]
            if id(i) in flip else data.answer(i)
            for i in instances
        }  # fmt: skip
        self.spoil = {tuple(data.prompt(i)) for i in spoil}
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, idx):
        out = torch.full((*idx.shape, self.vocab_size), -1e9)
        for b, row in enumerate(idx.tolist()):
            for cut in range(len(row), 0, -1):
                if tuple(row[:cut]) in self.known:
                    prompt, ans = tuple(row[:cut]), self.known[tuple(row[:cut])]
                    written = len(row) - cut
                    nxt = ans[min(written, len(ans) - 1)]
                    if prompt in self.spoil and written == 0:
                        nxt = ans[-1]  # <eos> at once: an empty answer
                    out[b, -1, nxt] = 0.0
                    break
        return out


def test_every_scale_names_known_variants_and_compares_the_four_main_ones():
    for scale in SCALES:
        plan = part4_1(scale)
        e.check_variants(plan)
        assert {"RoPE", "RoPE + Canon", "NoPE", "NoPE + Canon"} <= set(plan.variants)
    with pytest.raises(ValueError, match="variants must be drawn from"):
        e.check_variants(replace(part4_1("smoke"), variants=("RoPE", "ALiBi")))


def test_variants_switch_only_position_encoding_and_canon():
    plan = part4_1("smoke")
    data = e.make_data(plan)
    base = e.model_config(plan, "RoPE", data)
    for v, switches in e.VARIANTS.items():
        cfg = e.model_config(plan, v, data)
        assert replace(cfg, **{k: getattr(base, k) for k in switches}) == base
        assert cfg.pos == switches["pos"] and cfg.canon == switches.get("canon", "")
    assert base.block_size == data.block_size and base.vocab_size == data.vocab_size


def test_every_variant_trains_on_the_same_batches():
    plan = part4_1("smoke")
    a, b = e.make_data(plan, seed=4), e.make_data(plan, seed=4)
    assert a.spec() == b.spec()
    assert all(torch.equal(a.batch(3)[k], b.batch(3)[k]) for k in ("x", "y", "mask"))


def test_answer_all_decodes_each_prompt_and_scores_with_the_checker():
    plan = part4_1("smoke")
    data = e.make_data(plan)
    instances = data.test_set(6, 40) + data.test_set(3, 10)  # prompts of many lengths
    spoil = instances[::7]
    reverse = [i for i in instances[1::7] if len(i.answer) > 1]  # the query first: invalid
    got = e.answer_all(Oracle(data, instances, spoil, reverse), data, instances, batch_size=4)
    assert [a.instance for a in got] == instances
    for a in got:
        assert a.prompt == data.prompt(a.instance)
        flipped = any(a.instance is r for r in reverse)
        assert a.correct == (a.instance not in spoil and not flipped)
        assert a.right_set == (a.instance not in spoil)
        assert a.correct == check_answer(a.prompt, a.reply, data.vocab)
        if a.correct:
            assert a.reply == data.answer(a.instance)
    assert e.accuracy(got) == (len(instances) - len(spoil) - len(reverse), len(instances))


def test_a_smoke_run_trains_and_answers(tmp_path, monkeypatch):
    monkeypatch.setenv("PHYSLM_RUNS", str(tmp_path))
    plan = replace(part4_1("smoke"), steps=3, variants=("NoPE + Canon",))
    run = e.train_variant(plan, "NoPE + Canon", progress=False)
    assert run.metrics[-1]["step"] == 3 and run.model.cfg.canon == "ABCD"
    assert e.train_variant(plan, "NoPE + Canon", progress=False).key == run.key  # cached
    data = e.make_data(plan)
    k, n = e.accuracy(e.answer_all(run.model, data, data.test_set(6, 8)))
    assert n == 8 and 0 <= k <= n
