"""``train(config) -> Run``: data, fp32 transfer learning, QAT/PTQ, metrics, plots, the run folder.

>>> from edgerec.train import train, load_config
>>> run = train(load_config({"data": "data/digits", "out": "runs/digits"}, config_file="train/digits.yaml"))  # doctest: +SKIP
>>> run.metrics["test"]["fp32"]["accuracy"], run.metrics["test"]["int8"]["accuracy"]                            # doctest: +SKIP
(0.989, 0.983)
"""

from __future__ import annotations

import json
import logging
import platform
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..bundle import InputSpec
from ..errors import ConfigError, DataError, ModelError
from .config import TrainConfig, dump_config
from .distributed import dist_info, init_distributed, select_device
from .phases import fit, ptq_calibrate, qat_finetune
from .tensors import Prepared

# what a run says as it goes (data, input, cache, folds); `edgerec train` shows it on stderr
log = logging.getLogger("edgerec.train")

__all__ = ["Run", "train", "evaluate", "Prepared", "prepare_data"]


@dataclass
class Run:
    """A finished run folder and what it measured."""

    dir: Path
    metrics: dict
    config: TrainConfig
    history: list[dict] = field(default_factory=list)
    at_chance: bool = False  # the final model is no better than always answering the commonest class

    def __repr__(self) -> str:
        test = self.metrics.get("test", {})
        figs = ", ".join(f"{p} {100 * m['accuracy']:.2f}%" for p, m in test.items())
        return f"Run({str(self.dir)!r}, test: {figs or '-'})"


def _versions() -> dict:
    from .. import __version__
    from .._versions import package_versions

    return {"python": platform.python_version(), **package_versions(("torch", "torchvision", "torchao")),
            "edgerec": __version__}


def _input_spec(cfg: TrainConfig, resize_mode: str) -> InputSpec:
    from .models import input_config

    # mean/std: the starting weights' own (EfficientNet-Lite's are 0.5/0.5), the project default from scratch;
    # given in the config, they win. area+bilinear: anti-aliased when frames are much larger than the input
    # (edgerec.runtime.image); the fine-tuned model learns on exactly what it is fed, whatever its weights saw.
    weights = input_config(cfg.model, cfg.weights)
    mean, std = cfg.mean or weights.mean, cfg.std or weights.std
    return InputSpec(
        height=cfg.img_size, width=cfg.img_size, mean=tuple(mean), std=tuple(std), color_order="RGB",
        pixel_scale=255.0, resize_mode=resize_mode, interpolation="area+bilinear",
    )


def prepare_data(cfg: TrainConfig, *, progress: bool = True) -> Prepared:
    """Load, split and decode the dataset once."""
    from ..data.dataset import load_dataset
    from ..data.split import stratified_split
    from .tensors import ImageTensors, resolve_resize_mode, targets_for

    if cfg.data is None:
        raise ConfigError("no dataset given", hint="edgerec train DATA --out RUN (or data: in the YAML)")
    if not Path(cfg.data).exists():
        raise DataError(f"dataset not found: {cfg.data}", hint="check the path, or make one: edgerec data digits OUT")
    ds = load_dataset(cfg.data, multi_label=cfg.multi_label)
    split = stratified_split(ds, cfg.split, seed=cfg.seed)
    for w in getattr(split, "warnings", []):
        log.warning("%s", w)
    if not split.train:
        raise DataError(f"{cfg.data}: the split left no training images", hint="add images or change --split")
    if not split.val:
        raise DataError(f"{cfg.data}: the split left no validation images", hint="add images or raise the val ratio")
    task = "multi_label" if cfg.multi_label else "single_label"
    order = split.train + split.val + split.test
    paths = [ds.samples[i].path for i in order]
    resize_mode, resize_reason = resolve_resize_mode(cfg.resize_mode, [ds.samples[i].path for i in split.train], seed=cfg.seed)
    spec = _input_spec(cfg, resize_mode)
    images = _decoded(cfg, paths, spec, progress=cfg.progress and progress)
    targets = targets_for([ds.samples[i].labels for i in order], len(ds.classes), cfg.multi_label)
    allt = ImageTensors(images, targets, paths)
    a, b = len(split.train), len(split.train) + len(split.val)
    return Prepared(
        dataset=ds, split=split, classes=tuple(ds.classes), task=task,
        train=allt.subset(range(a)), val=allt.subset(range(a, b)), test=allt.subset(range(b, len(order))),
        input_spec=spec, resize_reason=resize_reason,
    )


def cache_mode(cfg: TrainConfig, n: int, spec: InputSpec, world_size: int = 1) -> tuple[str, str]:
    """``(ram|disk, reason)`` for ``cfg.cache``; ``ram`` that cannot fit in the available memory is refused."""
    from .cache import available_ram_bytes, cache_bytes

    need, ram = cache_bytes(n, spec), available_ram_bytes()
    if cfg.cache == "ram" and ram is not None and need * max(1, world_size) > ram:
        raise DataError(f"the decoded images need {need / 1e9:.2f} GB per process x {max(1, world_size)} and "
                        f"{ram / 1e9:.2f} GB of memory is available", hint="use --cache disk (or auto), or lower img_size")
    if cfg.cache != "auto":
        return cfg.cache, f"cache: {cfg.cache} set in the training configuration"
    if world_size > 1:
        return "disk", f"{world_size} processes: one decoded copy on disk, read by all of them"
    if ram is not None and need > ram / 4:
        return "disk", f"{need / 1e9:.2f} GB decoded is over a quarter of the {ram / 1e9:.1f} GB available memory"
    return "ram", "fits in memory"


def _decoded(cfg: TrainConfig, paths: list[Path], spec: InputSpec, *, progress: bool):
    """The decoded images, in memory or in the disk cache (``cfg.cache``), with what it costs said first."""
    from .cache import default_cache_dir, describe_plan, open_cache
    from .distributed import dist_info
    from .tensors import decode_images

    info = dist_info()
    mode, why = cache_mode(cfg, len(paths), spec, info.world_size)
    root = Path(cfg.cache_dir).expanduser() if cfg.cache_dir else default_cache_dir()
    if info.main:
        log.info("%s (%s)", describe_plan(mode, len(paths), spec, root), why)
    if mode == "ram":
        return decode_images(paths, spec, workers=cfg.workers, progress=progress)
    images, built = open_cache(paths, spec, root, workers=cfg.workers, progress=progress)  # only the builder shows a bar
    if built.built:  # whichever process built it says so (one per machine)
        rank = f"rank {info.rank}: " if info.enabled else ""
        log.info("decoded cache: %sdecoded %d images into %s (%.1f s)", rank, built.decoded, built.folder, built.seconds)
    elif info.main:
        log.info("decoded cache: reading %s", built.folder)
    return images


# ------------------------------------------------------------------------------------------------- run folder


def _tmp_dir(out: Path, run_id: str) -> Path:
    return out.parent / f"{out.name}.incomplete-{run_id}"


def _check_out(cfg: TrainConfig) -> Path:
    if cfg.out is None:
        raise ConfigError("no output folder given", hint="edgerec train DATA --out RUN")
    out = Path(cfg.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not cfg.overwrite:
            raise ConfigError(f"output folder {out} already exists and is not empty",
                              hint="pick another --out, or pass --overwrite to replace it")
    return out


def _load_resume(cfg: TrainConfig, classes: tuple[str, ...]):
    """The state dict of ``--resume RUN``'s best model, its classifier rows re-ordered to ``classes``.

    New classes are allowed (a warm start for the next round of data): the rows of the labels both runs have are
    kept, a new label gets a fresh row, a dropped label's row goes. A run that shares no label with the data is
    refused: that is the wrong run or the wrong folder.
    """
    if cfg.resume is None:
        return None
    from .checkpoint import load_checkpoint

    model, meta = load_checkpoint(Path(cfg.resume) / "best.pt")
    if meta["model"] != cfg.model:
        raise ModelError(f"--resume {cfg.resume} holds a {meta['model']}, not a {cfg.model}",
                         hint=f"pass --model {meta['model']}")
    old = tuple(meta["labels"])
    state = model.state_dict()
    if old == tuple(classes):
        return state
    shared = [c for c in classes if c in old]
    if not shared:
        raise DataError(
            f"--resume {cfg.resume} was trained on labels {list(old)} but {cfg.data} has {list(classes)}: none in common",
            hint="resume from a run on (mostly) the same class folders, or train from the pretrained weights",
        )
    added, dropped = [c for c in classes if c not in old], [c for c in old if c not in classes]
    log.info("resume: warm start from %s: %d classes kept%s%s", cfg.resume, len(shared),
             f", new {added}" if added else "", f", dropped {dropped}" if dropped else "")
    return _remap_head(state, _head_key(cfg.model), old, classes)


def _head_key(model_name: str) -> str:
    from .models import _info

    return _info(model_name).head


def _remap_head(state: dict, head: str, old: tuple[str, ...], new: tuple[str, ...]) -> dict:
    """``state`` with the classifier ``head`` (a Linear) re-ordered from the ``old`` labels to the ``new`` ones:
    shared labels keep their rows, new ones get PyTorch's default Linear initialisation."""
    import torch

    w, b = state[f"{head}.weight"], state.get(f"{head}.bias")
    fresh = torch.nn.Linear(w.shape[1], len(new), bias=b is not None)
    nw = fresh.weight.detach().clone()
    nb = fresh.bias.detach().clone() if b is not None else None
    for i, c in enumerate(new):
        if c in old:
            nw[i] = w[old.index(c)]
            if nb is not None:
                nb[i] = b[old.index(c)]
    out = dict(state)
    out[f"{head}.weight"] = nw
    if nb is not None:
        out[f"{head}.bias"] = nb
    return out


def _evaluate_all(cfg, data: Prepared, model, quantized, other: tuple, *, device,
                  val_logits: dict | None = None) -> dict:
    """fp32, the kept int8 graph (``int8``) and the other one made (``int8_qat``/``int8_ptq``) on val and test.

    ``val_logits``: validation logits already computed, by model object (``_better_int8``'s), not computed again."""
    import torch

    from .loop import Normalizer, predict
    from .metrics import compute_metrics

    from .calibration import calibration_report

    metrics: dict = {}
    prep = Normalizer(data.input_spec.mean, data.input_spec.std, device)
    cpu_prep = Normalizer(data.input_spec.mean, data.input_spec.std, torch.device("cpu"))
    models = {"fp32": (model, prep), "int8": (quantized, cpu_prep)}
    if other[1] is not None:
        models[f"int8_{other[0]}"] = (other[1], cpu_prep)
    logits: dict = {}
    for split_name, t in (("val", data.val), ("test", data.test)):
        if len(t) == 0:
            continue
        y = t.targets.numpy()
        m = {}
        for prec, (fwd, pp) in models.items():
            if fwd is None:
                continue
            known = (val_logits or {}).get(fwd) if split_name == "val" else None
            z = logits[split_name, prec] = known if known is not None else predict(fwd, t.images, pp)
            m[prec] = compute_metrics(z, y, data.classes, task=data.task, threshold=cfg.threshold)
        metrics[split_name] = m
    # one temperature per model, fitted on val, its effect measured on test (see edgerec.train.calibration)
    cal = {}
    for prec in models:
        if ("val", prec) in logits:
            cal[prec] = calibration_report(logits["val", prec], data.val.targets.numpy(), logits.get(("test", prec)),
                                           data.test.targets.numpy(), data.task)
    metrics["calibration"] = cal
    return metrics


def _cross_validate(cfg: TrainConfig, data: Prepared, *, device, info) -> dict:
    """k-fold on train+val (test held out); fp32 only; returns metrics.json's ``cv`` entry."""
    from ..data.split import kfold
    from .loop import Normalizer, predict
    from .metrics import compute_metrics, cv_summary
    from .tensors import ImageTensors, cat_images

    import torch

    split = data.split
    pool = split.train + split.val
    # the decoded tensors are ordered train then val: map dataset index -> position
    pos = {di: i for i, di in enumerate(pool)}
    both = ImageTensors(cat_images([data.train.images, data.val.images]), torch.cat([data.train.targets, data.val.targets]),
                        data.train.paths + data.val.paths)
    folds = kfold(data.dataset, pool, cfg.folds, seed=cfg.seed)
    prep = Normalizer(data.input_spec.mean, data.input_spec.std, device)
    per_fold = []
    for k, (tr, va) in enumerate(folds):
        tr_t, va_t = both.subset([pos[i] for i in tr]), both.subset([pos[i] for i in va])
        if info.main:
            log.info("fold %d/%d: %d train, %d held out", k + 1, cfg.folds, len(tr_t), len(va_t))
        result = fit(cfg, data, tr_t, va_t, device=device, info=info, desc=f"fold {k + 1}")
        logits = predict(result.model, va_t.images, prep)
        m = compute_metrics(logits, va_t.targets.numpy(), data.classes, task=data.task, threshold=cfg.threshold)
        per_fold.append({k2: m[k2] for k2 in ("n", "accuracy", "macro_f1", "top_k") if k2 in m})
    return {"k": cfg.folds, "folds": per_fold, "summary": cv_summary(per_fold)}


def train(cfg: TrainConfig) -> Run:
    """Train per ``cfg`` into ``cfg.out`` and return the finished ``Run``.

    Writes into ``OUT.incomplete-<id>`` next to ``OUT`` and renames it at the end, ``run.json`` last; on any
    error the incomplete folder is removed, so a folder named ``OUT`` is always a complete run.

    >>> from edgerec.train import load_config, train
    >>> cfg = load_config({"data": "data/digits", "out": "runs/d", "weights": "none", "qat": True},
    ...                   config_file="train/digits.yaml")                   # doctest: +SKIP
    >>> run = train(cfg)                                                     # doctest: +SKIP
    >>> run.metrics["test"]["int8"]["accuracy"]                              # doctest: +SKIP
    """
    info = dist_info()
    device = select_device(cfg.device, info)
    _seed_and_threads(cfg)
    out = _check_out(cfg)
    init_distributed(info, device)
    run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
    tmp = _tmp_dir(out, run_id)
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    try:
        data = prepare_data(cfg)
        cfg = _resolve_batch_size(cfg, len(data.train), info)
        resume_state = _load_resume(cfg, data.classes)
        if info.main:
            _start_run_folder(tmp, cfg, data, device, info)
        metrics: dict = {}
        if cfg.folds:
            metrics["cv"] = _cross_validate(cfg, data, device=device, info=info)
        from .monitor import TrainingMonitor, chance_rate

        chance = chance_rate(data.val.targets.numpy(), data.task)
        monitor = TrainingMonitor(chance, emit=None if info.main else (lambda w: None))
        result = fit(cfg, data, data.train, data.val, device=device, info=info, resume_state=resume_state,
                     monitor=monitor)
        if not info.main:
            return Run(out, {}, cfg, result.history)
        model = _save_best(tmp / "best.pt", cfg, data, result).to(device)
        history = list(result.history)
        val_logits: dict = {}
        quantized, other, method = _quantize(cfg, data, model, tmp, metrics, device=device, history=history,
                                             monitor=monitor, fp32_val=result.best_val.get("accuracy"),
                                             val_logits=val_logits)
        model.eval()
        metrics.update(_evaluate_all(cfg, data, model, quantized, other, device=device, val_logits=val_logits))
        at_chance = _finish_metrics(metrics, monitor, chance=chance, history=history, best_epoch=result.best_epoch,
                                    data=data, method=method)
        _write_results(tmp, metrics, cfg, data)
        _complete_run_folder(tmp, out, _run_info(cfg, data, run_id=run_id, started=started))
    except BaseException:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        _end_distributed(info)
    return Run(out, metrics, cfg, history, at_chance=at_chance)


def _seed_and_threads(cfg: TrainConfig) -> None:
    import torch

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)


def _end_distributed(info) -> None:
    if info.enabled:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def _resolve_batch_size(cfg: TrainConfig, n_train: int, info) -> TrainConfig:
    """``cfg`` with ``batch_size: auto`` resolved from the training set's size (saved in config.yaml, so that the
    run repeats); unchanged when the config names a size."""
    if cfg.batch_size is not None:
        return cfg
    from .config import auto_batch_size

    cfg = cfg.replace(batch_size=auto_batch_size(n_train, world_size=info.world_size))
    if info.main:
        log.info("batch size %d (%d training images%s)", cfg.batch_size, n_train,
                 "" if cfg.batch_size == 64 else ": smaller on a small set, for more steps per epoch")
    return cfg


def _start_run_folder(tmp: Path, cfg: TrainConfig, data: Prepared, device, info) -> None:
    """Create the incomplete run folder with the resolved config and the split, and say what the run trains on."""
    tmp.mkdir(parents=True)
    (tmp / "config.yaml").write_text(dump_config(cfg))
    data.split.save(tmp / "split.json")
    log.info("data: %d classes, %d train / %d val / %d test images at %dpx; device %s%s", len(data.classes),
             len(data.train), len(data.val), len(data.test), cfg.img_size, device,
             f", {info.world_size} processes" if info.enabled else "")
    log.info("input: resize %s (%s); %s", data.input_spec.resize_mode, data.input_spec.interpolation,
             data.resize_reason)


def _save_best(path: Path, cfg: TrainConfig, data: Prepared, result):
    """Save the fp32 phase's best model as ``best.pt``; returns that model (on the CPU)."""
    from .checkpoint import save_checkpoint

    model = result.model
    save_checkpoint(path, model.cpu(), model_name=cfg.model, labels=data.classes, task=data.task,
                    input_spec=data.input_spec, epoch=result.best_epoch, val=result.best_val,
                    resize_reason=data.resize_reason)
    return model


def _quantize(cfg: TrainConfig, data: Prepared, model, folder: Path, metrics: dict, *, device, history: list,
              monitor, fp32_val, val_logits: dict | None = None) -> tuple:
    """``(quantized, (other_method, other_graph), method)``: the int8 model saved into ``folder``, and the other
    int8 graph made (or ``(None, None)``), evaluated beside it. QAT's schedule goes into ``metrics["qat"]``.

    With ``--qat`` and ``qat_cfg.keep: better`` (the default) PTQ is calibrated too and the graph kept is the more
    accurate on validation, then the one agreeing more with fp32 (``metrics["int8_choice"]``); ``keep: qat`` keeps
    QAT's. Without ``--qat``, ``--ptq`` makes the int8 model."""
    quantized = other = None
    method = other_method = None
    if cfg.qat:
        quantized, example, metrics["qat"] = qat_finetune(cfg, data, model, device=device, history=history,
                                                          monitor=monitor, fp32_val=fp32_val)
        method = "qat"
    if cfg.ptq or (cfg.qat and cfg.qat_cfg.keep == "better"):
        ptq_graph, example = ptq_calibrate(cfg, data, model)
        if quantized is None:
            quantized, method = ptq_graph, "ptq"
        else:
            other, other_method = ptq_graph, "ptq"
            if cfg.qat_cfg.keep == "better":
                metrics["int8_choice"] = choice = _better_int8(cfg, data, model, {"qat": quantized, "ptq": other},
                                                               device=device, val_logits=val_logits)
                if choice["kept"] == "ptq":
                    quantized, other, method, other_method = other, quantized, "ptq", "qat"
    if quantized is not None:
        _save_quantized(folder, quantized, example, method, cfg.quantizer)
    return quantized, (other_method, other), method


def _better_int8(cfg: TrainConfig, data: Prepared, model, graphs: dict, *, device,
                 val_logits: dict | None = None) -> dict:
    """Which int8 graph to keep: the higher validation accuracy, then the higher agreement with the fp32 model's
    answers (top-1; all labels at the threshold for multi-label), then the first graph (QAT, what was asked for)."""
    import torch

    from .loop import Normalizer, predict
    from .metrics import compute_metrics

    def answers(z):
        if data.task == "multi_label":
            return torch.from_numpy(z).sigmoid().numpy() >= cfg.threshold
        return z.argmax(1)[:, None]

    if len(data.val) == 0:
        return {"kept": next(iter(graphs)), "why": "no validation images to compare on"}
    y = data.val.targets.numpy()
    seen = {} if val_logits is None else val_logits  # kept for _evaluate_all, which measures the same graphs on val
    seen[model] = predict(model, data.val.images, Normalizer(data.input_spec.mean, data.input_spec.std, device))
    ref = answers(seen[model])
    cpu = Normalizer(data.input_spec.mean, data.input_spec.std, torch.device("cpu"))
    scores = {}
    for name, gm in graphs.items():
        z = seen[gm] = predict(gm, data.val.images, cpu)
        acc = compute_metrics(z, y, data.classes, task=data.task, threshold=cfg.threshold)["accuracy"]
        scores[name] = {"val_agreement": float((answers(z) == ref).all(1).mean()), "val_accuracy": float(acc)}
    order = list(graphs)
    kept = max(order, key=lambda n: (scores[n]["val_accuracy"], scores[n]["val_agreement"], -order.index(n)))
    log.info("int8: %s kept (%s)", kept.upper(), ", ".join(
        f"{n.upper()} val accuracy {100 * v['val_accuracy']:.1f} %, "
        f"agrees with fp32 on {100 * v['val_agreement']:.1f} %"
        for n, v in scores.items()))
    return {"kept": kept, "why": "higher validation accuracy, then agreement with fp32, then QAT", **scores}


def _save_quantized(folder: Path, quantized, example, method: str, quantizer) -> None:
    """``quantized.pt2`` (the int8 graph) and ``quantized.json`` (how it was made) in the run folder."""
    from . import qat as Q

    Q.save_quantized(quantized, example, folder / "quantized.pt2")
    (folder / "quantized.json").write_text(json.dumps(
        {"method": method, "quantizer": quantizer, "example_shape": list(example.shape)}, indent=1) + "\n")


def _finish_metrics(metrics: dict, monitor, *, chance: float, history: list, best_epoch, data: Prepared,
                    method: str | None) -> bool:
    """Add the final verdicts and the run's facts to ``metrics``; returns whether the final model is at chance."""
    final_split = "test" if "test" in metrics else "val"
    at_chance = monitor.final(metrics[final_split]["fp32"]["accuracy"], split=final_split)
    metrics["chance"] = chance
    metrics["warnings"] = monitor.to_list()
    metrics["history"] = history
    metrics["best_epoch"] = best_epoch
    metrics["task"] = data.task
    metrics["labels"] = list(data.classes)
    if method:
        metrics["int8_method"] = method
    return at_chance


def _write_results(folder: Path, metrics: dict, cfg: TrainConfig, data: Prepared) -> None:
    """``metrics.json``, and the plots when the config asks for them."""
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    if cfg.plots:
        _write_plots(folder, metrics, metrics["history"], data.classes, data.task)


def _run_info(cfg: TrainConfig, data: Prepared, *, run_id: str, started: str) -> dict:
    """``run.json``: the run's id, times, dataset hash, model, weights, versions and input handling."""
    from .models import describe_weights

    return {"run_id": run_id, "status": "complete", "started": started,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "dataset_sha256": data.dataset.sha256(),
            "data": str(cfg.data), "model": cfg.model, "versions": _versions(),
            "weights": describe_weights(cfg.model, cfg.weights),
            "input": {"resize_mode": data.input_spec.resize_mode, "interpolation": data.input_spec.interpolation,
                      "resize_reason": data.resize_reason}}


def _complete_run_folder(tmp: Path, out: Path, run_info: dict) -> None:
    """Write ``run.json`` last and rename the incomplete folder to ``out`` (replacing it: only with --overwrite)."""
    if out.exists():
        shutil.rmtree(out)  # only reached with --overwrite (checked in _check_out)
    (tmp / "run.json").write_text(json.dumps(run_info, indent=1) + "\n")
    tmp.rename(out)


def _write_plots(folder: Path, metrics: dict, history, classes, task: str) -> None:
    from .plots import plot_confusion, plot_curves

    plots = folder / "plots"
    plots.mkdir(exist_ok=True)
    plot_curves(history, plots / "curves.png")
    if task != "single_label":
        return
    test = metrics.get("test") or metrics.get("val") or {}
    for prec in ("fp32", "int8"):
        if prec in test:
            acc = 100 * test[prec]["accuracy"]
            plot_confusion(test[prec]["confusion_matrix"], classes, plots / f"confusion_{prec}.png",
                           title=f"{prec} on the {'test' if 'test' in metrics else 'val'} split ({acc:.2f}%)")


# ------------------------------------------------------------------------------------------------- eval


def evaluate(run_dir, data_dir, *, device: str = "auto", batch_size: int = 256, threshold: float | None = None,
             workers: int = 0, progress: bool = True) -> dict:
    """fp32 and int8 metrics of a run's models on a labelled folder: ``{"data": {"fp32": ..., "int8": ...}}``.

    The folder's class names must be among the checkpoint's labels (same names; order does not matter).

    >>> evaluate("runs/digits", "data/digits_more")["data"]["int8"]["accuracy"]   # doctest: +SKIP
    """
    import torch

    from ..data.dataset import load_dataset
    from .checkpoint import load_run
    from .loop import Normalizer, predict
    from .metrics import compute_metrics
    from .tensors import decode_images, targets_for

    run = load_run(run_dir)
    if not Path(data_dir).exists():
        raise DataError(f"dataset not found: {data_dir}", hint="pass a labelled folder: --data DIR")
    multi = run.task == "multi_label"
    ds = load_dataset(data_dir, multi_label=multi)
    unknown = [c for c in ds.classes if c not in run.labels]
    if unknown:
        raise DataError(
            f"{data_dir} has classes the model was not trained on: {unknown} (model labels: {list(run.labels)})",
            hint="evaluate on folders named after the run's labels",
        )
    remap = [run.labels.index(c) for c in ds.classes]
    labels = [tuple(remap[i] for i in s.labels) for s in ds.samples]
    spec = run.input_spec
    images = decode_images([s.path for s in ds.samples], spec, workers=workers, progress=progress)
    targets = targets_for(labels, len(run.labels), multi).numpy()
    dev = select_device(device)
    prep = Normalizer(spec.mean, spec.std, dev)
    thr = 0.5 if threshold is None else threshold
    out = {"fp32": compute_metrics(predict(run.model.to(dev), images, prep, batch_size=batch_size), targets, run.labels,
                                   task=run.task, threshold=thr)}
    if run.quantized is not None:
        cpu = Normalizer(spec.mean, spec.std, torch.device("cpu"))
        out["int8"] = compute_metrics(predict(run.quantized, images, cpu, batch_size=batch_size), targets, run.labels,
                                      task=run.task, threshold=thr)
        out["int8"]["method"] = run.quant_method
    return {"data": out, "source": str(data_dir), "run": str(run_dir), "task": run.task,
            "warnings": _eval_warnings(run_dir, out["fp32"]["accuracy"], targets, run.task)}


def _eval_warnings(run_dir, accuracy: float, targets, task: str) -> list[dict]:
    """The run's own training warnings (``metrics.json``), then whether the model is at chance on this data."""
    from .monitor import TrainingMonitor, chance_rate

    recorded = []
    mpath = Path(run_dir) / "metrics.json"
    if mpath.is_file():
        recorded = [dict(w, source="training") for w in json.loads(mpath.read_text()).get("warnings", [])]
    mon = TrainingMonitor(chance_rate(targets, task), emit=lambda w: None)
    mon.final(accuracy, split="data")
    return recorded + [dict(w, source="eval") for w in mon.to_list()]
