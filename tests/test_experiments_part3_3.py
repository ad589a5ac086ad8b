"""Part 3.3 experiment helpers: a smoke setting trains, is cached, and is measured consistently."""

import math
from dataclasses import replace
from fractions import Fraction

import numpy as np
import pytest
import torch

from physlm.data.biod import BioDStream
from physlm.data.bios import BioSStream
from physlm.experiments.part3_3 import (
    OVERFILL,
    Setting,
    chapter_settings,
    frequency_bits,
    make_data,
    prefetch,
    quantized_bits,
    renderings,
    run_setting,
    sweep_setting,
)
from physlm.measure.capacity import biod_bits, biod_max_bits, bios_max_bits, measure_capacity
from physlm.model import GPT, count_params
from physlm.scales import SCALES, Shape, Sweep, part3_3


@pytest.mark.parametrize("scale", SCALES)
def test_every_sweep_point_of_every_preset_is_overfilled_by_the_fewest_people(scale):
    """N per size: the data holds more than `fill` (> 2.3) bits per parameter of the model,
    counted on the model built for it, and one person fewer would not; rows give about the
    sweep's steps."""
    plan = part3_3(scale)
    points = chapter_settings(plan)["sweep"]
    assert len(points) == len(plan.sweeps) * len(plan.shapes)
    for w in plan.sweeps:
        for shape in plan.shapes:
            s = sweep_setting(plan, w, shape)
            assert s in points and s.exposures == w.exposures and s.rows >= 1
            probe = make_data(plan, Setting(shape, 1, w.exposures))
            k = probe.knowledge()
            with torch.device("meta"):
                params = count_params(GPT(shape.config(probe.vocab_size, plan.seq_len)))
            if plan.data == "biod":
                args = (k["K"], k["C"], k["D"], k["L"], k["T"], k["log2_n0"])
                held, fewer = (biod_max_bits(n, *args) for n in (s.people, s.people - 1))
            else:
                held, fewer = (bios_max_bits(n, k["log2_n0"], k["log2_s0"])
                               for n in (s.people, s.people - 1))  # fmt: skip
            assert held > w.fill * params >= fewer > 0
            bios = s.people * w.exposures
            steps = math.ceil(bios / (s.rows * probe.bios_per_row))
            assert steps <= w.steps and (s.rows == 1 or steps > w.steps / 2)


def test_cpu_sweep_spans_ten_times_in_parameters_and_overfills_on_the_papers_count():
    plan = part3_3("cpu")
    assert len(plan.shapes) >= 6 and len(plan.sweeps) == 2
    outcomes = []
    for w in plan.sweeps:
        for shape in plan.shapes:
            s = sweep_setting(plan, w, shape)
            data = make_data(plan, s)
            model = GPT(shape.config(data.vocab_size, plan.seq_len))
            p = count_params(model, data.used_token_ids())  # Def. 4.3's P, after the fact
            k = data.knowledge()
            bits = biod_max_bits(s.people, k["K"], k["C"], k["D"], k["L"], k["T"], k["log2_n0"])
            assert bits / p > OVERFILL
            outcomes.append(p)
    assert max(outcomes) >= 10 * min(outcomes)


def test_a_sweep_that_under_fills_a_model_is_refused_naming_n_and_the_size():
    plan = part3_3("cpu", people=40)
    refused = r"N = 40 people under-fill model L1-H1-D\d+ \([0-9,]+ parameters\)"
    with pytest.raises(ValueError, match=refused):
        chapter_settings(plan)
    tiny_pools = part3_3("smoke")
    tiny_pools = replace(tiny_pools, biod={**tiny_pools.biod, "name_pools": (2, 2, 2)})
    with pytest.raises(ValueError, match="cannot be overfilled"):
        sweep_setting(tiny_pools, Sweep(5, 2.5, 10), Shape(1, 1, 16))


def test_prefetch_starts_the_largest_runs_first(monkeypatch):
    import physlm.experiments.part3_3 as e33

    seen = []
    monkeypatch.setattr(e33, "run_in_workers", lambda fn, items, workers: seen.extend(items))
    plan = part3_3("cpu")
    settings = chapter_settings(plan)["sweep"]
    prefetch(plan, settings, workers=2)
    order = [s for _, s, _ in seen]
    biggest = max(plan.shapes, key=Shape.approx_params)
    assert order[0] == sweep_setting(plan, max(plan.sweeps, key=lambda w: w.exposures), biggest)
    work = [e33.planned_work(plan, s) for s in order]
    assert work == sorted(work, reverse=True) and set(order) == set(settings)


def test_setting_trains_caches_and_measures(tmp_path, monkeypatch):
    monkeypatch.setenv("PHYSLM_RUNS", str(tmp_path))
    torch.set_num_threads(1)
    plan = part3_3("smoke")
    s = sweep_setting(plan, plan.sweeps[0], plan.shapes[0])
    people, exposures = s.people, s.exposures
    first = run_setting(plan, s, progress=False)
    again = run_setting(plan, s, progress=False)
    assert not first.run.cached and again.run.cached
    assert again.bits == first.bits
    data = make_data(plan, s)
    assert data.config.n_people == people
    assert first.run.metrics[-1]["step"] == data.steps_for(exposures)
    params = count_params(first.run.model, data.used_token_ids())
    assert params == first.params < count_params(first.run.model)
    direct = measure_capacity(first.run.model, data, params)
    assert direct.bits == first.bits
    row = first.row(series="x")
    assert row["bits/param"] == first.bits / first.params and row["series"] == "x"
    assert first.max_ratio == first.max_bits / first.params == row["max bits/param"]
    assert row["overfilled"] == first.overfilled == (first.max_ratio > OVERFILL)
    assert first.overfilled  # a sweep point always is
    assert first.share == first.bits / first.max_bits
    # int8 keeps the stored bits of the float model to within a small fraction of the data's bits
    assert abs(quantized_bits(first, 8) - first.bits) < 0.05 * first.max_bits


def test_prefetch_in_workers_matches_training_in_process(tmp_path, monkeypatch):
    monkeypatch.setenv("PHYSLM_RUNS", str(tmp_path / "a"))
    plan = part3_3("smoke")
    settings = [Setting(plan.shapes[0], 20, 3), Setting(plan.shapes[0], 20, 4)]
    prefetch(plan, settings, workers=2)
    loaded = [run_setting(plan, s, progress=False) for s in settings]
    assert all(o.run.cached for o in loaded)
    monkeypatch.setenv("PHYSLM_RUNS", str(tmp_path / "b"))
    direct = [run_setting(plan, s, progress=False) for s in settings]
    assert [o.bits for o in direct] == [o.bits for o in loaded]


def test_junk_and_domain_settings_change_the_data():
    plan = part3_3("smoke")
    clean = make_data(plan, Setting(plan.shapes[0], 20, 5))
    junk = make_data(plan, Setting(plan.shapes[0], 20, 5, junk_fraction="7/8"))
    dom = make_data(plan, Setting(plan.shapes[0], 20, 5, junk_fraction="7/8", domain_token=True))
    assert junk.steps_for(5) > clean.steps_for(5)
    assert len({str(d.spec()) for d in (clean, junk, dom)}) == 3
    steps = range(8)  # junk takes 7/8 of the rows: a few steps hold useful ones
    assert any((dom.batch(s)["x"] == dom.vocab.dom_id).any() for s in steps)
    assert not any((junk.batch(s)["x"] == junk.vocab.dom_id).any() for s in steps)


def test_bios_path_of_the_gpu_preset_runs_end_to_end(tmp_path, monkeypatch):
    """The gpu/paper presets use bioS; one tiny run through the same functions."""
    monkeypatch.setenv("PHYSLM_RUNS", str(tmp_path))
    torch.set_num_threads(1)
    plan = part3_3("gpu", people=40, shapes=[[1, 1]])
    assert plan.data == "bios"
    out = run_setting(plan, Setting(plan.shapes[0], 40, 1), progress=False)
    assert out.data.knowledge()["kind"] == "bioS"
    assert out.max_bits > 40 * 47  # log2 S0 = 47.6 bits of attributes per person, plus names
    assert out.params == count_params(out.run.model, out.data.used_token_ids())


@pytest.mark.parametrize("scale", ["smoke", "cpu", "gpu"])
def test_junk_and_domain_token_runs_train_equal_steps(scale):
    """The domain token lengthens every useful biography; the three junk-experiment runs share
    the domain-token run's packing, so junk and domain-token runs take the same steps."""
    plan = part3_3(scale)
    clean, junk, domain = chapter_settings(plan)["junk"]
    assert domain.domain_token and not junk.domain_token and junk.junk_fraction != "0"
    data = [make_data(plan, s) for s in (clean, junk, domain)]
    assert len({d.bios_per_row for d in data}) == 1
    assert data[1].steps == data[2].steps
    useful = 1 - Fraction(plan.junk_fraction)  # "7/8": 1/8 of the rows are useful
    assert data[1].steps == pytest.approx(data[0].steps / useful, rel=0.1)
    natural = make_data(plan, Setting(clean.shape, clean.people, clean.exposures))
    assert natural.bios_per_row >= data[0].bios_per_row  # the domain token never fits more


def test_renderings_are_one_person_rendered_afresh():
    s = BioSStream(n_people=50, exposures=2, batch_size=2, seq_len=512, seed=3)
    name = s.facts(4)["name"]
    bios = renderings(s, person=4, count=3)
    texts = [s.vocab.decode(b) for b in bios]
    assert len(texts) == 3 and all(t.startswith(name) for t in texts)
    assert len(set(texts)) == 3  # fresh templates and sentence order at every exposure
    assert s.vocab.eos_id not in sum(bios, [])
    d = BioDStream(
        n_people=30, n_attributes=4, chunks=1, diversity=32, chunk_len=1, chunk_vocab=32,
        exposures=3, batch_size=2, seq_len=64, seed=1, name_pools=(20, 20, 20),
        domain_token=True,
    )  # fmt: skip
    for b in renderings(d, person=7, count=3):
        toks = [int(d.name_tok[p][d.names[7, p]]) for p in range(3)]
        assert b[0] == d.vocab.dom_id and b[1:4] == toks
    with pytest.raises(ValueError, match="fewer than"):
        renderings(d, person=7, count=5, max_steps=3)


def _entropy_nats(values, size):
    counts = np.bincount(np.asarray(values).ravel(), minlength=size)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def test_frequency_bits_is_the_capacity_of_a_model_that_knows_only_frequencies():
    """With T^L = D (chunk strings carry no bits) the frequency model's losses, put through the
    capacity formula, give exactly frequency_bits; it is a small share of the data's bits."""
    n, k, d = 200, 4, 32
    s = BioDStream(
        n_people=n, n_attributes=k, chunks=1, diversity=d, chunk_len=1, chunk_vocab=d,
        exposures=1, batch_size=2, seq_len=64, seed=2, name_pools=(20, 20, 20),
    )  # fmt: skip
    p1 = sum(_entropy_nats(s.names[:, i], 20) for i in range(3))
    p2 = sum(_entropy_nats(s.values[:, a, 0], d) for a in range(k)) / k
    direct = biod_bits(n, k, 1, d, 1, d, p1, p2, 0.0, math.log2(20**3))
    assert frequency_bits(s) == pytest.approx(direct, rel=1e-9)
    top = biod_max_bits(n, k, 1, d, 1, d, math.log2(20**3))
    assert 0 < frequency_bits(s) < 0.05 * top
    # about (m - 1) / (2 ln 2) bits per column: 3 name pools of 20 and K value columns of D
    expected = (3 * 19 + k * (d - 1)) / (2 * math.log(2))
    assert frequency_bits(s) == pytest.approx(expected, rel=0.5)
    b = BioSStream(n_people=300, exposures=1, batch_size=1, seq_len=512, seed=0)
    assert 0 < frequency_bits(b) < 0.2 * bios_max_bits(300)
