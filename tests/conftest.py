"""Shared fixtures. Each area keeps its fixtures in tests/_fixtures/<area>.py; they are imported here
so every test directory sees them."""

import os
import sys
import tempfile
from pathlib import Path

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
