"""Part 3.3 experiment helpers: a smoke setting trains, is cached, and is measured consistently."""

import torch

from physlm.experiments.part3_3 import Setting, make_data, prefetch, quantized_bits, run_setting
from physlm.measure.capacity import measure_capacity
from physlm.model import count_params
from physlm.scales import part3_3


def test_setting_trains_caches_and_measures(tmp_path, monkeypatch):
    monkeypatch.setenv("PHYSLM_RUNS", str(tmp_path))
    torch.set_num_threads(1)
    plan = part3_3("smoke")
    exposures, people = plan.sweeps[0]
    s = Setting(plan.shapes[0], people, exposures)
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
