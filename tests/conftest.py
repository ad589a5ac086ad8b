"""Shared pytest configuration."""

import pytest
import torch


def pytest_configure(config):
    # Registered here so that `-m "not slow"` works without a pytest section for markers.
    config.addinivalue_line("markers", "slow: takes more than a minute (deselect: -m 'not slow')")


@pytest.fixture(autouse=True)
def one_thread():
    """Every test runs on one torch thread: the models and ops here are small, and two threads
    on a busy two-core machine are many times slower than one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
