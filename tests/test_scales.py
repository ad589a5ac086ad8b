"""Scales: every preset resolves, bad names and values fail naming the parameter."""

import pytest

from physlm.scales import BENCH_TRAIN, SCALES, Shape, Sweep, check_scale, part3_3


@pytest.mark.parametrize("scale", SCALES)
def test_every_scale_resolves(scale):
    plan = part3_3(scale)
    assert plan.scale == scale
    assert all(s.approx_params() <= plan.max_params for s in plan.shapes)


def test_scales_grow():
    sizes = [max(s.approx_params() for s in part3_3(x).shapes) for x in SCALES]
    assert sizes == sorted(sizes)


def test_gpt2_shape_label():
    assert Shape.gpt2(4, 2) == Shape(4, 2, 128)
    assert Shape.gpt2(4, 2).label() == "GPT2-4-2"
    assert Shape(1, 1, 16).label() == "L1-H1-D16"
    assert Shape(2, 1, 32).approx_params() == 12 * 2 * 32 * 32


def test_overrides():
    plan = part3_3("smoke", people=10, shapes=[[1, 1], [1, 2, 32]])
    assert all(w.people == 10 for w in plan.sweeps) and plan.junk_useful_people == 10
    assert plan.shapes == (Shape(1, 1, 64), Shape(1, 2, 32))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(scale="tiny"), "scale must be one of"),
        (dict(scale="cpu", people=0), "people"),
        (dict(scale="cpu", people=2.5), "people"),
        (dict(scale="cpu", shapes=[[48, 32]]), "too large for scale 'cpu'"),
        (dict(scale="cpu", shapes=[[1, 2, 3, 4]]), "shapes entries"),
        (dict(scale="cpu", shapes=[[1, 3, 32]]), "width divisible by heads"),
    ],
)
def test_bad_values_name_the_parameter(kwargs, match):
    with pytest.raises(ValueError, match=match):
        part3_3(**kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(exposures=0, fill=2.5, steps=10), "exposures must be a positive int"),
        (dict(exposures=100, fill=2.3, steps=10), "fill must exceed 2.3"),
        (dict(exposures=100, fill=2.5, steps=0), "steps must be a positive int"),
        (dict(exposures=100, fill=2.5, steps=10, people=0), "people"),
    ],
)
def test_bad_sweeps_name_the_parameter(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Sweep(**kwargs)


def test_check_scale():
    assert check_scale("gpu") == "gpu"
    with pytest.raises(ValueError, match="smoke"):
        check_scale("GPU")


def test_bench_config_is_the_largest_cpu_model():
    plan = part3_3("cpu")
    largest = max(plan.shapes, key=Shape.approx_params)
    assert BENCH_TRAIN["model"].n_embd == largest.width
    assert BENCH_TRAIN["model"].n_layer == largest.layers
