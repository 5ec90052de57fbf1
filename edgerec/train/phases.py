"""The training phases: fp32 transfer learning (head, then all layers), QAT fine-tuning, PTQ calibration.

``edgerec.train.runner.train`` calls them in order; each takes the decoded tensors and returns a model.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .config import TrainConfig
from .distributed import DistInfo, all_reduce_mean, shard_indices

if TYPE_CHECKING:
    from .tensors import Prepared

log = logging.getLogger("edgerec.train")

__all__ = ["FitResult", "fit", "qat_finetune", "ptq_calibrate", "example_input"]

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
class FitResult:
    model: object
    history: list[dict]
    best_epoch: int
    best_val: dict


def fit(cfg: TrainConfig, data: Prepared, train_t, val_t, *, device, info: DistInfo, resume_state=None,
         quiet: bool = False, desc: str = "train", monitor=None) -> FitResult:
    """fp32 training: head phase (pretrained weights), then full fine-tuning; best val checkpoint kept.

    BatchNorm statistics are recomputed on training images (``edgerec.train.bn``; through the training
    augmentation unless ``bn_recal_augment`` is off) before every evaluation of the fine-tuning phase, so the evaluated and saved model is right whatever the step count;
    before the head phase they are recomputed once (the frozen backbone then trains the head with the
    statistics of this data set rather than ImageNet's). ``monitor`` (a ``TrainingMonitor``) sees each epoch.
    """
    import torch
    from torch.optim.lr_scheduler import LambdaLR
    from tqdm.auto import tqdm

    from .augment import BatchAugment
    from .bn import recalibrate_bn
    from .loop import Normalizer, StepRunner, cosine_with_warmup, make_loss, predict, to_device_if_fits
    from .metrics import compute_metrics
    from .models import backbone_parameters, head_parameters

    n_cls = len(data.classes)
    # same initialisation and draws whether or not cross-validation folds ran before this fit
    torch.manual_seed(cfg.seed)
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
    # the same images for every recalibration (and on every rank): statistics differ only as the weights do
    recal_gen = torch.Generator().manual_seed(cfg.seed + 1)
    recal_idx = torch.randperm(n_train, generator=recal_gen)[:cfg.bn_recal_images].sort().values
    recal_images = train_t.images[recal_idx] if cfg.bn_recal_images > 0 else train_t.images[:0]

    def recalibrate():
        # through the training augmentation (bn_recal_augment): the statistics the layers after each BatchNorm
        # learned to expect (its draws come from training's seeded generator: runs stay reproducible)
        recal_prep = (lambda x: prep(x, train=True)) if cfg.bn_recal_augment else prep
        recalibrate_bn(model, recal_images, recal_prep, max_images=cfg.bn_recal_images, batch_size=cfg.batch_size)

    epoch = 0
    stop = False
    for phase, n_epochs in phases:
        if n_epochs <= 0 or stop:
            continue
        if phase == "head":
            recalibrate()
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
            if phase != "head":  # the head phase trains with the backbone's (frozen) statistics: keep them
                recalibrate()
            model.eval()
            logits = predict(model, val_t.images, prep, amp=cfg.amp)
            val_loss = float(val_loss_fn(torch.from_numpy(logits), val_t.targets).item()) if len(val_t) else float("nan")
            vm = compute_metrics(logits, val_t.targets.numpy(), data.classes, task=data.task, threshold=cfg.threshold)
            rec = {"epoch": epoch + 1, "phase": phase, "train_loss": train_loss, "val_loss": val_loss,
                   "val_accuracy": vm["accuracy"], "lr": opt.param_groups[0]["lr"], "seconds": dt,
                   "images_per_s": res.images * info.world_size / max(dt, 1e-9)}
            history.append(rec)
            if show:
                log.info("%s epoch %3d %-4s  loss %.4f  val loss %.4f  val acc %.2f%%  %.0f img/s", desc, epoch + 1, phase,
                         train_loss, val_loss, 100 * vm["accuracy"], rec["images_per_s"])
            if monitor is not None and monitor.epoch(rec):
                stop = True
                break
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
                    log.info("early stop: no val improvement for %d epochs (best epoch %d)", cfg.patience, best_epoch)
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return FitResult(model, history, best_epoch, best_val)


# ------------------------------------------------------------------------------------------------- int8


def qat_finetune(cfg: TrainConfig, data: Prepared, model, *, device, history: list[dict], monitor=None,
                 fp32_val: float | None = None):
    """PT2E quantization-aware fine-tuning; BN statistics then observers frozen late in the phase.

    ``model`` comes from ``fit`` with its BatchNorm statistics recomputed on clean images, which is where the
    QAT graph's statistics start; they are never recomputed inside the graph. ``monitor`` sees each QAT
    epoch and compares the last fake-quant validation accuracy with ``fp32_val``.

    Returns (converted int8 graph, example input, {"steps", "bn_frozen_at_step", "observers_frozen_at_step"}).
    """
    import torch
    from torch.optim.lr_scheduler import LambdaLR
    from tqdm.auto import tqdm

    from . import qat as Q
    from .augment import BatchAugment
    from .loop import DistillLoss, Normalizer, cosine_with_warmup, make_loss, predict, StepRunner
    from .metrics import compute_metrics

    qc = cfg.qat_cfg
    # PT2E graphs are traced and fine-tuned on the CPU here: the converted graph is what export reads
    qdev = torch.device("cpu") if device.type != "cuda" else device
    fp = copy.deepcopy(model).to(qdev).eval()
    example = example_input(data, qdev)
    gm = Q.prepare(fp, example, qat=True, kind=cfg.quantizer)
    Q.move_to_train(gm)
    gen = torch.Generator(device=qdev).manual_seed(cfg.seed * 104729)
    prep = Normalizer(data.input_spec.mean, data.input_spec.std, qdev, augment=BatchAugment(cfg.augment, generator=gen))
    n_train = len(data.train)
    info1 = DistInfo()
    spe = _steps_per_epoch(n_train, cfg.batch_size, info1, qc.max_steps)
    epochs = qat_epochs(qc, spe)
    total = max(1, epochs * spe)
    params = [p for p in gm.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=qc.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    sched = LambdaLR(opt, cosine_with_warmup(total, 0))
    loss_fn = make_loss(data.task, label_smoothing=cfg.label_smoothing)
    teacher = None
    if qc.distill > 0:  # the float model teaches its int8 copy its own answers, on the same augmented batch
        loss_fn = DistillLoss(loss_fn, data.task, share=qc.distill, temperature=qc.distill_temperature)
        teacher = copy.deepcopy(model).to(qdev).eval().requires_grad_(False)
    runner = StepRunner(gm, opt, sched, loss_fn, prep, teacher=teacher)
    bn_at, obs_at = int(qc.freeze_bn_epoch * total), int(qc.freeze_observers_epoch * total)
    state = {"step": 0, "bn": False, "obs": False}
    schedule = {"steps": total, "bn_frozen_at_step": None, "observers_frozen_at_step": None}

    def before_step(_):
        s = state["step"]
        if not state["bn"] and s >= bn_at:
            Q.freeze(gm, observers=False, bn=True)
            state["bn"] = True
            schedule["bn_frozen_at_step"] = s
        if not state["obs"] and s >= obs_at:
            Q.freeze(gm, observers=True, bn=False)
            state["obs"] = True
            schedule["observers_frozen_at_step"] = s
        state["step"] += 1

    show = cfg.progress
    val_loss_fn = make_loss(data.task)
    for ep in range(epochs):
        Q.move_to_train(gm)
        order = shard_indices(n_train, epoch=10_000 + ep, seed=cfg.seed, info=info1)
        t0 = time.perf_counter()
        bar = tqdm(total=min(n_train, spe * cfg.batch_size), desc=f"qat {ep + 1}/{epochs}", unit="img", leave=False, disable=not show)
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
            log.info("qat epoch %3d  loss %.4f  val loss %.4f  val acc (fake-quant) %.2f%%", ep + 1, res.loss, val_loss,
                     100 * vm["accuracy"])
        if monitor is not None and monitor.epoch(history[-1]):
            break
    if monitor is not None and fp32_val is not None and epochs > 0 and history and history[-1]["phase"] == "qat":
        monitor.qat(fp32_val, history[-1]["val_accuracy"], epoch=history[-1]["epoch"], model=cfg.model)
    Q.move_to_eval(gm)
    gm = gm.to("cpu")
    schedule["steps"] = state["step"]
    return Q.convert(gm), example.cpu(), schedule


def qat_epochs(qc, steps_per_epoch: int) -> int:
    """``qc.epochs``, or more on a small set until the phase has ``qc.min_steps`` optimizer steps (not when
    ``qc.max_steps`` caps the epochs: a quick look stays quick)."""
    if qc.epochs <= 0 or qc.min_steps <= 0 or qc.max_steps:
        return max(0, qc.epochs)
    return max(qc.epochs, math.ceil(qc.min_steps / max(1, steps_per_epoch)))


def ptq_calibrate(cfg: TrainConfig, data: Prepared, model):
    import torch

    from . import qat as Q
    from .loop import Normalizer

    fp = copy.deepcopy(model).cpu().eval()
    example = example_input(data, torch.device("cpu"))
    gm = Q.prepare(fp, example, qat=False, kind=cfg.quantizer)
    prep = Normalizer(data.input_spec.mean, data.input_spec.std, torch.device("cpu"))
    g = torch.Generator().manual_seed(cfg.seed)
    n = min(cfg.ptq_cfg.calib_images, len(data.train))
    idx = torch.randperm(len(data.train), generator=g)[:n]
    batches = [prep(data.train.images[idx[s : s + 32]]) for s in range(0, n, 32)]
    Q.calibrate(gm, batches)
    return Q.convert(gm), example


def example_input(data: Prepared, device):
    from .loop import Normalizer

    prep = Normalizer(data.input_spec.mean, data.input_spec.std, device)
    return prep(data.train.images[:1])
