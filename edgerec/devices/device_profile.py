"""Device profiles: what edgerec knows about a board before it ever talks to one.

Each profile is a YAML file shipped as package data (``edgerec/devices/profiles/<name>.yaml``) and
loaded into a frozen :class:`DeviceProfile`. ``edgerec device setup`` and ``edgerec deploy`` read the
install fields; ``edgerec bench --estimate`` reads ``reference``: published latency figures, each with
its source, from which a per-GMAC cost is derived.

>>> from edgerec.devices.device_profile import load_profile, list_profiles
>>> "rpi5" in list_profiles()
True
>>> p = load_profile("rpi5")
>>> p.cores, p.default_backend
(4, 'litert')
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from .._config import from_mapping, load_yaml
from ..errors import ConfigError, suggest

__all__ = ["PROFILES_DIR", "DeviceProfile", "ReferenceFigure", "list_profiles", "load_profile", "match_profile"]

PROFILES_DIR = Path(__file__).parent / "profiles"


@dataclass(frozen=True)
class ReferenceFigure:
    """One published latency figure: a named model's single-image latency on this board.

    ``gmacs`` is the model's multiply-accumulate count (from its paper or model card), so
    ``latency_ms / gmacs`` is the board's cost per GMAC for that precision and backend.
    """

    model: str
    gmacs: float
    latency_ms: float
    precision: str  # fp32 | fp16 | int8
    backend: str  # litert | onnxruntime | openvino | tensorrt | ...
    source: str  # URL (or citation) of the published figure
    threads: int | None = None
    input_size: int | None = None
    note: str = ""

    @property
    def ms_per_gmac(self) -> float:
        return self.latency_ms / self.gmacs


@dataclass(frozen=True)
class DeviceProfile:
    """A board family: install facts, sensible runtime defaults and reference figures."""

    name: str
    title: str
    arch: str  # aarch64 | x86_64
    cores: int | None  # None: whatever the host has (x86-64)
    default_backend: str
    default_precision: str
    default_threads: int | None
    camera_uri: str
    runtime_extra: str  # pip extra: edgerec[<runtime_extra>]
    os_packages: tuple[str, ...] = ()
    venv_system_site_packages: bool = False
    install_notes: str = ""
    reference: tuple[ReferenceFigure, ...] = ()
    # Substrings of /proc/device-tree/model (or the CPU model) that identify this board.
    match: tuple[str, ...] = ()
    python_min: str = "3.10"
    notes: str = ""

    def references(self, precision: str | None = None, backend: str | None = None) -> list[ReferenceFigure]:
        """Reference figures for ``precision``/``backend`` (``None`` matches any)."""
        return [
            r for r in self.reference
            if (precision is None or r.precision == precision) and (backend is None or r.backend == backend)
        ]


def list_profiles() -> list[str]:
    """Names of the shipped profiles, sorted."""
    return sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))


@cache
def _load(path: str) -> DeviceProfile:
    data = load_yaml(path)
    return from_mapping(DeviceProfile, data, where=Path(path).name)


def load_profile(name: str | Path) -> DeviceProfile:
    """A shipped profile by name (``"rpi5"``), or a YAML file path for a board of your own.

    An unknown name raises ``ConfigError`` with the closest match.
    """
    path = Path(name)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return _load(str(path.resolve()))
    names = list_profiles()
    if str(name) not in names:
        raise ConfigError(
            f"unknown device profile '{name}'{suggest(str(name), names)}",
            hint="pass one of the shipped profiles or a path to your own profile YAML",
        )
    profile = _load(str(PROFILES_DIR / f"{name}.yaml"))
    if profile.name != str(name):
        raise ConfigError(f"profile file {name}.yaml names itself '{profile.name}'", hint="make them match")
    return profile


def match_profile(board_model: str | None, cpu_model: str | None = None, machine: str | None = None) -> DeviceProfile | None:
    """The profile whose ``match`` strings occur in the board or CPU model; x86-64 for any x86_64 host.

    >>> match_profile("Raspberry Pi 5 Model B Rev 1.0").name
    'rpi5'
    """
    text = f"{board_model or ''}\n{cpu_model or ''}".lower()
    for name in list_profiles():
        profile = load_profile(name)
        if any(m.lower() in text for m in profile.match):
            return profile
    if machine in ("x86_64", "AMD64"):
        return load_profile("x86-64")
    return None
