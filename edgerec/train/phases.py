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


class _Best:
    """The best validation epoch so far (accuracy, then lower loss) and a CPU copy of its weights."""

    def __init__(self):
        self.key, self.state, self.epoch, self.val, self.bad_epochs = (-1.0, -math.inf), None, 0, {}, 0

    def update(self, model, epoch: int, accuracy: float, loss: float) -> None:
        if (accuracy, -loss) > self.key:
            self.key = (accuracy, -loss)
            self.state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
            self.epoch, self.val, self.bad_epochs = epoch, {"accuracy": accuracy, "loss": loss}, 0
        else:
            self.bad_epochs += 1


def _fit_model(cfg: TrainConfig, n_cls: int, resume_state, device, info: DistInfo):
    """(model, what the training steps call: the model or its DDP wrapper), on ``device``, seeded."""
    import torch

    # same initialisation and draws whether or not cross-validation folds ran before this fit
    torch.manual_seed(cfg.seed)
    model = _build(cfg, n_cls, resume_state).to(device)
    if cfg.channels_last and device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    if not info.enabled:
        return model, model
    from torch.nn.parallel import DistributedDataParallel as DDP

    return model, DDP(model, device_ids=[device.index] if device.type == "cuda" else None)


def _recalibrator(cfg: TrainConfig, model, train_t, prep):
    """``recalibrate()``: BatchNorm statistics recomputed on the same training images every time (and on every
    rank), so statistics differ only as the weights do."""
    import torch

    from .bn import recalibrate_bn

    recal_gen = torch.Generator().manual_seed(cfg.seed + 1)
    recal_idx = torch.randperm(len(train_t), generator=recal_gen)[:cfg.bn_recal_images].sort().values
    recal_images = train_t.images[recal_idx] if cfg.bn_recal_images > 0 else train_t.images[:0]

    def recalibrate():
        # through the training augmentation (bn_recal_augment): the statistics the layers after each BatchNorm
        # learned to expect (its draws come from training's seeded generator: runs stay reproducible)
        recal_prep = (lambda x: prep(x, train=True)) if cfg.bn_recal_augment else prep
        recalibrate_bn(model, recal_images, recal_prep, max_images=cfg.bn_recal_images, batch_size=cfg.batch_size)

    return recalibrate


def _phase_params(cfg: TrainConfig, model, phase: str):
    """(parameters, learning rate) of a phase: the head alone over a frozen backbone, or everything."""
    from .models import backbone_parameters, head_parameters

    if phase == "head":
        for p in backbone_parameters(model, cfg.model):
            p.requires_grad_(False)
        return head_parameters(model, cfg.model), cfg.lr * cfg.head_lr_mult
    for p in model.parameters():
        p.requires_grad_(True)
    return list(model.parameters()), cfg.lr


def _train_mode(model, phase: str) -> None:
    import torch

    model.train()
    if phase == "head":  # the frozen backbone keeps its BatchNorm statistics too
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.eval()


def _validate(cfg: TrainConfig, data: Prepared, forward, val_t, prep, loss_fn, *, amp: bool) -> tuple[float, dict]:
    """(val loss, metrics) of ``forward`` (already in eval mode) on ``val_t``."""
    import torch

    from .loop import predict
    from .metrics import compute_metrics

    logits = predict(forward, val_t.images, prep, amp=amp)
    val_loss = float(loss_fn(torch.from_numpy(logits), val_t.targets).item()) if len(val_t) else float("nan")
    return val_loss, compute_metrics(logits, val_t.targets.numpy(), data.classes, task=data.task, threshold=cfg.threshold)


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
    from .loop import Normalizer, StepRunner, cosine_with_warmup, make_loss, to_device_if_fits

    n_cls = len(data.classes)
    model, fwd = _fit_model(cfg, n_cls, resume_state, device, info)
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
    head_epochs = cfg.head_epochs if cfg.weights != "none" and resume_state is None else 0
    history: list[dict] = []
    best = _Best()
    show = cfg.progress and info.main and not quiet
    recalibrate = _recalibrator(cfg, model, train_t, prep)
    epoch = 0
    for phase, n_epochs in (("head", head_epochs), ("fine", cfg.epochs)):
        if n_epochs <= 0:
            continue
        if phase == "head":
            recalibrate()
        params, lr = _phase_params(cfg, model, phase)
        opt = _optimizer(model, cfg, params, lr)
        sched = LambdaLR(opt, cosine_with_warmup(n_epochs * spe, round(cfg.warmup_epochs * spe)))
        runner = StepRunner(fwd, opt, sched, loss_fn, prep, amp=cfg.amp)
        for _ in range(n_epochs):
            _train_mode(model, phase)
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
            val_loss, vm = _validate(cfg, data, model, val_t, prep, val_loss_fn, amp=cfg.amp)
            rec = {"epoch": epoch + 1, "phase": phase, "train_loss": train_loss, "val_loss": val_loss,
                   "val_accuracy": vm["accuracy"], "lr": opt.param_groups[0]["lr"], "seconds": dt,
                   "images_per_s": res.images * info.world_size / max(dt, 1e-9)}
            history.append(rec)
            if show:
                log.info("%s epoch %3d %-4s  loss %.4f  val loss %.4f  val acc %.2f%%  %.0f img/s", desc, epoch + 1, phase,
                         train_loss, val_loss, 100 * vm["accuracy"], rec["images_per_s"])
            if monitor is not None and monitor.epoch(rec):
                return _fit_result(model, history, best)
            best.update(model, epoch + 1, vm["accuracy"], val_loss)
            epoch += 1
            if phase == "fine" and cfg.patience and best.bad_epochs >= cfg.patience:
                if show:
                    log.info("early stop: no val improvement for %d epochs (best epoch %d)", cfg.patience, best.epoch)
                break
    return _fit_result(model, history, best)


def _fit_result(model, history: list[dict], best: _Best) -> FitResult:
    if best.state is not None:
        model.load_state_dict(best.state)
    model.eval()
    return FitResult(model, history, best.epoch, best.val)


# ------------------------------------------------------------------------------------------------- int8


class _FreezeSchedule:
    """``before_step`` of the QAT phase: BatchNorm statistics, then observers, frozen at their step."""

    def __init__(self, gm, qc, total: int):
        self.gm, self.step = gm, 0
        self.bn_at, self.obs_at = int(qc.freeze_bn_epoch * total), int(qc.freeze_observers_epoch * total)
        self.record = {"steps": total, "bn_frozen_at_step": None, "observers_frozen_at_step": None}

    def __call__(self, _):
        from . import qat as Q

        if self.record["bn_frozen_at_step"] is None and self.step >= self.bn_at:
            Q.freeze(self.gm, observers=False, bn=True)
            self.record["bn_frozen_at_step"] = self.step
        if self.record["observers_frozen_at_step"] is None and self.step >= self.obs_at:
            Q.freeze(self.gm, observers=True, bn=False)
            self.record["observers_frozen_at_step"] = self.step
        self.step += 1


def _qat_loss(cfg: TrainConfig, data: Prepared, model, device):
    """(loss, teacher): the label loss, or with ``qat_cfg.distill`` that mixed with distillation from a frozen
    copy of the float model (its answers on the same augmented batch)."""
    from .loop import DistillLoss, make_loss

    qc = cfg.qat_cfg
    loss_fn = make_loss(data.task, label_smoothing=cfg.label_smoothing)
    if qc.distill <= 0:
        return loss_fn, None
    teacher = copy.deepcopy(model).to(device).eval().requires_grad_(False)
    return DistillLoss(loss_fn, data.task, share=qc.distill, temperature=qc.distill_temperature), teacher


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
    from .loop import Normalizer, StepRunner, cosine_with_warmup, make_loss

    qc = cfg.qat_cfg
    # PT2E graphs are traced and fine-tuned on the CPU here: the converted graph is what export reads
    qdev = torch.device("cpu") if device.type != "cuda" else device
    example = example_input(data, qdev)
    gm = Q.prepare(copy.deepcopy(model).to(qdev).eval(), example, qat=True, kind=cfg.quantizer)
    Q.move_to_train(gm)
    gen = torch.Generator(device=qdev).manual_seed(cfg.seed * 104729)
    prep = Normalizer(data.input_spec.mean, data.input_spec.std, qdev, augment=BatchAugment(cfg.augment, generator=gen))
    n_train, info1 = len(data.train), DistInfo()
    spe = _steps_per_epoch(n_train, cfg.batch_size, info1, qc.max_steps)
    epochs = qat_epochs(qc, spe)
    total = max(1, epochs * spe)
    opt = torch.optim.SGD([p for p in gm.parameters() if p.requires_grad], lr=qc.lr, momentum=cfg.momentum,
                          weight_decay=cfg.weight_decay)
    loss_fn, teacher = _qat_loss(cfg, data, model, qdev)
    runner = StepRunner(gm, opt, LambdaLR(opt, cosine_with_warmup(total, 0)), loss_fn, prep, teacher=teacher)
    freeze = _FreezeSchedule(gm, qc, total)
    val_loss_fn = make_loss(data.task)
    for ep in range(epochs):
        Q.move_to_train(gm)
        order = shard_indices(n_train, epoch=10_000 + ep, seed=cfg.seed, info=info1)
        t0 = time.perf_counter()
        bar = tqdm(total=min(n_train, spe * cfg.batch_size), desc=f"qat {ep + 1}/{epochs}", unit="img", leave=False,
                   disable=not cfg.progress)
        res = runner.run_epoch(data.train.images, data.train.targets, order, cfg.batch_size, max_steps=qc.max_steps,
                               bar=bar, before_step=freeze)
        bar.close()
        Q.move_to_eval(gm)
        val_loss, vm = _validate(cfg, data, gm, data.val, prep, val_loss_fn, amp=False)
        dt = time.perf_counter() - t0
        history.append({"epoch": len(history) + 1, "phase": "qat", "train_loss": res.loss, "val_loss": val_loss,
                        "val_accuracy": vm["accuracy"], "lr": opt.param_groups[0]["lr"], "seconds": dt,
                        "images_per_s": res.images / max(dt, 1e-9)})
        if cfg.progress:
            log.info("qat epoch %3d  loss %.4f  val loss %.4f  val acc (fake-quant) %.2f%%", ep + 1, res.loss, val_loss,
                     100 * vm["accuracy"])
        if monitor is not None and monitor.epoch(history[-1]):
            break
    if monitor is not None and fp32_val is not None and epochs > 0 and history and history[-1]["phase"] == "qat":
        monitor.qat(fp32_val, history[-1]["val_accuracy"], epoch=history[-1]["epoch"], model=cfg.model)
    Q.move_to_eval(gm)
    freeze.record["steps"] = freeze.step
    return Q.convert(gm.to("cpu")), example.cpu(), freeze.record


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
