"""Gates (cascades): stages of bundles, each run only when a condition on an earlier stage holds.

```yaml
# inspect.yaml - paths are relative to this file
name: car-inspection
stages:
  - name: car
    bundle: car_bundle/
  - name: damage
    bundle: damage_bundle/
    when: label in [car, van] and score >= 0.6      # on the previous stage
  - name: part
    bundle: part_bundle/
    when: damage.label == damaged and car.score >= 0.6
    threshold: 0.4
    roi: 0.125,0,0.75,1      # this stage looks at the frame's central region only
```

Any ``Classifier.load`` option may be set per stage, ``roi`` included (a region of interest, in pixels or
fractions of the frame, drawn on the annotated video and preview).

Conditions are parsed by a small grammar, never evaluated as code: clauses joined by ``and``, each
``[stage.]label in [a, b]``, ``[stage.]label not in [...]``, ``[stage.]label == x`` / ``!= x`` or
``[stage.]score >= 0.6`` (``>``, ``<=``, ``<`` too). Without ``stage.`` a clause reads the previous stage.
A stage whose condition is false (or whose referenced stage did not run) is reported with ``ran: false``.
"""

from __future__ import annotations

import dataclasses
import math
import operator
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._config import from_mapping, parse_yaml
from ..errors import ConfigError, suggest
from .classifier import Classifier
from .postprocess import Prediction

__all__ = ["Clause", "Condition", "parse_condition", "StageSpec", "Pipeline", "PipelineResult", "StageResult",
           "load_pipeline", "pipeline_spec"]

_OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": operator.eq, "!=": operator.ne}
_STAGE_KEYS = ("name", "bundle", "when", "threshold", "top_k", "backend", "format", "precision", "threads",
               "device", "smoothing", "smoothing_mode", "roi")
_NAME = r"[A-Za-z_][\w-]*"
_RE_IN = re.compile(rf"(?:({_NAME})\.)?label\s+(not\s+in|in)\s+\[(.*)\]", re.S)
_RE_EQ = re.compile(rf"(?:({_NAME})\.)?label\s*(==|!=)\s*(.+)", re.S)
_RE_SCORE = re.compile(rf"(?:({_NAME})\.)?score\s*(>=|<=|>|<|==|!=)\s*([-+]?\d*\.?\d+(?:[eE][-+]?\d+)?)")


@dataclass(frozen=True)
class Clause:
    stage: str | None  # None: the previous stage
    field: str  # label | score
    op: str  # in | not in | == | != | >= | > | <= | <
    value: tuple[str, ...] | str | float

    def holds(self, pred: Prediction) -> bool:
        if self.field == "score":
            return _OPS[self.op](float(pred.score), float(self.value))
        labels = set(pred.labels) | ({pred.label} if not pred.unknown else set())
        if self.op == "in":
            return bool(labels & set(self.value))
        if self.op == "not in":
            return not (labels & set(self.value))
        return _OPS[self.op](pred.label, self.value)


@dataclass(frozen=True)
class Condition:
    text: str
    clauses: tuple[Clause, ...]

    def holds(self, previous: str, results: dict[str, Prediction | None]) -> bool:
        for c in self.clauses:
            pred = results.get(c.stage or previous)
            if pred is None or not c.holds(pred):
                return False
        return True


def _unquote(s: str) -> str:
    s = s.strip()
    return s[1:-1] if len(s) >= 2 and s[0] == s[-1] and s[0] in "'\"" else s


def _split_and(text: str) -> list[str]:
    """Split on `` and `` outside brackets and quotes (labels may contain the word)."""
    parts, depth, quote, start, i = [], 0, "", 0, 0
    while i < len(text):
        ch = text[i]
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif depth == 0 and re.match(r"\s+and\s+", text[i:]) and (i == 0 or text[i].isspace()):
            m = re.match(r"\s+and\s+", text[i:])
            parts.append(text[start:i])
            i += m.end()
            start = i
            continue
        i += 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def parse_condition(text: str, *, where: str = "condition") -> Condition:
    """``"label in [car, van] and score >= 0.6"`` -> ``Condition`` (``ConfigError`` naming the bad clause)."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"{where}: empty condition", hint="e.g. when: label in [car] and score >= 0.6")
    clauses = []
    for part in _split_and(text.strip()):
        if m := _RE_IN.fullmatch(part):
            values = tuple(_unquote(v) for v in m.group(3).split(",") if v.strip())
            if not values:
                raise ConfigError(f"{where}: empty label list in '{part}'")
            clauses.append(Clause(m.group(1), "label", " ".join(m.group(2).split()), values))
        elif m := _RE_SCORE.fullmatch(part):
            clauses.append(Clause(m.group(1), "score", m.group(2), float(m.group(3))))
        elif m := _RE_EQ.fullmatch(part):
            clauses.append(Clause(m.group(1), "label", m.group(2), _unquote(m.group(3))))
        else:
            raise ConfigError(
                f"{where}: cannot read '{part}'",
                hint="clauses joined by 'and': label in [a, b] | label not in [a] | label == a | score >= 0.6 "
                     "(prefix 'stage.' to read an earlier stage)",
            )
    return Condition(text.strip(), tuple(clauses))


@dataclass(frozen=True)
class _StageOptions:
    """The typed ``Classifier.load`` options a stage may set (``threshold: abc`` fails here, naming the key)."""

    threshold: float | None = None
    top_k: int | None = None
    backend: str | None = None
    format: str | None = None
    precision: str | None = None
    threads: str | None = None  # auto / 0 / -1 / a count: limits.resolve_threads
    device: str | None = None
    smoothing: int | None = None
    smoothing_mode: str | None = None


def _stage_options(st: dict, where: str) -> dict:
    from ..limits import resolve_threads

    typed = {k: v for k, v in st.items() if k in _OPTION_FIELDS}
    o = from_mapping(_StageOptions, typed, where=where)
    if o.threshold is not None and not (math.isfinite(o.threshold) and 0.0 <= o.threshold <= 1.0):
        raise ConfigError(f"{where}.threshold must be between 0 and 1, got {o.threshold}")
    if o.top_k is not None and o.top_k < 1:
        raise ConfigError(f"{where}.top_k must be at least 1, got {o.top_k}")
    if o.smoothing is not None and o.smoothing < 0:
        raise ConfigError(f"{where}.smoothing must be 0 (off) or a number of frames, got {o.smoothing}")
    out = {k: getattr(o, k) for k in typed}
    if "threads" in out:
        out["threads"] = resolve_threads(out["threads"], what=f"{where}.threads")
    return out


_OPTION_FIELDS = {f.name for f in dataclasses.fields(_StageOptions)}


@dataclass(frozen=True)
class StageSpec:
    name: str
    bundle: Path
    when: Condition | None = None
    options: dict = field(default_factory=dict)  # Classifier.load keyword arguments


# The per-frame record's version: bump it when a key is added, removed or changes meaning (docs/runtime.md,
# "The per-frame record"). Readers check ``record["schema"]``.
RECORD_SCHEMA = 1
STAGE_STEPS = ("preprocess", "inference", "postprocess")
_NO_ANSWER = {"label": None, "score": None, "top_k": [], "labels": []}


@dataclass
class StageResult:
    name: str
    ran: bool
    prediction: Prediction | None = None
    latency_ns: dict[str, int] = field(default_factory=dict)
    roi: tuple[int, int, int, int] | None = None  # (x, y, w, h) in pixels the stage classified, None = whole frame

    def to_dict(self) -> dict:
        """The same keys whether the stage ran or not (``label``/``score`` None, lists empty when it did not)."""
        answer = self.prediction.to_dict() if self.prediction is not None else _NO_ANSWER
        return {"name": self.name, "ran": self.ran, **answer, "roi": list(self.roi) if self.roi is not None else None,
                "latency_ms": {k: round(self.latency_ns.get(k, 0) / 1e6, 3) for k in STAGE_STEPS}}


@dataclass
class PipelineResult:
    stages: list[StageResult]

    @property
    def final(self) -> StageResult:
        """The last stage that ran (its answer is the pipeline's answer)."""
        ran = [s for s in self.stages if s.ran]
        return ran[-1] if ran else self.stages[0]

    @property
    def label(self) -> str:
        p = self.final.prediction
        return p.label if p is not None else ""

    @property
    def score(self) -> float:
        p = self.final.prediction
        return float(p.score) if p is not None else 0.0

    def to_dict(self) -> dict:
        """The answer (the final stage's) and every stage, one shape for one stage or a cascade."""
        stages = [s.to_dict() for s in self.stages]
        ran = [d for d in stages if d["ran"]]
        f = ran[-1] if ran else stages[0]
        return {"label": f["label"] or "", "score": f["score"] or 0.0, "top_k": f["top_k"], "labels": f["labels"],
                "stage": f["name"], "roi": f["roi"], "stages": stages}


def _stage_roi(value, where: str):
    """``roi:`` as "x,y,w,h" or a list, read when the YAML is (its fit to the frame is checked on the first frame)."""
    from .roi import parse_roi

    try:
        return parse_roi(value)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc.message}", hint=exc.hint) from None


def pipeline_spec(path: str | Path) -> tuple[str, list[StageSpec]]:
    """Read and check a pipeline YAML; bundle paths resolve relative to the file."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read pipeline {path}: {exc.strerror or exc}") from exc
    data = parse_yaml(raw, where=f"pipeline {path}")
    if not isinstance(data, dict) or not isinstance(data.get("stages"), list) or not data["stages"]:
        raise ConfigError(f"{path}: a pipeline needs a non-empty 'stages:' list")
    unknown = set(data) - {"name", "stages"}
    if unknown:
        k = sorted(unknown)[0]
        raise ConfigError(f"{path}: unknown key '{k}'{suggest(k, ['name', 'stages'])}")
    specs: list[StageSpec] = []
    for i, st in enumerate(data["stages"]):
        where = f"{path}: stages[{i}]"
        if not isinstance(st, dict):
            raise ConfigError(f"{where} must be a mapping with at least 'bundle:'")
        for k in st:
            if k not in _STAGE_KEYS:
                raise ConfigError(f"{where}: unknown key '{k}'{suggest(k, _STAGE_KEYS)}")
        if not isinstance(st.get("bundle"), str) or not st["bundle"].strip():
            raise ConfigError(f"{where}: 'bundle:' must be the path of a bundle folder", hint="e.g. bundle: car_bundle/")
        name = str(st.get("name") or f"stage{i + 1}")
        if any(s.name == name for s in specs):
            raise ConfigError(f"{where}: stage name '{name}' is used twice")
        when = None
        if st.get("when") is not None:
            if i == 0:
                raise ConfigError(f"{where}: the first stage runs on every frame and cannot have 'when:'")
            when = parse_condition(str(st["when"]), where=f"{where}.when")
            for c in when.clauses:
                if c.stage is not None and c.stage not in [s.name for s in specs]:
                    raise ConfigError(f"{where}.when: '{c.stage}' is not an earlier stage"
                                      f"{suggest(c.stage, [s.name for s in specs])}")
        bundle = Path(st["bundle"])
        bundle = bundle if bundle.is_absolute() else (path.parent / bundle)
        opts = {k: v for k, v in st.items() if k not in ("name", "bundle", "when")}
        opts.update(_stage_options(opts, where))
        if opts.get("roi") is not None:
            opts["roi"] = _stage_roi(opts["roi"], f"{where}.roi")
        specs.append(StageSpec(name, bundle, when, opts))
    return str(data.get("name") or path.stem), specs


class Pipeline:
    """Stages of classifiers evaluated per frame. A single bundle is a one-stage pipeline."""

    def __init__(self, name: str, stages: list[tuple[StageSpec, Classifier]]):
        self.name, self.stages = name, stages

    @classmethod
    def from_bundle(cls, bundle: str | Path, **load_options) -> "Pipeline":
        clf = Classifier.load(bundle, **load_options)
        return cls(clf.manifest.name, [(StageSpec(clf.manifest.name, Path(bundle)), clf)])

    @classmethod
    def from_yaml(cls, path: str | Path, **defaults) -> "Pipeline":
        """``defaults`` (backend, threads, ...) apply where a stage does not set its own."""
        name, specs = pipeline_spec(path)
        loaded: list[tuple[StageSpec, Classifier]] = []
        try:
            for spec in specs:
                opts = {**{k: v for k, v in defaults.items() if v is not None}, **spec.options}
                loaded.append((spec, Classifier.load(spec.bundle, **opts)))
        except BaseException:
            for _, clf in loaded:
                clf.close()
            raise
        return cls(name, loaded)

    def process(self, frame: np.ndarray) -> PipelineResult:
        results: dict[str, Prediction | None] = {}
        out: list[StageResult] = []
        previous = ""
        for spec, clf in self.stages:
            if spec.when is not None and not spec.when.holds(previous, results):
                results[spec.name] = None
                out.append(StageResult(spec.name, False))
            else:
                pred = clf.classify(frame)
                results[spec.name] = pred
                out.append(StageResult(spec.name, True, pred, dict(clf.last_timings_ns), clf.last_roi))
            previous = spec.name
        return PipelineResult(out)

    def describe(self) -> list[str]:
        return [f"{spec.name}: {clf.describe()}" + (f"  when {spec.when.text}" if spec.when else "")
                for spec, clf in self.stages]

    def close(self) -> None:
        for _, clf in self.stages:
            clf.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def load_pipeline(target: str | Path, **options) -> Pipeline:
    """A bundle folder (one stage) or a pipeline ``.yaml``."""
    p = Path(target)
    if p.suffix.lower() in (".yaml", ".yml"):
        return Pipeline.from_yaml(p, **options)
    return Pipeline.from_bundle(p, **options)
