"""run_in_workers: same results in order, in this process or in spawned workers."""

import os

import pytest

from physlm.experiments.workers import run_in_workers


def square_and_pid(x: int) -> tuple[int, int]:
    return x * x, os.getpid()


def test_results_in_order_in_process():
    out = run_in_workers(square_and_pid, [3, 1, 2], workers=1)
    assert [v for v, _ in out] == [9, 1, 4]
    assert {pid for _, pid in out} == {os.getpid()}


def test_results_in_order_in_workers():
    out = run_in_workers(square_and_pid, list(range(5)), workers=2)
    assert [v for v, _ in out] == [0, 1, 4, 9, 16]
    assert os.getpid() not in {pid for _, pid in out}


@pytest.mark.parametrize("workers", [0, -1, 1.5, True])
def test_bad_workers(workers):
    with pytest.raises(ValueError, match="workers must be an int >= 1"):
        run_in_workers(square_and_pid, [1], workers=workers)
