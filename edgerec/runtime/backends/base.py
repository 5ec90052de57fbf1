"""The interface every backend implements."""

from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from ...bundle import Artifact

__all__ = ["Backend", "BoundInput", "COPY_BYTES"]

# Backends that bind their input: up to this size an input is copied into a buffer bound once (a copy of
# 64 KiB takes ~2 us), larger ones are bound where they lie (binding a new array costs 1-10 us per call).
COPY_BYTES = 1 << 16


class Backend(ABC):
    """Raw tensor in, raw tensor out. Quantization and layout are the caller's (see ``adapters``)."""

    name: str = ""
    module: str = ""  # importable module that provides it
    package: str = ""  # pip package name for the error message
    extra: str = ""  # edgerec extra that installs it
    dynamic_batch: bool = False  # True when invoke() takes any batch size (else input_shape[0])

    def __init__(self, path: Path, artifact: Artifact, *, threads: int | None = None, device: str | None = None):
        self.path = Path(path)
        self.artifact = artifact
        self.threads = threads
        self.device = device

    @classmethod
    def is_installed(cls) -> bool:
        try:
            return importlib.util.find_spec(cls.module) is not None
        except (ImportError, ValueError):
            return False

    @classmethod
    def library_version(cls) -> str:
        """``"<module> <version>"`` of the library that provides this backend; raises ImportError when absent."""
        mod = importlib.import_module(cls.module)
        return f"{cls.module} {getattr(mod, '__version__', 'installed')}"

    @property
    @abstractmethod
    def input_shape(self) -> tuple[int, ...]: ...

    @property
    @abstractmethod
    def input_dtype(self) -> np.dtype: ...

    @property
    def input_signature(self) -> tuple[int | None, ...]:
        """The input shape with ``None`` for dimensions the model leaves open (``input_shape`` shows them as 1)."""
        return self.input_shape

    @abstractmethod
    def invoke(self, x: np.ndarray) -> np.ndarray:
        """Run one batch; returns the first output."""

    @property
    def version(self) -> str:
        return ""

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path.name}, threads={self.threads})"


class BoundInput:
    """For backends that bind their input once (ONNX Runtime IO binding, OpenVINO tensors): ``_x`` is the caller's
    array bound as it is, ``_own`` a buffer of ours bound instead (small inputs), ``_bind(x)`` binds anew."""

    _x: np.ndarray | None = None
    _own: np.ndarray | None = None

    def _stage_input(self, x: np.ndarray) -> None:
        """Make ``x`` the bound input: nothing to do for the array already bound, a copy into our buffer when it
        fits, else a new binding."""
        if x is self._x:
            return
        own = self._own
        if own is not None and x.shape == own.shape and x.dtype == own.dtype:
            np.copyto(own, x)
        else:
            self._bind(x)

    def _bind(self, x: np.ndarray) -> None:
        raise NotImplementedError
