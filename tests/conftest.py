"""Shared fixtures. Each area keeps its fixtures in tests/_fixtures/<area>.py; they are imported here
so every test directory sees them."""

import os
import sys
from pathlib import Path

# 2 cores: oversubscription turns a 0.25 s step into seconds. Set before torch is imported.
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("MKL_NUM_THREADS", "2")

sys.path.insert(0, str(Path(__file__).parent))

from _fixtures.common import *  # noqa: E402,F401,F403
from _fixtures.data import *  # noqa: E402,F401,F403
from _fixtures.ssh import *  # noqa: E402,F401,F403
from _fixtures.train import *  # noqa: E402,F401,F403
from _fixtures.runtime import *  # noqa: E402,F401,F403
from _fixtures.export import *  # noqa: E402,F401,F403
