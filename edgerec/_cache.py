"""Where edgerec keeps what it works out on a device and reuses later (TensorRT engines, the artifact choice).

``$EDGEREC_CACHE`` when set, else ``~/.cache/edgerec``; never inside a bundle, whose files are hashed.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir(*parts: str) -> Path:
    """``<cache root>/<parts...>`` (not created here)."""
    return Path(os.environ.get("EDGEREC_CACHE") or Path.home() / ".cache" / "edgerec").joinpath(*parts)
