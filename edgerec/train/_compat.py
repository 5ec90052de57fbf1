"""Version-guarded compatibility shims for the quantization stack.

Each shim names the versions it is for, does nothing elsewhere, and is applied by the code that needs it
(never at import).

``litert_conv_bn_patterns``
    litert-torch 0.10's PT2E quantizer builds its conv-bn(-relu) match patterns by passing a plain Python
    function to ``torch.export.export``; torch >= 2.9 accepts only ``nn.Module`` there, so annotating any
    model with a BatchNorm fails with ``Expected `mod` to be an instance of `torch.nn.Module```. torchao's
    own copy of the same code wraps the function in ``WrapperModule``; the shim does the same for litert.
"""

from __future__ import annotations

import functools
import re
import threading

__all__ = ["litert_needs_conv_bn_fix", "apply_litert_conv_bn_fix", "version_tuple"]

# litert-torch releases whose pattern builder passes a plain function to torch.export.
_LITERT_AFFECTED = ((0, 0), (0, 11))  # [low, high): 0.10.x and earlier, on torch >= 2.9
_TORCH_STRICT_EXPORT = (2, 9)

_lock = threading.Lock()


def version_tuple(version: str) -> tuple[int, ...]:
    """``"2.14.1+cpu"`` -> ``(2, 14, 1)``; ``"0.11.0rc1"`` -> ``(0, 11, 0)``."""
    match = re.match(r"\d+(?:\.\d+)*", version)
    return tuple(int(p) for p in match.group(0).split(".")) if match else ()


def litert_needs_conv_bn_fix(litert_version: str | None = None, torch_version: str | None = None) -> bool:
    """Whether this litert-torch / torch pair has the plain-function pattern bug."""
    if litert_version is None:
        from importlib.metadata import version

        litert_version = version("litert-torch")
    if torch_version is None:
        import torch

        torch_version = torch.__version__
    lit = version_tuple(litert_version)[:2]
    low, high = _LITERT_AFFECTED
    return low <= lit < high and version_tuple(torch_version)[:2] >= _TORCH_STRICT_EXPORT


def _wrap_pattern(original):
    @functools.wraps(original)
    def get_aten_graph_module_for_pattern(pattern, example_inputs, is_cuda=False, **kwargs):
        import torch
        from torchao.quantization.pt2e.export_utils import WrapperModule

        if not isinstance(pattern, torch.nn.Module):
            pattern = WrapperModule(pattern)
        return original(pattern, example_inputs, is_cuda, **kwargs)

    get_aten_graph_module_for_pattern.__edgerec_shim__ = True
    return get_aten_graph_module_for_pattern


def apply_litert_conv_bn_fix(*, force: bool = False) -> bool:
    """Patch litert-torch's pattern builder when the installed versions need it.

    Returns True when the patch is in place after the call. Idempotent; ``force`` applies it on any version
    (tests use it to check that the wrapper is harmless).
    """
    if not (force or litert_needs_conv_bn_fix()):
        return False
    from litert_torch.quantize import pt2e_quantizer_utils as utils

    with _lock:
        current = utils._get_aten_graph_module_for_pattern
        if not getattr(current, "__edgerec_shim__", False):
            utils._get_aten_graph_module_for_pattern = _wrap_pattern(current)
    return True
