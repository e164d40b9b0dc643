"""Shared pytest options: ``--slow`` runs the long regressions marked ``slow``."""

import pytest


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", default=False,
                     help="also run tests marked slow (the full regression cross product)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--slow"):
        return
    skip = pytest.mark.skip(reason="slow regression: run with --slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
