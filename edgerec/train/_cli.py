"""``edgerec train`` and ``edgerec eval``: parse flags, call ``edgerec.train``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import ConfigError

__all__ = ["train_main", "eval_main", "parse_train_args"]

_EXAMPLES = """examples:
  edgerec data digits data/digits
  edgerec train data/digits --out runs/digits --config train/digits.yaml --qat --ptq
  edgerec train photos/ --out runs/flowers --model efficientnet_b0 --img-size 224 --epochs 15 --qat
  edgerec train photos/ --out runs/f --config my.yaml --set augment.hflip=true --set qat_cfg.epochs=2
  torchrun --nproc_per_node 4 -m edgerec train photos/ --out runs/ddp     (data-parallel on 4 GPUs)
"""


def _build_train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edgerec train", description="Transfer learning (+ QAT/PTQ int8) from a folder of labelled images into a run folder.",
        epilog=_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("data", nargs="?", help="ImageFolder, train/ val/ test/ folders, or a CSV path,label[,split]")
    p.add_argument("--out", help="run folder to create (written atomically)")
    p.add_argument("--config", help="YAML recipe (any key below; flags override it), e.g. train/digits.yaml")
    p.add_argument("--model", help="efficientnet_lite0 (default), efficientnet_lite1/2, mobilenet_v3_small, mobilenet_v3_large, mobilenet_v2, "
                   "efficientnet_b0, resnet18 (docs/train.md#models)")
    p.add_argument("--weights", help="imagenet (default; mean/std come with them), none (from scratch) or PATH to a "
                   "state dict of the same network")
    p.add_argument("--img-size", type=int, dest="img_size")
    p.add_argument("--epochs", type=int, help="fine-tuning epochs (after the head-only epochs)")
    p.add_argument("--head-epochs", type=int, dest="head_epochs", help="frozen-backbone epochs with pretrained weights")
    p.add_argument("--batch-size", type=int, dest="batch_size")
    p.add_argument("--lr", type=float, help="peak learning rate of fine-tuning")
    p.add_argument("--optimizer", choices=("sgd", "adamw"))
    p.add_argument("--balance", choices=("weighted", "sampler", "none"), help="class-weighted loss or balanced sampling")
    p.add_argument("--patience", type=int, help="early stopping after N epochs without val improvement (0: off)")
    p.add_argument("--qat", action="store_true", default=None, help="quantization-aware fine-tuning into quantized.pt2")
    p.add_argument("--ptq", action="store_true", default=None, help="post-training quantization (with --qat it is calibrated anyway, and kept when it is more accurate on val)")
    p.add_argument("--multi-label", action="store_true", default=None, dest="multi_label")
    p.add_argument("--folds", type=int, help="k-fold cross-validation on train+val before the final model")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"))
    p.add_argument("--workers", type=int, help="threads decoding images (once, before training; default: every core)")
    p.add_argument("--cache", choices=("auto", "ram", "disk"),
                   help="decoded images in memory per process, or on disk shared by every process (default auto)")
    p.add_argument("--cache-dir", dest="cache_dir", help="the disk cache's folder (default ~/.cache/edgerec/decoded)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--resume", help="start from a finished run's best.pt (same model; new class folders allowed)")
    p.add_argument("--overwrite", action="store_true", default=None, help="replace an existing --out folder")
    p.add_argument("--max-steps", type=int, dest="max_steps", help="cap optimiser steps per epoch (quick looks)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any config key, dotted for nested ones: --set augment.rotation=15")
    p.add_argument("--no-plots", action="store_false", default=None, dest="plots")
    p.add_argument("--quiet", action="store_false", default=None, dest="progress", help="no progress bars")
    p.add_argument("--json", action="store_true", help="print metrics.json's val/test figures as JSON at the end")
    p.add_argument("--allow-chance", action="store_true", dest="allow_chance",
                   help="exit 0 even when the final model is no better than chance (default: exit 3)")
    return p


def _parse_set(items: list[str]) -> dict:
    from .._config import parse_yaml

    out: dict = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set {item!r} is not KEY=VALUE", hint="e.g. --set augment.hflip=true")
        key, value = item.split("=", 1)
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = parse_yaml(value, where=f"--set {item}")  # numbers, bools and lists as YAML reads them
    return out


def parse_train_args(argv: list[str]):
    """``TrainConfig`` from CLI flags (over ``--config`` YAML, over defaults)."""
    from .._config import merge
    from .config import load_config

    args = _build_train_parser().parse_args(argv)
    skip = {"config", "set", "json", "allow_chance"}
    flags = {k: v for k, v in vars(args).items() if k not in skip and v is not None}
    flags = merge(_parse_set(args.set), flags)
    return load_config(flags, config_file=args.config), args


def _log_to_stderr() -> None:
    """Training warnings (``edgerec.train`` logger) on stderr, between the progress bars."""
    import logging

    class _CurrentStderr(logging.StreamHandler):
        """Writes to whatever ``sys.stderr`` is when a record comes, not the one at set-up (a caller, a test runner
        or tqdm may swap it, and the old one may be closed by then)."""

        @property
        def stream(self):
            return sys.stderr

        @stream.setter
        def stream(self, value):
            pass

        def emit(self, record):
            try:
                from tqdm.auto import tqdm

                tqdm.write(self.format(record), file=sys.stderr)  # above any progress bar, not through it
            except Exception:  # noqa: BLE001 - logging's contract: a failing handler reports, never raises
                self.handleError(record)

    class _Plain(logging.Formatter):
        """Messages as they are; warnings and errors with their level in front."""

        def format(self, record):
            text = super().format(record)
            return text if record.levelno < logging.WARNING else f"{record.levelname}: {text}"

    logger = logging.getLogger("edgerec")
    if not logger.handlers:
        handler = _CurrentStderr()
        handler.setFormatter(_Plain("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def train_main(argv: list[str]) -> int:
    """Exit codes: 0 done, 2 bad input, 3 (``EXIT_AT_CHANCE``) the run folder was written but its model is no
    better than chance (``--allow-chance`` turns that into 0)."""
    from .monitor import EXIT_AT_CHANCE
    from .runner import train

    _log_to_stderr()
    cfg, args = parse_train_args(argv)
    if cfg.data is None or cfg.out is None:
        raise ConfigError("edgerec train needs DATA and --out", hint="edgerec train data/digits --out runs/digits")
    run = train(cfg)
    from .distributed import is_main

    if not is_main():  # under torchrun, rank 0 says it once
        return 0
    from .metrics import summary_table

    print(summary_table(run.metrics, task=run.metrics.get("task", "single_label")))
    if cfg.progress:
        print(f"run folder: {run.dir}   (plots in {run.dir / 'plots'}; next: edgerec export {run.dir})")
    if args.json:
        print(json.dumps({k: {p: m["accuracy"] for p, m in run.metrics[k].items()} for k in ("val", "test") if k in run.metrics}))
    if run.at_chance and not args.allow_chance:
        print(f"the model in {run.dir} is no better than chance (exit {EXIT_AT_CHANCE}); see the warnings above",
              file=sys.stderr)
        return EXIT_AT_CHANCE
    return 0


def eval_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="edgerec eval", description="Evaluate a run's fp32 and int8 models on a labelled folder.")
    p.add_argument("run", help="run folder written by edgerec train")
    p.add_argument("--data", required=True, help="labelled folder (class names must be among the run's labels)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--threshold", type=float, help="multi-label decision threshold (default 0.5)")
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--threads", help="torch CPU threads (auto, 0 or -1: all cores)")
    p.add_argument("--out", help="write the report here as JSON")
    p.add_argument("--json", action="store_true", help="print the full report as JSON")
    args = p.parse_args(argv)
    from ..limits import resolve_threads

    args.threads = resolve_threads(args.threads)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from .metrics import summary_table
    from .runner import evaluate

    report = evaluate(args.run, args.data, device=args.device, batch_size=args.batch_size, threshold=args.threshold,
                      workers=args.workers)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    if args.json:
        json.dump(report, sys.stdout, indent=1)
        print()
    else:
        print(summary_table(report, task=report["task"]))
    return 0
