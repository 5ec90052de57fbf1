"""A training monitor: the failures that waste a user's afternoon, said while the run goes on.

Each finding is a ``TrainingWarning`` with the likely cause and the flag that fixes it. They are logged on
``edgerec.train`` as they happen, recorded in ``metrics.json`` (``warnings``) and shown again by
``edgerec eval``. A run whose final model is no better than chance ends with ``EXIT_AT_CHANCE`` from the
CLI (its run folder is still written), unless ``--allow-chance`` is given.

>>> mon = TrainingMonitor(chance=0.1)
>>> mon.epoch({"epoch": 1, "phase": "fine", "train_loss": 2.3, "val_accuracy": 0.1})
False
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from typing import Callable, Iterable

import numpy as np

__all__ = ["EXIT_AT_CHANCE", "TrainingWarning", "TrainingMonitor", "chance_rate", "at_chance", "format_warnings"]

log = logging.getLogger("edgerec.train")

EXIT_AT_CHANCE = 3  # `edgerec train`: the run folder was written but its model is no better than chance
QAT_DROP = 0.02  # more than 2 points lost by QAT (fake-quant val accuracy vs the fp32 model) is worth a look
_DIVERGE = 1.5  # training loss this many times its best so far in the same phase


@dataclass(frozen=True)
class TrainingWarning:
    code: str  # val_at_chance | non_finite_loss | diverging | qat_drop | final_at_chance
    message: str
    hint: str
    epoch: int | None = None
    phase: str | None = None

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def __str__(self) -> str:
        where = f"epoch {self.epoch} ({self.phase}): " if self.epoch is not None else ""
        return f"{where}{self.message}\n  fix: {self.hint}"


def chance_rate(targets, task: str = "single_label") -> float:
    """Accuracy of always answering the most common class (per label, for multi-label): "chance"."""
    y = np.asarray(targets)
    if len(y) == 0:
        return float("nan")
    if task == "multi_label":
        pos = y.mean(axis=0)
        return float(np.mean(np.maximum(pos, 1.0 - pos)))
    return float(np.bincount(y.astype(np.int64)).max() / len(y))


def at_chance(accuracy: float, chance: float) -> bool:
    """Within a small margin of ``chance``: a tenth of the way from chance to perfect, at least 2 points."""
    if not (math.isfinite(accuracy) and math.isfinite(chance)):
        return False
    return accuracy <= chance + max(0.02, 0.1 * (1.0 - chance))


class TrainingMonitor:
    """Feed it each epoch record (``fit``/``qat_finetune`` history rows); it collects ``warnings``."""

    def __init__(self, chance: float, *, emit: Callable[[TrainingWarning], None] | None = None, min_epochs: int = 3):
        self.chance = chance
        self.min_epochs = min_epochs
        self.warnings: list[TrainingWarning] = []
        self._emit = emit or (lambda w: log.warning("%s", w))
        self._losses: dict[str, list[float]] = {}
        self._seen: set[tuple[str, str | None]] = set()

    def _warn(self, w: TrainingWarning, *, once_per_phase: bool = True) -> None:
        key = (w.code, w.phase if once_per_phase else None)
        if key in self._seen:
            return
        self._seen.add(key)
        self.warnings.append(w)
        self._emit(w)

    def epoch(self, rec: dict) -> bool:
        """Check one epoch; ``True`` means stop this phase (the loss is no longer a number)."""
        phase, ep, loss = rec.get("phase"), rec.get("epoch"), float(rec.get("train_loss", float("nan")))
        if not math.isfinite(loss):
            self._warn(TrainingWarning(
                "non_finite_loss", f"the training loss is {loss}: training stopped in this phase, the best "
                "checkpoint so far is kept", "lower the learning rate (--lr), and on a GPU try --set amp=false; "
                "check the images for NaN-producing files with `edgerec data check`", ep, phase))
            return True
        losses = self._losses.setdefault(phase, [])
        if losses and loss > _DIVERGE * min(losses) and loss > losses[0]:
            self._warn(TrainingWarning(
                "diverging", f"the training loss rose to {loss:.3g} from {min(losses):.3g}: the learning rate is "
                "likely too high", "lower --lr (now the peak rate; try a third of it) or raise --set warmup_epochs", ep, phase))
        losses.append(loss)
        all_losses = [x for v in self._losses.values() for x in v]
        acc = rec.get("val_accuracy")
        if (acc is not None and len(all_losses) >= self.min_epochs and phase != "qat"
                and at_chance(float(acc), self.chance) and all_losses[-1] < 0.8 * all_losses[0]):
            self._warn(TrainingWarning(
                "val_at_chance", f"validation accuracy {float(acc):.1%} is at chance ({self.chance:.1%}, the most common "
                f"class) while the training loss fell from {all_losses[0]:.3g} to {all_losses[-1]:.3g}",
                "the model is not learning what generalises: check that validation images look like training ones "
                "(`edgerec data check`), lower --lr, or train longer (--epochs); with pretrained weights try --weights none "
                "for images far from photos", ep, phase), once_per_phase=False)
        return False

    def qat(self, fp32_val: float, qat_val: float, *, epoch: int | None = None, model: str | None = None) -> None:
        """After QAT: fake-quant validation accuracy against the fp32 model's (``model``: the run's, for the advice)."""
        if math.isfinite(fp32_val) and math.isfinite(qat_val) and fp32_val - qat_val > QAT_DROP:
            backbone = "" if (model or "").startswith("efficientnet_lite") else \
                "; a backbone whose ops all quantize (efficientnet_lite0) loses least"
            self._warn(TrainingWarning(
                "qat_drop", f"QAT lost {100 * (fp32_val - qat_val):.1f} points of validation accuracy "
                f"({fp32_val:.1%} fp32 -> {qat_val:.1%} int8 fake-quant)",
                "more QAT epochs (--set qat_cfg.epochs=5), a lower QAT rate (--set qat_cfg.lr=0.0005), or compare "
                f"with --ptq{backbone}", epoch, "qat"))

    def final(self, accuracy: float, *, split: str) -> bool:
        """The final fp32 model's accuracy on ``split``; ``True`` when it is at chance."""
        if not at_chance(accuracy, self.chance):
            return False
        self._warn(TrainingWarning(
            "final_at_chance", f"the final model's {split} accuracy {accuracy:.1%} is no better than chance "
            f"({self.chance:.1%}); the run folder is written so you can look at it",
            "see the warnings above and plots/curves.png; pass --allow-chance to exit 0 anyway"), once_per_phase=False)
        return True

    def to_list(self) -> list[dict]:
        return [w.to_dict() for w in self.warnings]


def format_warnings(items: Iterable[dict]) -> list[str]:
    """``metrics.json``'s ``warnings`` as lines for a terminal."""
    out = []
    for w in items:
        where = f"epoch {w['epoch']} ({w.get('phase')}): " if w.get("epoch") is not None else ""
        out.append(f"warning [{w['code']}] {where}{w['message']}\n  fix: {w['hint']}")
    return out
