"""``train(config) -> Run``: data, fp32 transfer learning, QAT/PTQ, metrics, plots, the run folder.

>>> from edgerec.train import train, load_config
>>> run = train(load_config({"data": "data/digits", "out": "runs/digits"}, config_file="train/digits.yaml"))  # doctest: +SKIP
>>> run.metrics["test"]["fp32"]["accuracy"], run.metrics["test"]["int8"]["accuracy"]                            # doctest: +SKIP
(0.989, 0.983)
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import platform
import shutil
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..bundle import InputSpec
from ..errors import ConfigError, DataError, EdgerecError, ModelError
from .config import TrainConfig, dump_config
from .distributed import DistInfo, all_reduce_mean, dist_info, init_distributed, select_device, shard_indices

__all__ = ["Run", "train", "evaluate", "Prepared", "prepare_data"]


@dataclass
class Run:
    """A finished run folder and what it measured."""

    dir: Path
    metrics: dict
    config: TrainConfig
    history: list[dict] = field(default_factory=list)

    def __repr__(self) -> str:
        test = self.metrics.get("test", {})
        figs = ", ".join(f"{p} {100 * m['accuracy']:.2f}%" for p, m in test.items())
        return f"Run({str(self.dir)!r}, test: {figs or '-'})"


@dataclass
class Prepared:
    """Decoded tensors of a dataset split, ready for training."""

    dataset: object
    split: object
    classes: tuple[str, ...]
    task: str
    train: object
    val: object
    test: object
    input_spec: InputSpec


def _versions() -> dict:
    import torch
    import torchvision

    out = {"python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__}
    try:
        import torchao

        out["torchao"] = torchao.__version__
    except ImportError:
        pass
    from .. import __version__

    out["edgerec"] = __version__
    return out


def _input_spec(cfg: TrainConfig) -> InputSpec:
    return InputSpec(
        height=cfg.img_size, width=cfg.img_size, mean=tuple(cfg.mean), std=tuple(cfg.std), color_order="RGB",
        pixel_scale=255.0, resize_mode=cfg.resize_mode, interpolation="bilinear",
    )


def prepare_data(cfg: TrainConfig, *, progress: bool = True) -> Prepared:
    """Load, split and decode the dataset once."""
    from ..data.dataset import load_dataset
    from ..data.split import stratified_split
    from .tensors import ImageTensors, decode_images, targets_for

    if cfg.data is None:
        raise ConfigError("no dataset given", hint="edgerec train DATA --out RUN (or data: in the YAML)")
    if not Path(cfg.data).exists():
        raise DataError(f"dataset not found: {cfg.data}", hint="check the path, or make one: edgerec data digits OUT")
    ds = load_dataset(cfg.data, multi_label=cfg.multi_label)
    split = stratified_split(ds, cfg.split, seed=cfg.seed)
    for w in getattr(split, "warnings", []):
        print(f"warning: {w}", file=sys.stderr)
    if not split.train:
        raise DataError(f"{cfg.data}: the split left no training images", hint="add images or change --split")
    if not split.val:
        raise DataError(f"{cfg.data}: the split left no validation images", hint="add images or raise the val ratio")
    task = "multi_label" if cfg.multi_label else "single_label"
    order = split.train + split.val + split.test
    paths = [ds.samples[i].path for i in order]
    images = decode_images(paths, cfg.img_size, cfg.resize_mode, workers=cfg.workers, progress=cfg.progress and progress)
    targets = targets_for([ds.samples[i].labels for i in order], len(ds.classes), cfg.multi_label)
    allt = ImageTensors(images, targets, paths)
    a, b = len(split.train), len(split.train) + len(split.val)
    return Prepared(
        dataset=ds, split=split, classes=tuple(ds.classes), task=task,
        train=allt.subset(range(a)), val=allt.subset(range(a, b)), test=allt.subset(range(b, len(order))),
        input_spec=_input_spec(cfg),
    )


# ------------------------------------------------------------------------------------------------- fp32


def _build(cfg: TrainConfig, num_classes: int, resume_state=None):
    from .loop import set_bn_momentum
    from .models import build_model

    weights = "none" if resume_state is not None else cfg.weights
    model = build_model(cfg.model, num_classes, weights=weights)
    if resume_state is not None:
        model.load_state_dict(resume_state)
    if cfg.bn_momentum is not None:
        set_bn_momentum(model, cfg.bn_momentum)
    if cfg.dropout is not None:
        import torch

        for m in model.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = cfg.dropout
    return model


def _class_balance(cfg: TrainConfig, targets, num_classes: int):
    """(loss class weights, loss pos_weight, per-sample sampler weights) for ``cfg.balance``."""
    import torch

    if cfg.balance == "none":
        return None, None, None
    if cfg.multi_label:
        pos = targets.sum(0).clamp(min=1)
        neg = (len(targets) - targets.sum(0)).clamp(min=1)
        if cfg.balance == "weighted":
            return None, (neg / pos).float(), None
        # sampler: weight an image by its rarest label
        inv = 1.0 / pos
        return None, None, (targets * inv).max(1).values.clamp(min=inv.min()).double()
    counts = torch.bincount(targets, minlength=num_classes).clamp(min=1).float()
    if cfg.balance == "weighted":
        w = counts.sum() / (num_classes * counts)
        return w, None, None
    return None, None, (1.0 / counts)[targets].double()


def _param_groups(model, cfg: TrainConfig, params):
    """No weight decay on biases and norm parameters (timm/torchvision reference practice)."""
    decay, no_decay = [], []
    wanted = {id(p) for p in params}
    for p in model.parameters():
        if id(p) not in wanted or not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _optimizer(model, cfg: TrainConfig, params, lr: float):
    import torch

    groups = _param_groups(model, cfg, params)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0)


def _steps_per_epoch(n: int, batch: int, info: DistInfo, max_steps) -> int:
    per_rank = math.ceil(n / info.world_size)
    steps = max(1, math.ceil(per_rank / batch))
    return min(steps, max_steps) if max_steps else steps


@dataclass
class _FitResult:
    model: object
    history: list[dict]
    best_epoch: int
    best_val: dict


def _fit(cfg: TrainConfig, data: Prepared, train_t, val_t, *, device, info: DistInfo, resume_state=None,
         quiet: bool = False, desc: str = "train") -> _FitResult:
    """fp32 training: head phase (pretrained weights), then full fine-tuning; best val checkpoint kept."""
    import torch
    from torch.optim.lr_scheduler import LambdaLR
    from tqdm.auto import tqdm

    from .augment import BatchAugment
    from .loop import Normalizer, StepRunner, cosine_with_warmup, make_loss, predict, to_device_if_fits
    from .metrics import compute_metrics
    from .models import backbone_parameters, head_parameters

    n_cls = len(data.classes)
    model = _build(cfg, n_cls, resume_state).to(device)
    if cfg.channels_last and device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    fwd = model
    if info.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        fwd = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    gen = torch.Generator(device=device).manual_seed(cfg.seed * 7919 + info.rank)
    prep = Normalizer(data.input_spec.mean, data.input_spec.std, device,
                      channels_last=cfg.channels_last and device.type == "cuda",
                      augment=BatchAugment(cfg.augment, generator=gen))
    class_w, pos_w, sample_w = _class_balance(cfg, train_t.targets, n_cls)
    loss_fn = make_loss(data.task, label_smoothing=cfg.label_smoothing,
                        class_weight=None if class_w is None else class_w.to(device),
                        pos_weight=None if pos_w is None else pos_w.to(device))
    val_loss_fn = make_loss(data.task)
    n_train = len(train_t)
    train_images = to_device_if_fits(train_t.images, device)
    train_targets = train_t.targets.to(train_images.device)
    spe = _steps_per_epoch(n_train, cfg.batch_size, info, cfg.max_steps)
    pretrained = cfg.weights != "none" and resume_state is None
    head_epochs = cfg.head_epochs if pretrained else 0
    phases = [("head", head_epochs), ("fine", cfg.epochs)]
    history: list[dict] = []
    best = (-1.0, math.inf)
    best_state, best_epoch, best_val = None, 0, {}
    bad_epochs = 0
    show = cfg.progress and info.main and not quiet
    epoch = 0
    for phase, n_epochs in phases:
        if n_epochs <= 0:
            continue
        if phase == "head":
            for p in backbone_parameters(model, cfg.model):
                p.requires_grad_(False)
            params, lr = head_parameters(model, cfg.model), cfg.lr * cfg.head_lr_mult
        else:
            for p in model.parameters():
                p.requires_grad_(True)
            params, lr = list(model.parameters()), cfg.lr
        opt = _optimizer(model, cfg, params, lr)
        sched = LambdaLR(opt, cosine_with_warmup(n_epochs * spe, round(cfg.warmup_epochs * spe)))
        runner = StepRunner(fwd, opt, sched, loss_fn, prep, amp=cfg.amp)
        for _ in range(n_epochs):
            model.train()
            if phase == "head":
                # frozen backbone keeps its BatchNorm statistics too
                for m in model.modules():
                    if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                        m.eval()
            order = shard_indices(n_train, epoch=epoch, seed=cfg.seed, info=info, weights=sample_w)
            t0 = time.perf_counter()
            bar = tqdm(total=min(len(order), spe * cfg.batch_size), desc=f"{desc} {epoch + 1}/{head_epochs + cfg.epochs}",
                       unit="img", leave=False, disable=not show)
            res = runner.run_epoch(train_images, train_targets, order.to(train_images.device), cfg.batch_size,
                                   max_steps=cfg.max_steps, bar=bar)
            bar.close()
            train_loss = all_reduce_mean(res.loss, info, device)
            dt = time.perf_counter() - t0
            model.eval()
            logits = predict(model, val_t.images, prep, amp=cfg.amp)
            val_loss = float(val_loss_fn(torch.from_numpy(logits), val_t.targets).item()) if len(val_t) else float("nan")
            vm = compute_metrics(logits, val_t.targets.numpy(), data.classes, task=data.task, threshold=cfg.threshold)
            rec = {"epoch": epoch + 1, "phase": phase, "train_loss": train_loss, "val_loss": val_loss,
                   "val_accuracy": vm["accuracy"], "lr": opt.param_groups[0]["lr"], "seconds": dt,
                   "images_per_s": res.images * info.world_size / max(dt, 1e-9)}
            history.append(rec)
            if show:
                tqdm.write(f"{desc} epoch {epoch + 1:3d} {phase:4s}  loss {train_loss:.4f}  val loss {val_loss:.4f}  "
                           f"val acc {100 * vm['accuracy']:.2f}%  {rec['images_per_s']:.0f} img/s")
            key = (vm["accuracy"], -val_loss)
            if key > (best[0], -best[1]):
                best = (vm["accuracy"], val_loss)
                best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
                best_epoch, best_val = epoch + 1, {"accuracy": vm["accuracy"], "loss": val_loss}
                bad_epochs = 0
            else:
                bad_epochs += 1
            epoch += 1
            if phase == "fine" and cfg.patience and bad_epochs >= cfg.patience:
                if show:
                    tqdm.write(f"early stop: no val improvement for {cfg.patience} epochs (best epoch {best_epoch})")
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return _FitResult(model, history, best_epoch, best_val)


# ------------------------------------------------------------------------------------------------- int8


def _qat(cfg: TrainConfig, data: Prepared, model, *, device, history: list[dict]):
    """PT2E quantization-aware fine-tuning; BN statistics then observers frozen late in the phase."""
    import torch
    from torch.optim.lr_scheduler import LambdaLR
    from tqdm.auto import tqdm

    from . import qat as Q
    from .augment import BatchAugment
    from .loop import Normalizer, cosine_with_warmup, make_loss, predict, StepRunner
    from .metrics import compute_metrics

    qc = cfg.qat_cfg
    # PT2E graphs are traced and fine-tuned on the CPU here: the converted graph is what export reads
    qdev = torch.device("cpu") if device.type != "cuda" else device
    fp = copy.deepcopy(model).to(qdev).eval()
    example = _example(data, qdev)
    gm = Q.prepare(fp, example, qat=True, kind=cfg.quantizer)
    Q.move_to_train(gm)
    gen = torch.Generator(device=qdev).manual_seed(cfg.seed * 104729)
    prep = Normalizer(data.input_spec.mean, data.input_spec.std, qdev, augment=BatchAugment(cfg.augment, generator=gen))
    n_train = len(data.train)
    info1 = DistInfo()
    spe = _steps_per_epoch(n_train, cfg.batch_size, info1, qc.max_steps)
    total = max(1, qc.epochs * spe)
    params = [p for p in gm.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=qc.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    sched = LambdaLR(opt, cosine_with_warmup(total, 0))
    runner = StepRunner(gm, opt, sched, make_loss(data.task, label_smoothing=cfg.label_smoothing), prep)
    bn_at, obs_at = int(qc.freeze_bn_epoch * total), int(qc.freeze_observers_epoch * total)
    state = {"step": 0, "bn": False, "obs": False}

    def before_step(_):
        s = state["step"]
        if not state["bn"] and s >= bn_at:
            Q.freeze(gm, observers=False, bn=True)
            state["bn"] = True
        if not state["obs"] and s >= obs_at:
            Q.freeze(gm, observers=True, bn=False)
            state["obs"] = True
        state["step"] += 1

    show = cfg.progress
    val_loss_fn = make_loss(data.task)
    for ep in range(qc.epochs):
        Q.move_to_train(gm)
        order = shard_indices(n_train, epoch=10_000 + ep, seed=cfg.seed, info=info1)
        t0 = time.perf_counter()
        bar = tqdm(total=min(n_train, spe * cfg.batch_size), desc=f"qat {ep + 1}/{qc.epochs}", unit="img", leave=False, disable=not show)
        res = runner.run_epoch(data.train.images, data.train.targets, order, cfg.batch_size, max_steps=qc.max_steps,
                               bar=bar, before_step=before_step)
        bar.close()
        Q.move_to_eval(gm)
        logits = predict(gm, data.val.images, prep)
        vm = compute_metrics(logits, data.val.targets.numpy(), data.classes, task=data.task, threshold=cfg.threshold)
        val_loss = float(val_loss_fn(torch.from_numpy(logits), data.val.targets).item())
        dt = time.perf_counter() - t0
        history.append({"epoch": len(history) + 1, "phase": "qat", "train_loss": res.loss, "val_loss": val_loss,
                        "val_accuracy": vm["accuracy"], "lr": opt.param_groups[0]["lr"], "seconds": dt,
                        "images_per_s": res.images / max(dt, 1e-9)})
        if show:
            tqdm.write(f"qat epoch {ep + 1:3d}  loss {res.loss:.4f}  val loss {val_loss:.4f}  "
                       f"val acc (fake-quant) {100 * vm['accuracy']:.2f}%")
    Q.move_to_eval(gm)
    gm = gm.to("cpu")
    return Q.convert(gm), example.cpu()


def _ptq(cfg: TrainConfig, data: Prepared, model):
    import torch

    from . import qat as Q
    from .loop import Normalizer

    fp = copy.deepcopy(model).cpu().eval()
    example = _example(data, torch.device("cpu"))
    gm = Q.prepare(fp, example, qat=False, kind=cfg.quantizer)
    prep = Normalizer(data.input_spec.mean, data.input_spec.std, torch.device("cpu"))
    g = torch.Generator().manual_seed(cfg.seed)
    n = min(cfg.ptq_cfg.calib_images, len(data.train))
    idx = torch.randperm(len(data.train), generator=g)[:n]
    batches = [prep(data.train.images[idx[s : s + 32]]) for s in range(0, n, 32)]
    Q.calibrate(gm, batches)
    return Q.convert(gm), example


def _example(data: Prepared, device):
    from .loop import Normalizer

    prep = Normalizer(data.input_spec.mean, data.input_spec.std, device)
    return prep(data.train.images[:1])


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
    if cfg.resume is None:
        return None
    from .checkpoint import load_checkpoint

    model, meta = load_checkpoint(Path(cfg.resume) / "best.pt")
    if tuple(meta["labels"]) != tuple(classes):
        raise DataError(
            f"--resume {cfg.resume} was trained on labels {list(meta['labels'])} but {cfg.data} has {list(classes)}",
            hint="resume only on data with the same class folders, or train from scratch",
        )
    if meta["model"] != cfg.model:
        raise ModelError(f"--resume {cfg.resume} holds a {meta['model']}, not a {cfg.model}",
                         hint=f"pass --model {meta['model']}")
    return model.state_dict()


def _evaluate_all(cfg, data: Prepared, model, quantized, ptq_graph, *, device) -> dict:
    import torch

    from .loop import Normalizer, predict
    from .metrics import compute_metrics

    metrics: dict = {}
    prep = Normalizer(data.input_spec.mean, data.input_spec.std, device)
    cpu_prep = Normalizer(data.input_spec.mean, data.input_spec.std, torch.device("cpu"))
    for split_name, t in (("val", data.val), ("test", data.test)):
        if len(t) == 0:
            continue
        y = t.targets.numpy()
        m = {"fp32": compute_metrics(predict(model, t.images, prep), y, data.classes, task=data.task, threshold=cfg.threshold)}
        if quantized is not None:
            m["int8"] = compute_metrics(predict(quantized, t.images, cpu_prep), y, data.classes, task=data.task, threshold=cfg.threshold)
        if ptq_graph is not None:
            m["int8_ptq"] = compute_metrics(predict(ptq_graph, t.images, cpu_prep), y, data.classes, task=data.task, threshold=cfg.threshold)
        metrics[split_name] = m
    return metrics


def _cross_validate(cfg: TrainConfig, data: Prepared, *, device, info) -> dict:
    """k-fold on train+val (test held out); fp32 only; returns metrics.json's ``cv`` entry."""
    from ..data.split import kfold
    from .loop import Normalizer, predict
    from .metrics import compute_metrics, cv_summary
    from .tensors import ImageTensors

    import torch

    split = data.split
    pool = split.train + split.val
    # the decoded tensors are ordered train then val: map dataset index -> position
    pos = {di: i for i, di in enumerate(pool)}
    both = ImageTensors(torch.cat([data.train.images, data.val.images]), torch.cat([data.train.targets, data.val.targets]),
                        data.train.paths + data.val.paths)
    folds = kfold(data.dataset, pool, cfg.folds, seed=cfg.seed)
    prep = Normalizer(data.input_spec.mean, data.input_spec.std, device)
    per_fold = []
    for k, (tr, va) in enumerate(folds):
        tr_t, va_t = both.subset([pos[i] for i in tr]), both.subset([pos[i] for i in va])
        if cfg.progress and info.main:
            print(f"fold {k + 1}/{cfg.folds}: {len(tr_t)} train, {len(va_t)} held out", file=sys.stderr)
        fit = _fit(cfg, data, tr_t, va_t, device=device, info=info, desc=f"fold {k + 1}")
        logits = predict(fit.model, va_t.images, prep)
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
    import torch

    info = dist_info()
    device = select_device(cfg.device, info)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    out = _check_out(cfg)
    init_distributed(info, device)
    run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
    tmp = _tmp_dir(out, run_id)
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    try:
        data = prepare_data(cfg)
        resume_state = _load_resume(cfg, data.classes)
        if info.main:
            tmp.mkdir(parents=True)
            (tmp / "config.yaml").write_text(dump_config(cfg))
            data.split.save(tmp / "split.json")
            print(f"data: {len(data.classes)} classes, {len(data.train)} train / {len(data.val)} val / "
                  f"{len(data.test)} test images at {cfg.img_size}px; device {device}"
                  + (f", {info.world_size} processes" if info.enabled else ""), file=sys.stderr)
        metrics: dict = {}
        if cfg.folds:
            metrics["cv"] = _cross_validate(cfg, data, device=device, info=info)
        fit = _fit(cfg, data, data.train, data.val, device=device, info=info, resume_state=resume_state)
        if not info.main:
            return Run(out, {}, cfg, fit.history)
        model = fit.model
        from .checkpoint import save_checkpoint

        save_checkpoint(tmp / "best.pt", model.cpu(), model_name=cfg.model, labels=data.classes, task=data.task,
                        input_spec=data.input_spec, epoch=fit.best_epoch, val=fit.best_val)
        model = model.to(device)
        history = list(fit.history)
        quantized = ptq_graph = None
        method = None
        if cfg.qat:
            quantized, example = _qat(cfg, data, model, device=device, history=history)
            method = "qat"
        if cfg.ptq:
            ptq_graph, example = _ptq(cfg, data, model)
            if quantized is None:
                quantized, ptq_graph, method = ptq_graph, None, "ptq"
        if quantized is not None:
            from . import qat as Q

            Q.save_quantized(quantized, example, tmp / "quantized.pt2")
            (tmp / "quantized.json").write_text(json.dumps(
                {"method": method, "quantizer": cfg.quantizer, "example_shape": list(example.shape)}, indent=1) + "\n")
        model.eval()
        metrics.update(_evaluate_all(cfg, data, model, quantized, ptq_graph, device=device))
        metrics["history"] = history
        metrics["best_epoch"] = fit.best_epoch
        metrics["task"] = data.task
        metrics["labels"] = list(data.classes)
        if method:
            metrics["int8_method"] = method
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
        if cfg.plots:
            _write_plots(tmp, metrics, history, data.classes, data.task)
        info_json = {"run_id": run_id, "status": "complete", "started": started,
                     "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "dataset_sha256": data.dataset.sha256(),
                     "data": str(cfg.data), "model": cfg.model, "versions": _versions()}
        if out.exists():
            shutil.rmtree(out)  # only reached with --overwrite (checked above)
        (tmp / "run.json").write_text(json.dumps(info_json, indent=1) + "\n")
        tmp.rename(out)
    except BaseException:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if info.enabled:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
    run = Run(out, metrics, cfg, history)
    if cfg.progress:
        from .metrics import summary_table

        print(summary_table(metrics, task=data.task))
        print(f"run folder: {out}")
    return run


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
    images = decode_images([s.path for s in ds.samples], spec.height, spec.resize_mode, workers=workers, progress=progress)
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
    return {"data": out, "source": str(data_dir), "run": str(run_dir), "task": run.task}
