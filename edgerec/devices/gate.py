"""The release gate: a retrained bundle ships only if it beats the one on the boards.

    edgerec gate new/bundle --current old/bundle --test data/test --field field/ --out gate.json
    edgerec deploy new/bundle --inventory hosts.yaml --require-gate gate.json

Both bundles classify, with the runtime and the artifact each would run on a board, the same images: a frozen test
set (an ImageFolder that no training run has seen) and the field frames a person labelled in ``data review``
(``FIELD/review.csv``; the region the model saw when the board used an ROI). A label the current bundle does not
know counts against it (the candidate may add classes); one the candidate does not know counts against the
candidate. The candidate passes when

- on test + field together it is right more often than the current bundle, by more than ``min_gain``; and
- on the frozen test set alone it loses at most ``max_test_drop`` (so field frames cannot buy a regression
  where the model already worked).

Accuracies are fractions. The result names the candidate by the sha256 of its manifest, so ``deploy
--require-gate`` ships exactly the bundle that passed.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..bundle import MANIFEST_NAME, load_manifest, sha256_file
from ..errors import ConfigError, DataError, DeployError

__all__ = ["GateResult", "gate", "check_gate", "labelled_images"]

_CHUNK = 32  # images decoded and classified at a time


@dataclass
class GateResult:
    passed: bool
    reason: str
    candidate: dict
    current: dict
    sets: dict  # "test" / "field" / "combined" -> {"n", "candidate", "current"} (+ "boards" for field)
    rule: dict
    time: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))

    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        tmp.replace(path)
        return path


def labelled_images(test: str | Path | None = None, field_dirs=()) -> list[tuple[str, Path, str, str]]:
    """``(set, image, true label, board)`` for every image of the ``test`` ImageFolder and every labelled row
    of each field folder's ``review.csv``."""
    items: list[tuple[str, Path, str, str]] = []
    if test is not None:
        from ..data.dataset import scan_files  # standard library + numpy

        scan = scan_files(test)
        for e in scan.entries:
            if len(e.labels) == 1:
                items.append(("test", e.path, e.labels[0], ""))
        if not any(s == "test" for s, *_ in items):
            raise DataError(f"no labelled images in the test set {test}", hint="give an ImageFolder: TEST/<label>/*.jpg")
    from ..data.review import labelled_rows  # csv, json, numpy: board-tier safe

    for folder in field_dirs:
        rows = labelled_rows(folder)
        if not rows:
            raise DataError(f"{Path(folder) / 'review.csv'} has no labelled rows",
                            hint="fill in the label column (the true class of each frame)")
        for row, image in rows:
            side = image.with_name(image.name.split(".", 1)[0] + ".json")
            try:  # the board classified its ROI: judge on the same pixels
                roi_file = json.loads(side.read_text()).get("roi_file")
            except (OSError, ValueError, AttributeError):
                roi_file = None
            if roi_file and (image.parent / roi_file).is_file():
                image = image.parent / roi_file
            items.append(("field", image, row["label"], row.get("board") or Path(folder).name))
    if not items:
        raise ConfigError("the gate needs images: --test DIR and/or --field DIR")
    return items


def _predict(bundle: Path, images: list[Path], *, threads: int | None, format, precision, backend) -> tuple[list[str], dict]:
    from ..runtime import Classifier
    from ..runtime.image import read_image_bgr

    with Classifier.load(bundle, threads=threads, format=format, precision=precision, backend=backend,
                         choice_cache=False) as clf:
        labels = []
        for s in range(0, len(images), _CHUNK):  # batched where the model takes any batch; bounded memory
            labels += [pred.label for pred in clf.classify_batch([read_image_bgr(p) for p in images[s:s + _CHUNK]])]
        info = {"artifact": clf.artifact.key, "backend": clf.backend.name, "labels": list(clf.manifest.labels)}
    return labels, info


def _bundle_dir(bundle: str | Path, what: str) -> Path:
    p = Path(bundle)
    if p.is_file() and p.name == MANIFEST_NAME:
        p = p.parent
    if not (p / MANIFEST_NAME).is_file():
        raise ConfigError(f"{what} {bundle} is not a bundle folder (no {MANIFEST_NAME})",
                          hint="give the folder edgerec export wrote (unpack a packed bundle first)")
    return p


def _acc(pairs: list[tuple[str, str]]) -> float | None:
    return sum(p == t for p, t in pairs) / len(pairs) if pairs else None


def _describe(bundle: Path) -> dict:
    m = load_manifest(bundle)
    return {"bundle": str(bundle), "name": m.name, "version": m.version,
            "manifest_sha256": sha256_file(bundle / MANIFEST_NAME)}


def gate(candidate: str | Path, current: str | Path, *, test: str | Path | None = None, field_dirs=(),
         min_gain: float = 0.0, max_test_drop: float = 0.01, threads: int | None = None, format: str | None = None,
         precision: str | None = None, backend: str = "auto") -> GateResult:
    """Compare ``candidate`` with ``current`` on the frozen ``test`` set plus the labelled field frames.

    >>> r = gate("runs/v2/bundle", "runs/v1/bundle", test="data/test", field_dirs=["field/"])   # doctest: +SKIP
    >>> r.passed, r.sets["combined"]
    """
    if not 0.0 <= max_test_drop <= 1.0 or not -1.0 <= min_gain <= 1.0:
        raise ConfigError("min_gain and max_test_drop are fractions of accuracy (e.g. 0.01 for one point)")
    cand, cur = _bundle_dir(candidate, "candidate"), _bundle_dir(current, "--current")
    items = labelled_images(test, field_dirs)
    images = [p for _, p, _, _ in items]
    preds, infos = {}, {}
    for key, b in (("candidate", cand), ("current", cur)):
        preds[key], infos[key] = _predict(b, images, threads=threads, format=format, precision=precision, backend=backend)

    def figures(select) -> dict:
        idx = [i for i, it in enumerate(items) if select(it)]
        out = {"n": len(idx)}
        for key in ("candidate", "current"):
            out[key] = _acc([(preds[key][i], items[i][2]) for i in idx])
        return out

    sets = {"test": figures(lambda it: it[0] == "test"), "field": figures(lambda it: it[0] == "field"),
            "combined": figures(lambda it: True)}
    sets["field"]["boards"] = {b: figures(lambda it, b=b: it[0] == "field" and it[3] == b)
                               for b in sorted({it[3] for it in items if it[0] == "field"})}
    unknown = sorted({it[2] for it in items} - set(infos["current"]["labels"]))
    sets["combined"]["new_labels"] = unknown  # labels the current bundle cannot name
    sets["combined"]["unknown_to_candidate"] = sorted({it[2] for it in items} - set(infos["candidate"]["labels"]))

    c = sets["combined"]
    gain = c["candidate"] - c["current"]
    t = sets["test"]
    drop = (t["current"] - t["candidate"]) if t["n"] else 0.0
    if gain <= min_gain:
        passed, reason = False, (f"does not beat the current bundle: {c['candidate']:.2%} vs {c['current']:.2%} on "
                                 f"{c['n']} images (needs a gain over {min_gain:.2%})")
    elif drop > max_test_drop:
        passed, reason = False, (f"loses {drop:.2%} on the frozen test set ({t['candidate']:.2%} vs {t['current']:.2%}; "
                                 f"at most {max_test_drop:.2%} allowed)")
    else:
        passed, reason = True, f"beats the current bundle by {gain:.2%} on {c['n']} images"
    return GateResult(passed, reason, {**_describe(cand), **infos["candidate"]}, {**_describe(cur), **infos["current"]},
                      sets, {"min_gain": min_gain, "max_test_drop": max_test_drop})


def check_gate(bundle: str | Path, gate_file: str | Path) -> dict:
    """Refuse (``DeployError``) unless ``gate_file`` is a passed gate for exactly this ``bundle``."""
    try:
        data = json.loads(Path(gate_file).read_text())
        sha, passed = data["candidate"]["manifest_sha256"], data["passed"]
    except FileNotFoundError:
        raise DeployError(f"gate result {gate_file} not found", hint="run edgerec gate BUNDLE --current OLD ... --out FILE first") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DeployError(f"{gate_file} is not a gate result ({type(exc).__name__}: {exc})") from None
    actual = sha256_file(_bundle_dir(bundle, "bundle") / MANIFEST_NAME)
    if sha != actual:
        raise DeployError(f"{gate_file} judged another bundle (manifest sha256 {sha[:12]}…, this one {actual[:12]}…)",
                          hint="run the gate on this bundle")
    if not passed:
        raise DeployError(f"{bundle} did not pass its gate: {data.get('reason', '')}",
                          hint="keep the current model; retrain with more data, or deploy without --require-gate")
    return data
