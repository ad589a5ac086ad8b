"""Shared pytest configuration."""


def pytest_configure(config):
    # Registered here so that `-m "not slow"` works without a pytest section for markers.
    config.addinivalue_line("markers", "slow: takes more than a minute (deselect: -m 'not slow')")
