"""Version-guarded compatibility shims for the quantization stack.

Each shim names the versions it is for, does nothing elsewhere, and is applied by the code that needs it
(never at import).

``litert_conv_bn_patterns``
    litert-torch 0.10's PT2E quantizer builds its conv-bn(-relu) match patterns by passing a plain Python
    function to ``torch.export.export``; torch >= 2.9 accepts only ``nn.Module`` there, so annotating any
    model with a BatchNorm fails with ``Expected `mod` to be an instance of `torch.nn.Module```. torchao's
    own copy of the same code wraps the function in ``WrapperModule``; the shim does the same for litert.

``litert_pad_layout_rule``
    litert-torch 0.10's NHWC layout pass (which turns PyTorch's NCHW graph into TFLite's NHWC one) has rules
    for reflection and replication pads but none for a constant pad, so every zero pad is run in NCHW with a
    TRANSPOSE on each side: 10 of them on EfficientNet-Lite0's largest feature maps (its TensorFlow SAME
    pads), and the converter cannot fold the pad into the convolution after it. The shim registers the
    missing rule: a constant pad of H and W in NCHW is the same pad in NHWC with the (W, H) pairs moved
    behind a zero pair for C.
"""

from __future__ import annotations

import functools
import re
import threading

__all__ = [
    "litert_needs_conv_bn_fix",
    "apply_litert_conv_bn_fix",
    "litert_needs_pad_layout_rule",
    "apply_litert_pad_layout_rule",
    "version_tuple",
]

# litert-torch releases whose pattern builder passes a plain function to torch.export.
_LITERT_AFFECTED = ((0, 0), (0, 11))  # [low, high): 0.10.x and earlier, on torch >= 2.9
_TORCH_STRICT_EXPORT = (2, 9)
# litert-torch releases whose NHWC layout pass has no rule for aten.constant_pad_nd: [low, high)
_LITERT_NO_PAD_LAYOUT = ((0, 0), (0, 11))

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


def litert_needs_pad_layout_rule(litert_version: str | None = None) -> bool:
    """Whether this litert-torch release lacks the NHWC layout rule for a constant pad."""
    if litert_version is None:
        from importlib.metadata import version

        litert_version = version("litert-torch")
    low, high = _LITERT_NO_PAD_LAYOUT
    return low <= version_tuple(litert_version)[:2] < high


def _nhwc_constant_pad(x, pad, value=0):
    """``aten.constant_pad_nd`` of an NCHW pad list, applied to the same tensor held as NHWC."""
    import torch

    return torch.ops.aten.constant_pad_nd.default(x, [0, 0, *pad], value)


def _pad_checker(node):
    """NHWC is fine for a 4-D constant pad of W, or W and H, only (a pad of C or N would move axes)."""
    from litert_torch._convert.fx_passes.optimize_layout_transposes_pass import layout_check

    pad = node.args[1] if len(node.args) > 1 else node.kwargs.get("pad", ())
    can_be = (layout_check.is_4d(node) and layout_check.is_4d(node.args[0]) and len(pad) in (2, 4)
              and all(isinstance(p, int) for p in pad))
    return layout_check.NHWCable(can_be=can_be, must_be=False)


def _pad_rewriter(node):
    node.target = _nhwc_constant_pad


def apply_litert_pad_layout_rule(*, force: bool = False) -> bool:
    """Register the NHWC layout rule for constant pads in litert-torch's layout pass, where it is missing.

    Returns True when the rule is in place after the call (False: this version does not need it). Never
    replaces a rule litert-torch has itself; idempotent; ``force`` applies it on any version (tests).
    """
    if not (force or litert_needs_pad_layout_rule()):
        return False
    import torch
    from litert_torch._convert.fx_passes.optimize_layout_transposes_pass import layout_check, layout_rewrite

    op = torch.ops.aten.constant_pad_nd.default
    with _lock:
        if op not in layout_rewrite.rewriters:
            layout_check.layout_sensitive_inputs_getters[op] = lambda node: [node.args[0]]
            layout_check.nhwcable_node_checkers[op] = _pad_checker
            layout_rewrite.rewriters[op] = _pad_rewriter
    return True
