"""Shared fixtures. Each area keeps its fixtures in tests/_fixtures/<area>.py; they are imported here
so every test directory sees them."""

import os
import sys
import tempfile
from pathlib import Path

import pytest

# 2 cores: oversubscription turns a 0.25 s step into seconds. Set before torch is imported.
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("MKL_NUM_THREADS", "2")
# The runtime caches its timed artifact choice (and TensorRT engines) under $EDGEREC_CACHE: one throw-away
# folder per test session, never the developer's ~/.cache
os.environ.setdefault("EDGEREC_CACHE", tempfile.mkdtemp(prefix="edgerec-test-cache-"))

sys.path.insert(0, str(Path(__file__).parent))

from _fixtures.common import *  # noqa: E402,F401,F403
from _fixtures.data import *  # noqa: E402,F401,F403
from _fixtures.ssh import *  # noqa: E402,F401,F403
from _fixtures.train import *  # noqa: E402,F401,F403
from _fixtures.runtime import *  # noqa: E402,F401,F403
from _fixtures.export import *  # noqa: E402,F401,F403
from _fixtures.emulated_board import *  # noqa: E402,F401,F403


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "board: needs the emulated Raspberry Pi (devices/emulated-pi, qemu-user, root); minutes per test, "
        "so it runs only when asked for: pytest -m board, or EDGEREC_BOARD_TESTS=1")


def pytest_collection_modifyitems(config, items):
    # Emulation is slow (setup alone takes minutes): the main suite leaves these tests out unless they are selected
    if "board" in (config.getoption("-m") or "") or os.environ.get("EDGEREC_BOARD_TESTS") == "1":
        return
    skip = pytest.mark.skip(reason="emulated-board test: run with `pytest -m board` (make board-test)")
    for item in items:
        if item.get_closest_marker("board"):
            item.add_marker(skip)
