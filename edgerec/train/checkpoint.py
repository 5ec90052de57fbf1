"""The run folder's checkpoint (``best.pt``) and loading a whole run for eval and export."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..bundle import InputSpec
from ..errors import ModelError

__all__ = ["CHECKPOINT_FORMAT", "save_checkpoint", "load_checkpoint", "load_run", "LoadedRun"]

CHECKPOINT_FORMAT = "edgerec-checkpoint/1"


def save_checkpoint(path, model, *, model_name: str, labels, task: str, input_spec: InputSpec, **extra) -> Path:
    """Weights plus everything needed to rebuild and feed the model."""
    import torch

    path = Path(path)
    state = {
        "format": CHECKPOINT_FORMAT,
        "model": model_name,
        "num_classes": len(labels),
        "labels": list(labels),
        "task": task,
        "input": dataclasses.asdict(input_spec),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        **extra,
    }
    tmp = path.with_suffix(".pt.tmp")
    torch.save(state, tmp)
    tmp.replace(path)
    return path


def load_checkpoint(path) -> tuple[Any, dict]:
    """(fp32 model in eval mode, checkpoint metadata without the weights)."""
    import torch

    from .models import build_model

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"no checkpoint at {path}", hint="train first: edgerec train DATA --out RUN")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several unrelated types for a bad file
        raise ModelError(f"{path} is not a readable edgerec checkpoint: {exc}") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ModelError(f"{path} is not an edgerec checkpoint (format {ckpt.get('format') if isinstance(ckpt, dict) else '?'})")
    model = build_model(ckpt["model"], ckpt["num_classes"], weights="none")
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    meta = {k: v for k, v in ckpt.items() if k != "state_dict"}
    return model, meta


@dataclass
class LoadedRun:
    run_dir: Path
    model: Any
    model_name: str
    labels: tuple[str, ...]
    task: str
    input_spec: InputSpec
    quantized: Any = None
    quant_method: str | None = None
    split: dict = field(default_factory=dict)
    run_id: str | None = None
    dataset_sha256: str | None = None
    meta: dict = field(default_factory=dict)


def load_run(run_dir, *, with_quantized: bool = True) -> LoadedRun:
    """Everything export and eval need from a finished run folder."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ModelError(f"run folder not found: {run_dir}", hint="pass the --out folder of `edgerec train`")
    model, meta = load_checkpoint(run_dir / "best.pt")
    inp = dict(meta["input"])
    inp["mean"], inp["std"] = tuple(inp["mean"]), tuple(inp["std"])
    info = _read_json(run_dir / "run.json")
    split = _read_json(run_dir / "split.json")
    quantized, method = None, None
    qpath = run_dir / "quantized.pt2"
    if with_quantized and qpath.is_file():
        from .qat import load_quantized

        quantized = load_quantized(qpath)
        method = _read_json(run_dir / "quantized.json").get("method")
    return LoadedRun(
        run_dir=run_dir,
        model=model,
        model_name=meta["model"],
        labels=tuple(meta["labels"]),
        task=meta.get("task", "single_label"),
        input_spec=InputSpec(**inp),
        quantized=quantized,
        quant_method=method,
        split=split,
        run_id=info.get("run_id"),
        dataset_sha256=info.get("dataset_sha256"),
        meta=meta,
    )


def _read_json(path: Path) -> dict:
    if not path.is_file():
        return {}
    return json.loads(path.read_text())
