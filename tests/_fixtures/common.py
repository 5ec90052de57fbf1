"""Fixtures every area may use."""

import pytest

__all__ = ["repo_root"]


@pytest.fixture(scope="session")
def repo_root():
    from pathlib import Path

    return Path(__file__).resolve().parents[2]
