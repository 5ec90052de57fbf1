"""The deploy profile: which artifact, backend and thread count to run on one kind of device.

``edgerec bench --recommend`` writes it (``deploy-profile.yaml`` in the bundle folder by default);
``edgerec deploy`` uploads it with the bundle (or one of its own for ``--format/--precision``), and the runtime
(``edgerec run``, ``Classifier.load``) runs what it names (``edgerec.runtime.choice``). ``backend`` may be
``auto``: the first installed backend for the format. This module needs only PyYAML, so any tier may import it.

.. code-block:: yaml

    format: edgerec-deploy-profile/1
    bundle: {name: digits, version: 1.0.0}
    artifact: tflite-int8        # Artifact.key in the bundle's edgerec.json
    artifact_format: tflite
    precision: int8
    backend: litert
    threads: 2                   # null: the backend's default
    device: {profile: rpi5, board_model: Raspberry Pi 5 Model B Rev 1.0, hostname: pi-kitchen}
    measured: {p50_ms: 4.1, p99_ms: 5.3, accuracy: 0.981, record_id: 6c1f..., timestamp: 2026-...}
    reason: lowest p50; accuracy within 0.010 of the best (0.985)

>>> p = load_deploy_profile("out/bundle")           # doctest: +SKIP
>>> Classifier.load("out/bundle", backend=p.backend, format=p.artifact_format, precision=p.precision,
...                 threads=p.threads)               # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._config import from_mapping, load_yaml
from ..errors import ConfigError

__all__ = [
    "DEPLOY_PROFILE_FORMAT",
    "DEPLOY_PROFILE_NAME",
    "DeployProfile",
    "deploy_profile_from_record",
    "dump_deploy_profile",
    "load_deploy_profile",
    "write_deploy_profile",
]

DEPLOY_PROFILE_FORMAT = "edgerec-deploy-profile/1"
DEPLOY_PROFILE_NAME = "deploy-profile.yaml"


@dataclass(frozen=True)
class DeployProfile:
    artifact: str
    artifact_format: str
    precision: str
    backend: str
    threads: int | None
    bundle: dict[str, str] = field(default_factory=dict)
    device: dict[str, Any] = field(default_factory=dict)
    measured: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
    format: str = DEPLOY_PROFILE_FORMAT

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {"format": d.pop("format"), **d}


def _path(where: str | Path) -> Path:
    p = Path(where)
    return p / DEPLOY_PROFILE_NAME if p.is_dir() else p


def dump_deploy_profile(profile: DeployProfile, *, json_format: bool = False) -> str:
    """The text of ``profile`` as ``write_deploy_profile`` writes it (YAML, or JSON)."""
    import json

    import yaml

    data = profile.to_dict()
    return json.dumps(data, indent=2) + "\n" if json_format else yaml.safe_dump(data, sort_keys=False)


def write_deploy_profile(profile: DeployProfile, where: str | Path) -> Path:
    """Write ``profile`` to a file (``.yaml``/``.yml``/``.json``) or into a folder as ``deploy-profile.yaml``."""
    path = _path(where)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = dump_deploy_profile(profile, json_format=path.suffix == ".json")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path


def load_deploy_profile(where: str | Path) -> DeployProfile:
    """Read a deploy profile from a file, or ``deploy-profile.yaml`` in a (bundle) folder.

    A missing file, another format, or an unknown key raise ``ConfigError``.
    """
    import json

    path = _path(where)
    if not path.is_file():
        raise ConfigError(f"no deploy profile at {path}",
                          hint="run `edgerec bench BUNDLE --recommend` on the device to write one")
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path} is not valid JSON: {exc}") from exc
    else:
        data = load_yaml(path)
    fmt = data.get("format")
    if fmt != DEPLOY_PROFILE_FORMAT:
        raise ConfigError(f"{path}: format '{fmt}' is not {DEPLOY_PROFILE_FORMAT}",
                          hint="re-run `edgerec bench --recommend` with this edgerec version")
    return from_mapping(DeployProfile, data, where=str(path))


def deploy_profile_from_record(rec: dict[str, Any], reason: str = "") -> DeployProfile:
    """A deploy profile from one bench result record."""
    d = rec.get("device") or {}
    lat = rec["latency_ms"]
    acc = rec.get("accuracy")
    measured = {"p50_ms": round(lat["p50"], 4), "p99_ms": round(lat["p99"], 4), "record_id": rec["id"],
                "timestamp": rec["timestamp"]}
    if acc:
        measured["accuracy"] = round(acc["top1"], 4)
    return DeployProfile(
        artifact=rec["artifact"], artifact_format=rec.get("artifact_format") or rec["artifact"].split("-")[0],
        precision=rec["precision"], backend=rec["backend"], threads=rec.get("threads"),
        bundle={"name": rec["bundle"]["name"], "version": rec["bundle"]["version"]},
        device={k: d[k] for k in ("profile", "board_model", "cpu_model", "hostname") if d.get(k)},
        measured=measured, reason=reason,
    )
