"""edgerec: train, export, run, profile and deploy image-recognition models on edge devices.

``import edgerec`` pulls in numpy at most; every heavy dependency is imported by the function
that needs it.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import EdgerecError

__all__ = ["__version__", "EdgerecError"]
