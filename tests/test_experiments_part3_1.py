"""Part 3.1 experiments: variants, scales, probe inputs, the token probe, QA scoring."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from physlm.data.bios import ATTRIBUTES, BioSStream
from physlm.data.bios_qa import p31_items, qa_vocab
from physlm.experiments import part3_1 as p31
from physlm.measure.knowledge_probes import (
    first_token_labels,
    fit_token_probe,
    p_probe_inputs,
    q_probe_inputs,
)
from physlm.model import GPT, ModelConfig


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: one thread is fastest, and two on a busy 2-core machine are very slow."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_variant_options():
    assert p31.variant_options("single") == {
        "order": "fixed",
        "template_variants": 1,
        "fullname": False,
    }
    assert p31.variant_options("single+permute5") == {
        "order": "shuffle",
        "template_variants": 1,
        "order_variants": 5,
        "fullname": False,
    }
    assert p31.variant_options("multi5+permute+fullname") == {
        "order": "shuffle",
        "template_variants": 5,
        "order_variants": 5,
        "fullname": True,
    }
    for bad in (
        "",
        "double",
        "single+permute",
        "multi5+permute3",
        "single+fullname+fullname",
        "multi0",
        "single+shuffle",
    ):
        with pytest.raises(ValueError, match="variant"):
            p31.variant_options(bad)


def test_scale_checks():
    with pytest.raises(ValueError, match="scale"):
        p31.scale_for("laptop")
    with pytest.raises(ValueError, match="people"):
        p31.scale_for("smoke", people=0)
    with pytest.raises(ValueError, match="qa_fraction"):
        p31.scale_for("smoke", qa_fraction="5/4")
    with pytest.raises(ValueError, match="minority_variant"):
        p31.scale_for("smoke", minority_variant="multi5")
    plan = p31.scale_for("cpu")
    assert plan.variants == p31.PAPER_VARIANTS
    for v in plan.variants:  # every variant's rows hold exactly bios_per_row biographies
        assert p31.bios_stream(plan, v).bios_per_row == plan.bios_per_row
        assert plan.seq_len(v) <= plan.block_size


def _bios(**kw) -> BioSStream:
    opts = dict(n_people=12, exposures=1, batch_size=2, seq_len=200, seed=3)
    return BioSStream(**{**opts, **kw})


@pytest.mark.parametrize("variant", ["single", "multi5+permute", "single+permute1+fullname"])
def test_p_probe_positions_precede_values(variant):
    bios = _bios(**p31.variant_options(variant))
    people = np.arange(12)
    inputs, before, order = p_probe_inputs(bios, people)
    for a, attr in enumerate(ATTRIBUTES):
        labels, cand = first_token_labels(bios, people, attr)
        nxt = inputs[torch.arange(12), before[:, a] + 1]  # the token after the read position
        assert torch.equal(nxt, cand[labels]), attr
    # order lists the attributes by where they start in the text
    starts = torch.gather(before, 1, order)
    assert bool((starts[:, 1:] > starts[:, :-1]).all())
    if variant == "single":
        assert torch.equal(order, torch.arange(6).expand(12, 6))
    assert int(inputs[0, 0]) == bios.vocab.eos_id


def test_q_probe_inputs_are_names():
    bios = _bios()
    inputs, pos = q_probe_inputs(bios, [0, 5])
    for r, i in enumerate([0, 5]):
        words = [bios.vocab.itos[int(t)] for t in inputs[r, 1:]]
        assert " ".join(words) == bios.facts(i)["name"]
    assert pos.tolist() == [3, 3]


def test_first_token_labels_bad_attribute():
    with pytest.raises(ValueError, match="attribute"):
        first_token_labels(_bios(), [0], "shoe_size")


def _tiny_gpt(vocab: int = 64, d: int = 16) -> GPT:
    torch.manual_seed(0)
    return GPT(ModelConfig(vocab_size=vocab, n_layer=1, n_head=2, n_embd=d, block_size=8))


def test_token_probe_reads_planted_values_it_never_saw():
    """States are a fixed linear map of the value's token embedding: the probe reads them,
    even for classes absent from its training people; pure noise stays near chance."""
    model = _tiny_gpt()
    gen = torch.Generator().manual_seed(1)
    cand = torch.arange(10, 50)  # 40 classes
    n = 400
    labels = torch.randint(0, 40, (n,), generator=gen)
    labels[:60] = torch.arange(30, 40).repeat(6)  # classes 30..39 ...
    mix = torch.randn(16, 16, generator=gen)
    emb = model.wte.weight.detach()[cand[labels]]
    feats = emb @ mix + 0.01 * torch.randn(n, 16, generator=gen)
    inputs = torch.zeros(n, 2, dtype=torch.long)
    pos = torch.zeros(n, dtype=torch.long)
    # ... appear only among the first 60 people; put them all in the test split
    res = fit_token_probe(
        model, inputs, pos, labels, cand, steps=400, lr=3e-2, test_fraction=0.3, features=feats
    )
    assert res.test_accuracy > 0.8
    noise = torch.randn(n, 16, generator=gen)
    res0 = fit_token_probe(model, inputs, pos, labels, cand, steps=400, lr=3e-2, features=noise)
    assert res0.test_accuracy < 0.2


def test_token_probe_with_embedding_update_leaves_model_alone():
    model = _tiny_gpt()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    inputs = torch.randint(0, 64, (40, 4))
    labels = (inputs[:, 2] % 5).long()
    cand = torch.arange(5)
    res = fit_token_probe(
        model,
        inputs,
        torch.full((40,), 2),
        labels,
        cand,
        rank=4,
        steps=60,
        lr=3e-2,
        batch_size=20,
        norm="batch",
    )
    assert 0.0 <= res.test_accuracy <= 1.0 and res.n_train + res.n_test == 40
    assert model.training and all(p.requires_grad for p in model.parameters())
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    with pytest.raises(ValueError, match="labels"):
        fit_token_probe(model, inputs, torch.full((40,), 2), labels + 5, cand)


class _Oracle(nn.Module):
    """Predicts the next token of whichever known sequence the input is a prefix of."""

    def __init__(self, seqs, vocab: int, shift: int = 0):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))
        self.table = {}
        for s in seqs:
            for t in range(1, len(s)):
                self.table[tuple(s[:t])] = (s[t] + shift) % vocab
        self.vocab = vocab

    def forward(self, idx):
        out = torch.zeros(idx.shape[0], idx.shape[1], self.vocab)
        for r, row in enumerate(idx.tolist()):
            out[r, -1, self.table.get(tuple(row), 0)] = 1.0
        return out


def test_qa_accuracy_scores_answers_after_the_prompt():
    bios = _bios()
    items = p31_items(bios, [0, 1, 2])
    eos, vocab = qa_vocab().eos_id, len(qa_vocab())
    seqs = [[eos, *it.ids] for it in items]
    right = p31.qa_accuracy(_Oracle(seqs, vocab), items, eos)
    assert right["mean"] == 1.0 and set(right) == {*p31.QA_ATTRIBUTES, "mean"}
    wrong = p31.qa_accuracy(_Oracle(seqs, vocab, shift=1), items, eos)
    assert wrong["mean"] == 0.0


def test_two_populations_stack_rows_of_disjoint_people():
    plan = p31.scale_for("smoke")
    celebs, minority = p31.celebrity_streams(plan)
    data = p31.TwoPopulations(celebs, minority)
    b = data.batch(0)
    assert b["x"].shape[0] == celebs.config.batch_size + minority.config.batch_size
    assert torch.equal(b["x"][celebs.config.batch_size :], minority.batch(0)["x"])
    assert not np.intersect1d(celebs.people.name_ids(), minority.people.name_ids()).size
    # the minority is the baseline variant's own population
    base = p31.bios_stream(plan, plan.minority_variant)
    assert np.array_equal(base.people.name_ids(), minority.people.name_ids())
    with pytest.raises(ValueError, match="seq_len"):
        p31.TwoPopulations(celebs, p31.replace_seq(minority, minority.config.seq_len + 1))


def test_mixed_job_runs_and_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("PHYSLM_RUNS", str(tmp_path))
    plan = p31.scale_for("smoke", people=12, exposures=1)
    first = p31.measure_job(plan, "mixed", "single")
    assert set(first["test"]) == {*p31.QA_ATTRIBUTES, "mean"}
    assert 0.0 <= first["bio_accuracy"] <= 1.0
    assert p31.measure_job(plan, "mixed", "single") == first
    with pytest.raises(ValueError, match="kind"):
        p31.measure_job(plan, "other", "single")
